package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/client"
)

// TestReadmeTryingItRunsAsWritten: the README's "Trying it" commands run
// as written from a checkout: schedd -dev (here on free ports, so tests do
// not clash), then `batonctl submit -f examples/plans/wordcount.json -wait`
// from the repository's root, which counts the words of the sample data
// exactly. A command added to the block that this test does not know
// fails it, so the README and the test move together.
func TestReadmeTryingItRunsAsWritten(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "## Trying it\n\n```sh\n")
	if !ok {
		t.Fatal("README.md has no \"## Trying it\" sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	var submit []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		cmd, _, _ := strings.Cut(line, "#")
		cmd = strings.TrimSpace(cmd)
		switch {
		case cmd == "make build", cmd == "bin/schedd -dev &", cmd == "export BATON_ADDR=127.0.0.1:7101",
			strings.HasPrefix(cmd, "go run ./examples/"): // the examples run in TestExamples
		case strings.HasPrefix(cmd, "bin/batonctl submit "):
			submit = strings.Fields(strings.TrimPrefix(cmd, "bin/batonctl "))
		default:
			t.Fatalf("README's Trying it has a command this test does not run: %q", cmd)
		}
	}
	if submit == nil {
		t.Fatal("README's Trying it submits no plan")
	}

	ports := freePorts(t, 3)
	dev := exec.Command(filepath.Join(binDir, "schedd"), "-dev", "-raft-addr", ports[0], "-api-addr", ports[1], "-http-addr", ports[2])
	dev.Dir = t.TempDir()
	logf, err := os.Create(filepath.Join(dev.Dir, "schedd.log"))
	if err != nil {
		t.Fatal(err)
	}
	dev.Stdout, dev.Stderr = logf, logf
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Process.Kill(); dev.Wait(); logf.Close() })
	cl, err := client.Dial([]string{ports[1]}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(t, "schedd -dev's executor", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ex, err := cl.Executors(ctx)
		return err == nil && len(ex) == 1 && ex[0].Alive
	})

	cmd := exec.Command(filepath.Join(binDir, "batonctl"), submit...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "BATON_ADDR="+ports[1])
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("batonctl %s: %v\n%s", strings.Join(submit, " "), err, stderr.String())
	}
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("output line %q is not word<TAB>count", line)
		}
		got[k] = n
	}
	want := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "plans", "data", "*.txt"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range strings.Fields(string(b)) {
			want[strings.ToLower(w)]++
		}
	}
	if len(want) == 0 {
		t.Fatal("no sample data under examples/plans/data")
	}
	sameCounts(t, got, want)
}
