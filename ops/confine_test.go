package ops

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfinementPipeAllowList(t *testing.T) {
	var none Confinement
	if err := none.CheckPipe("sh"); !errors.Is(err, ErrConfined) || !strings.Contains(err.Error(), "-pipe-allow") {
		t.Fatalf("no allow list: %v", err)
	}
	c := &Confinement{PipeAllow: []string{"awk", "/usr/bin/tr"}}
	for cmd, ok := range map[string]bool{"awk": true, "/usr/bin/tr": true, "tr": false, "/tmp/x/awk": false, "sh": false, "awk ": false} {
		if err := c.CheckPipe(cmd); (err == nil) != ok {
			t.Errorf("CheckPipe(%q) = %v, want allowed=%v", cmd, err, ok)
		}
	}
	if err := (&Confinement{PipeAllow: []string{"*"}}).CheckPipe("anything"); err != nil {
		t.Fatal(err)
	}
	var open *Confinement
	if err := open.CheckPipe("sh"); err != nil {
		t.Fatal("a nil confinement allows everything")
	}
}

func TestConfinementDataRootsRefuseTraversalAndLinks(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	os.MkdirAll(filepath.Join(data, "in"), 0o755)
	os.WriteFile(filepath.Join(data, "in", "a.txt"), []byte("x\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "data2"), 0o755)
	os.Symlink("/etc", filepath.Join(data, "etc"))
	os.Symlink(filepath.Join(root, "data2", "planted"), filepath.Join(data, "dangling")) // leads out, to nothing yet
	c := &Confinement{DataRoots: []string{data}}
	for path, ok := range map[string]bool{
		filepath.Join(data, "in", "a.txt"):          true,
		filepath.Join(data, "out", "new", "part-0"): true, // not there yet
		data:                                    true,
		filepath.Join(data, "..", "data2", "x"): false,
		filepath.Join(root, "data2", "x"):       false, // a root's name as a prefix is not the root
		filepath.Join(data, "etc", "passwd"):    false, // a link out of the root
		"/etc/passwd":                           false,
		"in/a.txt":                              false,
	} {
		if err := c.CheckPath("textFile", path); (err == nil) != ok {
			t.Errorf("CheckPath(%q) = %v, want allowed=%v", path, err, ok)
		}
	}
	if err := (&Confinement{}).CheckPath("textFile", filepath.Join(data, "in")); !errors.Is(err, ErrConfined) || !strings.Contains(err.Error(), "-data-root") {
		t.Fatalf("no roots: %v", err)
	}
	r := FileResolver{Confine: c}
	if _, err := r.TextFileSplits(filepath.Join(data, "in", "*.txt"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.TextFileSplits("/etc/pass*", 1); !errors.Is(err, ErrConfined) {
		t.Fatalf("a glob outside the roots: %v", err)
	}
	if _, err := r.TextFileSplits(filepath.Join(data, "etc", "pass*"), 1); !errors.Is(err, ErrConfined) {
		t.Fatalf("a glob through a link out of the roots: %v", err)
	}
}

// TestPipeRunsAsTheConfinedUser: with RunAs, the program runs as that
// user (needs root to switch users).
func TestPipeRunsAsTheConfinedUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching users needs root")
	}
	if _, err := osexec.LookPath("id"); err != nil {
		t.Skip("no id(1)")
	}
	cred, err := LookupUser("nobody")
	if err != nil {
		t.Skip(err)
	}
	cf := &Confinement{PipeAllow: []string{"id"}, RunAs: cred}
	var out []string
	err = runPipe(context.Background(), cf, &pipeParams{Command: "id", Args: []string{"-u"}}, func(func(Record) error) error { return nil }, func(r Record) error {
		out = append(out, string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0] != "65534" {
		t.Fatalf("id -u printed %q, want nobody's uid", out)
	}
	if err := runPipe(context.Background(), cf, &pipeParams{Command: "sh", Args: []string{"-c", "id"}}, func(func(Record) error) error { return nil }, func(Record) error { return nil }); !errors.Is(err, ErrConfined) {
		t.Fatalf("a program not allowed ran: %v", err)
	}
}

// TestPipeGetsNoSecrets: a pipe program sees neither the executor's
// BATON_* variables (its token) nor plan variables that load code into
// an allowed program.
func TestPipeGetsNoSecrets(t *testing.T) {
	t.Setenv("BATON_TOKEN", "the-executor-token")
	var out []string
	err := runPipe(context.Background(), nil, &pipeParams{Command: "sh", Args: []string{"-c", "echo \"${BATON_TOKEN}:${LD_PRELOAD}:${OK}\""},
		Env: map[string]string{"LD_PRELOAD": "/tmp/evil.so", "OK": "kept"}}, func(func(Record) error) error { return nil }, func(r Record) error {
		out = append(out, string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0] != "::kept" {
		t.Fatalf("the program saw %q, want \"::kept\"", out)
	}
}
