package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestExamples runs the programs under examples/ against a quorum, as a
// user would: each checks its own answer and exits non-zero if wrong.
func TestExamples(t *testing.T) {
	c := jobCluster(t)
	addr := c.nodes[c.order[0]].apiAddr
	for _, n := range c.order[1:] {
		addr += "," + c.nodes[n].apiAddr
	}
	dir := t.TempDir()
	want := genText(t, dir, 3, 500, 41)
	run := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, name), append([]string{"-addr", addr}, args...)...)
		cmd.Env = append(os.Environ(), secureEnv(t)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Run("wordcount", func(t *testing.T) {
		out := run(t, "wordcount", "-input", filepath.Join(dir, "*.txt"), "-top", "3")
		if !strings.HasPrefix(out, strconv.Itoa(len(want))+" distinct words") {
			t.Errorf("wordcount output:\n%s\nwant %d distinct words", out, len(want))
		}
	})
	t.Run("terasort", func(t *testing.T) {
		out := run(t, "terasort", "-dir", t.TempDir(), "-mb", "8", "-reducers", "4")
		if !strings.Contains(out, "valid: 4 part files") {
			t.Errorf("terasort output:\n%s", out)
		}
	})
	t.Run("join", func(t *testing.T) {
		out := run(t, "join", "-dir", t.TempDir(), "-users", "500", "-orders", "5000")
		if !strings.Contains(out, "matches the local computation") {
			t.Errorf("join output:\n%s", out)
		}
	})
	t.Run("pipe-awk", func(t *testing.T) {
		out := run(t, "pipe", "-n", "20000", "-program", "awk")
		if !strings.Contains(out, "through awk: 2666466670000") {
			t.Errorf("pipe output:\n%s", out)
		}
	})
	t.Run("pipe-python3", func(t *testing.T) {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("no python3 on this machine")
		}
		out := run(t, "pipe", "-n", "20000", "-program", "python3")
		if !strings.Contains(out, "through python3: 2666466670000") {
			t.Errorf("pipe output:\n%s", out)
		}
	})
}
