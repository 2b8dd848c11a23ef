package executor

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileDurablyReplacesWhole: the file holds the new content with
// the permissions asked, no temporary file is left, and a temporary file
// a crash left behind changes nothing that is read.
func TestWriteFileDurablyReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := termPath(dir)
	if err := writeFileDurably(path, []byte("7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a crash in the middle of a write leaves: a torn temporary.
	if err := os.WriteFile(filepath.Join(dir, ".highest-term.tmp-crashed"), []byte("9"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loadTerm(dir); got != 7 {
		t.Fatalf("term %d, want 7", got)
	}
	if err := writeFileDurably(path, []byte("12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := loadTerm(dir); got != 12 {
		t.Fatalf("term %d, want 12", got)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 { // the file and the crashed temporary
		t.Fatalf("directory holds %d entries, want the file and the old temporary only", len(entries))
	}
	if err := writeFileDurably(filepath.Join(dir, "missing", "x"), nil, 0o644); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
}
