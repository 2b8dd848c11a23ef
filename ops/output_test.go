package ops

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDirOutputCommitProtocol: the local output's check, attempts and job
// commit, as executors run them.
func TestDirOutputCommitProtocol(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cf := &Confinement{DataRoots: []string{root}}
	dir := filepath.Join(root, "out")
	out, err := cf.OpenOutput(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Check(ctx); err != nil {
		t.Fatalf("check of a missing directory: %v", err)
	}
	a, err := out.Create(ctx, 3, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(a, "a\n")
	if err := a.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "part-00000")); err == nil {
		t.Fatal("part visible before its commit")
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	a.Discard()
	stray, _ := out.Create(ctx, 3, 11, 1)
	io.WriteString(stray, "stray\n")
	stray.Finish()
	if err := out.Check(ctx); !errors.Is(err, ErrOutputExists) {
		t.Fatalf("check of a non-empty directory: %v", err)
	}
	for range 2 {
		if err := out.CommitJob(ctx, 3); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"_SUCCESS", "part-00000"}; !slices.Equal(names, want) {
		t.Fatalf("output holds %v, want %v", names, want)
	}

	file := filepath.Join(root, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	fo, err := cf.OpenOutput(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer fo.Close()
	if err := fo.Check(ctx); !errors.Is(err, ErrOutputInvalid) {
		t.Fatalf("check of a file: %v", err)
	}
	if _, err := cf.OpenOutput(ctx, filepath.Join(t.TempDir(), "out")); !errors.Is(err, ErrConfined) {
		t.Fatalf("outside the data roots: %v", err)
	}
	if _, err := cf.OpenOutput(ctx, "relative/out"); !errors.Is(err, ErrOutputInvalid) {
		t.Fatalf("relative: %v", err)
	}
}
