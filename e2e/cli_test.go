package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/client"
)

// TestBatonctlWatchAndTables: job status -watch follows a job stage by
// stage until it ends (blocks of progress bars, or JSON objects with
// -o json); jobs, executors and operator leaders print aligned tables.
func TestBatonctlWatchAndTables(t *testing.T) {
	c, cl := slowCluster(t)
	addr := strings.Join(c.APIAddrs(), ",")
	dir := t.TempDir()
	genText(t, dir, 4, 800, 61)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, slowWordCount(filepath.Join(dir, "*.txt"), 400), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "batonctl"), "-addr", addr, "job", "status", itoa64(id), "-watch")
	cmd.Env = append(os.Environ(), secureEnv(t)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("job status -watch: %v\n%s", err, out)
	}
	text := string(out)
	blocks := strings.Count(text, "Job "+itoa64(id)+" ")
	if blocks < 2 || !strings.Contains(text, "running") || !strings.Contains(text, "succeeded") || !strings.Contains(text, "[###") || !strings.Contains(text, "complete") {
		t.Errorf("watch output (%d blocks):\n%s", blocks, text)
	}

	// -o json: one object a change, the last one ended.
	id2, err := cl.Submit(ctx, slowWordCount(filepath.Join(dir, "*.txt"), 300), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	watch := exec.Command(filepath.Join(binDir, "batonctl"), "-addr", addr, "job", "status", itoa64(id2), "-watch", "-o", "json")
	watch.Env = append(os.Environ(), secureEnv(t)...)
	out, err = watch.Output()
	if err != nil {
		t.Fatalf("job status -watch -o json: %v\n%s", err, out)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var n int
	var lastState string
	for dec.More() {
		var j struct {
			State string `json:"state"`
		}
		if err := dec.Decode(&j); err != nil {
			t.Fatalf("watch JSON: %v\n%s", err, out)
		}
		n++
		lastState = j.State
	}
	if n < 2 || lastState != "JOB_STATE_SUCCEEDED" {
		t.Errorf("watch JSON: %d objects, last state %q", n, lastState)
	}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"jobs"}, []string{"ID", "POOL", "PROGRESS", "[##########]", "succeeded"}},
		{[]string{"executors"}, []string{"SLOTS", "RUNNING", "BLOCKS", "SHUFFLES", "HEARTBEAT", "e1", "e2"}},
		{[]string{"operator", "leaders"}, []string{"TERM", "LEADER", "TOOK OVER IN", "EXECUTORS BACK"}},
	} {
		stdout, stderr, code := batonctl(t, append([]string{"-addr", addr}, tc.args...)...)
		if code != 0 {
			t.Errorf("batonctl %v: exit %d: %s", tc.args, code, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("batonctl %v: no %q in\n%s", tc.args, w, stdout)
			}
		}
	}
}

func itoa64(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
