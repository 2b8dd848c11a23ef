package ops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-sched/baton/plan"
)

// A link swapped in after the path was checked (a time-of-check to
// time-of-use race: the check and the open are separate system calls)
// must not lead a write or a read out of the data root. With CheckPath
// then os.Create, both of these escaped.
func TestConfinedDirRefusesALinkSwappedInAfterTheCheck(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	outside := filepath.Join(root, "outside")
	os.MkdirAll(filepath.Join(data, "out", "_temporary"), 0o755)
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s3cret\n"), 0o644)
	c := &Confinement{DataRoots: []string{data}}

	d, err := c.OpenDir("saveAsTextFile", filepath.Join(data, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The swap: _temporary becomes a link out of the root.
	os.RemoveAll(filepath.Join(data, "out", "_temporary"))
	if err := os.Symlink(outside, filepath.Join(data, "out", "_temporary")); err != nil {
		t.Fatal(err)
	}
	if f, err := d.Create("_temporary/part-00000"); err == nil {
		f.Close()
		t.Fatal("Create followed a link out of the data root")
	}
	if _, err := os.Stat(filepath.Join(outside, "part-00000")); err == nil {
		t.Fatal("a file was written outside the data root")
	}
	if err := d.WriteFile("_temporary/_SUCCESS", nil); err == nil {
		t.Fatal("WriteFile followed a link out of the data root")
	}
	if err := d.Rename("_temporary/secret", "stolen"); err == nil {
		t.Fatal("Rename moved a file in from outside the data root")
	}
	if err := d.RemoveAll("_temporary/secret"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
			t.Fatal("RemoveAll removed a file outside the data root")
		}
	}
	if f, err := d.Open("_temporary/secret"); err == nil {
		f.Close()
		t.Fatal("Open read through a link out of the data root")
	}

	// A textFile split checked at submission, whose file is swapped for a
	// link out before the task reads it.
	in := filepath.Join(data, "in.txt")
	os.WriteFile(in, []byte("s3cret\n"), 0o644)
	st, _ := os.Stat(in)
	splits := &textParams{Splits: []plan.Split{{Path: in, Start: 0, Length: st.Size(), Size: st.Size(), ModTime: st.ModTime().UnixNano()}}}
	os.Remove(in)
	os.Symlink(filepath.Join(outside, "secret"), in)
	os.Chtimes(filepath.Join(outside, "secret"), st.ModTime(), st.ModTime())
	err = readTextSplit(context.Background(), c, splits, 0, func(Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "textFile") {
		t.Fatalf("a split swapped for a link out of the root was read: %v", err)
	}
}

// Links that stay inside the data root still work, and unconfined
// directories are plain paths.
func TestConfinedDirFollowsLinksInsideTheRoot(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	os.MkdirAll(filepath.Join(data, "real"), 0o755)
	os.Symlink("real", filepath.Join(data, "alias"))
	c := &Confinement{DataRoots: []string{data}}
	d, err := c.OpenDir("saveAsTextFile", filepath.Join(data, "alias", "out"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.Create("_temporary/1/attempt-0/part-00000")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x\n")
	f.Close()
	if err := d.Rename("_temporary/1/attempt-0/part-00000", "part-00000"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveAll("_temporary"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if b, err := os.ReadFile(filepath.Join(data, "real", "out", "part-00000")); err != nil || string(b) != "x\n" {
		t.Fatalf("part file: %q %v", b, err)
	}
	if _, err := c.OpenDir("saveAsTextFile", filepath.Join(root, "elsewhere")); err == nil {
		t.Fatal("a directory outside the roots opened")
	}

	var open *Confinement
	os.MkdirAll(filepath.Join(root, "elsewhere"), 0o755)
	od, err := open.OpenDir("saveAsTextFile", filepath.Join(root, "elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	if err := od.WriteFile("_SUCCESS", nil); err != nil {
		t.Fatal(err)
	}
	od.Close()
}
