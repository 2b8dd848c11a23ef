package ops

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Confinement bounds what a job's code may touch on the machine that runs
// it: which programs pipe may start, under which directories textFile may
// read and saveAsTextFile write, and as which user pipe programs run. The
// executor's operator sets it (execd -pipe-allow, -data-root, -run-as);
// the scheduler checks paths at submission with the same rules.
//
// The zero Confinement allows nothing: no program, no path. A nil
// *Confinement (a Runner or FileResolver without one, as in library use
// and unit tests) allows everything.
type Confinement struct {
	// Open lifts every bound (schedd -dev).
	Open bool
	// PipeAllow lists the programs pipe may run: a bare name (awk) allows
	// that name, found in the executor's PATH; an absolute path allows
	// that file. "*" allows any program.
	PipeAllow []string
	// DataRoots are the directories (absolute) textFile may read and
	// saveAsTextFile write under.
	DataRoots []string
	// RunAs, when set, runs pipe programs as this user and group.
	RunAs *syscall.Credential
	// S3EndpointURL is where s3:// paths go (execd and schedd
	// -s3-endpoint; "": AWS_ENDPOINT_URL, else AWS). Object storage is
	// bounded by its credentials, not by the data roots.
	S3EndpointURL string
}

// PipePrefix marks, among the functions an executor reports holding, the
// programs its pipe allows: "pipe:awk", or "pipe:*" for any. The
// scheduler refuses a plan whose pipe no live executor allows, and runs
// pipe tasks only where their program is allowed.
const PipePrefix = "pipe:"

// PipeFuncs returns the pseudo-functions naming the programs pipe may run.
func (c *Confinement) PipeFuncs() []string {
	if c == nil || c.Open {
		return []string{PipePrefix + "*"}
	}
	out := make([]string, 0, len(c.PipeAllow))
	for _, a := range c.PipeAllow {
		out = append(out, PipePrefix+a)
	}
	return out
}

// ErrConfined is an operation the confinement refuses.
var ErrConfined = errors.New("not allowed on this machine")

// CheckPipe reports whether pipe may run command.
func (c *Confinement) CheckPipe(command string) error {
	if c == nil || c.Open {
		return nil
	}
	for _, a := range c.PipeAllow {
		if a == "*" || a == command {
			return nil
		}
	}
	if len(c.PipeAllow) == 0 {
		return fmt.Errorf("pipe: program %q: %w (this executor allows no programs; its operator lists them with execd -pipe-allow)", command, ErrConfined)
	}
	return fmt.Errorf("pipe: program %q: %w (allowed: %s; execd -pipe-allow)", command, ErrConfined, strings.Join(c.PipeAllow, ", "))
}

// CheckPath reports whether path lies under a data root: it must be
// absolute, and neither "..", nor a symbolic link, may lead it out.
func (c *Confinement) CheckPath(what, path string) error {
	if c == nil || c.Open {
		return nil
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s %q must be an absolute path", what, path)
	}
	if len(c.DataRoots) == 0 {
		return fmt.Errorf("%s %q: %w (no data roots are allowed; start execd and schedd with -data-root DIR)", what, path, ErrConfined)
	}
	real := resolve(filepath.Clean(path))
	for _, root := range c.DataRoots {
		if real == "" {
			break
		}
		r := resolve(filepath.Clean(root))
		if real == r || strings.HasPrefix(real, r+string(filepath.Separator)) || r == string(filepath.Separator) {
			return nil
		}
	}
	return fmt.Errorf("%s %q: %w (outside the data roots %s)", what, path, ErrConfined, strings.Join(c.DataRoots, ", "))
}

// resolve follows the symbolic links of the longest existing prefix of
// path (what does not exist yet cannot be a link).
// A dangling link (it exists but leads nowhere yet) resolves to "", which
// lies under no root: creating the file would follow it out.
func resolve(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if _, err := os.Lstat(p); err == nil {
			return ""
		}
		if p == filepath.Dir(p) {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// CheckGlob checks a textFile glob's fixed part (up to its first
// metacharacter) and, once matched, every file.
func (c *Confinement) CheckGlob(glob string, matches []string) error {
	if c == nil || c.Open {
		return nil
	}
	fixed := glob
	if i := strings.IndexAny(glob, "*?[\\"); i >= 0 {
		fixed = filepath.Dir(glob[:i+1])
	}
	if err := c.CheckPath("textFile", fixed); err != nil {
		return err
	}
	for _, m := range matches {
		if err := c.CheckPath("textFile", m); err != nil {
			return err
		}
	}
	return nil
}

// LookupUser returns the credential of a user name or numeric uid (its
// primary group), for Confinement.RunAs.
func LookupUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("ops: run-as user %q: %w", name, err)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("ops: run-as user %q has a non-numeric uid or gid", name)
	}
	if uid != uint64(os.Getuid()) && os.Getuid() != 0 {
		return nil, fmt.Errorf("ops: run-as user %q: only root can run programs as another user", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}, nil
}
