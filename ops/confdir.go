package ops

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A Dir is a directory a job reads or writes files under. Under a
// Confinement with data roots it is opened through an os.Root on the data
// root that holds it, so no name beneath it leads out of that root: not
// "..", not a symbolic link, not even one swapped in after CheckPath looked
// (each component is opened relative to its parent, and a link that would
// leave the root is refused). Unconfined (a nil or Open Confinement) it is
// a plain directory path.
//
// Names given to a Dir's methods are relative to it, slash-separated.
type Dir struct {
	root *os.Root // nil: unconfined
	base string   // the directory: relative to root, or absolute when unconfined
	path string   // as the job named it, for errors
}

// OpenDir checks dir as CheckPath does (what names the operation in
// errors) and opens it, confined, for the methods of Dir. dir need not
// exist yet. The caller closes it.
func (c *Confinement) OpenDir(what, dir string) (*Dir, error) {
	if err := c.CheckPath(what, dir); err != nil {
		return nil, err
	}
	if c == nil || c.Open {
		return &Dir{base: filepath.Clean(dir), path: dir}, nil
	}
	clean := filepath.Clean(dir)
	forms := []string{clean}
	if r := resolve(clean); r != "" && r != clean {
		forms = append(forms, r)
	}
	for _, root := range c.DataRoots {
		roots := []string{filepath.Clean(root)}
		if r := resolve(roots[0]); r != "" && r != roots[0] {
			roots = append(roots, r)
		}
		for _, r := range roots {
			for _, p := range forms {
				rel, ok := under(r, p)
				if !ok {
					continue
				}
				rt, err := os.OpenRoot(r)
				if err != nil {
					return nil, fmt.Errorf("%s: data root %s: %w", what, root, err)
				}
				return &Dir{root: rt, base: rel, path: dir}, nil
			}
		}
	}
	return nil, fmt.Errorf("%s %q: %w (outside the data roots %s)", what, dir, ErrConfined, strings.Join(c.DataRoots, ", "))
}

// under returns p relative to root when p is root or lies beneath it.
func under(root, p string) (string, bool) {
	if p == root {
		return ".", true
	}
	if root == string(filepath.Separator) {
		return strings.TrimPrefix(p, root), true
	}
	if strings.HasPrefix(p, root+string(filepath.Separator)) {
		return p[len(root)+1:], true
	}
	return "", false
}

// OpenFile opens the file at path for reading, confined as OpenDir.
// Its errors start with what.
func (c *Confinement) OpenFile(what, path string) (*os.File, error) {
	d, err := c.OpenDir(what, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f, err := d.Open(filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return f, nil
}

func (d *Dir) name(n string) string { return filepath.Join(d.base, filepath.FromSlash(n)) }

// Open opens a file for reading.
func (d *Dir) Open(n string) (*os.File, error) {
	if d.root == nil {
		return os.Open(d.name(n))
	}
	return d.root.Open(d.name(n))
}

// Create creates (or truncates) a file for writing, and the directories
// that lead to it.
func (d *Dir) Create(n string) (*os.File, error) {
	if err := d.MkdirAll(filepath.Dir(n)); err != nil {
		return nil, err
	}
	if d.root == nil {
		return os.Create(d.name(n))
	}
	return d.root.Create(d.name(n))
}

// MkdirAll creates a directory and its parents (mode 0755).
func (d *Dir) MkdirAll(n string) error {
	if d.root == nil {
		return os.MkdirAll(d.name(n), 0o755)
	}
	return d.root.MkdirAll(d.name(n), 0o755)
}

// WriteFile writes a whole file (mode 0644).
func (d *Dir) WriteFile(n string, data []byte) error {
	if d.root == nil {
		return os.WriteFile(d.name(n), data, 0o644)
	}
	return d.root.WriteFile(d.name(n), data, 0o644)
}

// Rename moves a file within the directory.
func (d *Dir) Rename(from, to string) error {
	if d.root == nil {
		return os.Rename(d.name(from), d.name(to))
	}
	return d.root.Rename(d.name(from), d.name(to))
}

// Remove removes a file or an empty directory.
func (d *Dir) Remove(n string) error {
	if d.root == nil {
		return os.Remove(d.name(n))
	}
	return d.root.Remove(d.name(n))
}

// RemoveAll removes a file or a directory and everything beneath it.
func (d *Dir) RemoveAll(n string) error {
	if d.root == nil {
		return os.RemoveAll(d.name(n))
	}
	return d.root.RemoveAll(d.name(n))
}

// ReadDir lists a directory.
func (d *Dir) ReadDir(n string) ([]os.DirEntry, error) {
	f, err := d.Open(n)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// Sync flushes a directory's entries (after a rename) to disk.
func (d *Dir) Sync(n string) error {
	f, err := d.Open(n)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Path is the directory as the job named it.
func (d *Dir) Path() string { return d.path }

// Close releases the directory's root.
func (d *Dir) Close() error {
	if d.root == nil {
		return nil
	}
	return d.root.Close()
}
