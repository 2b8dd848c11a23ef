package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
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
	if n < 2 || lastState != "succeeded" {
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

// timedCtl runs batonctl, checks its exit code, that stderr holds want
// and no gRPC internals, and that it returned within bound (generous: CI
// machines are busy; the measured time is logged).
func timedCtl(t *testing.T, bound time.Duration, code int, want string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, errOut, got := batonctl(t, args...)
	took := time.Since(start)
	t.Logf("batonctl %s: exit %d in %s: %s", strings.Join(args, " "), got, took.Round(time.Millisecond), strings.TrimSpace(errOut))
	if got != code || !strings.Contains(errOut, want) {
		t.Errorf("batonctl %v: exit %d, stderr %q; want exit %d and %q", args, got, errOut, code, want)
	}
	for _, internal := range []string{"desc =", "transport:", "rpc error", "code = "} {
		if strings.Contains(errOut, internal) {
			t.Errorf("batonctl %v: stderr shows gRPC internals (%q): %q", args, internal, errOut)
		}
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
		t.Errorf("batonctl %v: more than a line or two on stderr: %q", args, errOut)
	}
	if took > bound {
		t.Errorf("batonctl %v took %s, want at most %s", args, took, bound)
	}
	return out
}

// TestBatonctlFailsFastAndPlainly: a nonsense address is a usage error at
// once; a refused address and the HTTP port by mistake are reported in
// one plain line within about a second; a job that is not there is "job
// 999 not found" for status, cancel and release; with 2 of 3 members
// down, reads say there is no leader and how many members answer within
// a few seconds, executors too, and -stale reads the replica.
func TestBatonctlFailsFastAndPlainly(t *testing.T) {
	c := newCluster(t, 3)
	c.waitLeader("")
	all := strings.Join([]string{c.nodes["a"].apiAddr, c.nodes["b"].apiAddr, c.nodes["c"].apiAddr}, ",")

	timedCtl(t, 5*time.Second, 2, "not host:port", "-addr", "nonsense", "jobs")
	timedCtl(t, 5*time.Second, 1, "cannot reach 127.0.0.1:1: connection refused", "-addr", "127.0.0.1:1", "jobs")
	timedCtl(t, 5*time.Second, 1, "does not answer as a Baton API", "-addr", c.nodes["a"].httpA, "jobs")

	for _, cmd := range [][]string{{"job", "status", "999"}, {"job", "cancel", "999"}, {"job", "release", "999"}} {
		timedCtl(t, 30*time.Second, 1, "job 999 not found", append([]string{"-addr", all}, cmd...)...)
	}

	leader, _ := c.waitLeader("")
	var survivor string
	for _, id := range c.order {
		if id != leader && survivor == "" {
			survivor = id
			continue
		}
		c.kill(id)
	}
	timedCtl(t, 15*time.Second, 1, "no leader: 1 of 3 members reachable (use -stale to read this member's replica)", "-addr", all, "jobs")
	timedCtl(t, 15*time.Second, 1, "no leader: 1 of 3 members reachable", "-addr", all, "executors")
	timedCtl(t, 15*time.Second, 1, "no leader: 1 of 3 members reachable", "-addr", all, "job", "cancel", "1")
	if out, errOut, code := batonctl(t, "-addr", all, "jobs", "-stale"); code != 0 || !strings.Contains(out, "STATE") {
		t.Errorf("jobs -stale without a leader: exit %d: %s %s", code, out, errOut)
	}
	if _, errOut, code := batonctl(t, "-addr", all, "executors", "-stale"); code != 0 || !strings.Contains(errOut, "replica") {
		t.Errorf("executors -stale without a leader: exit %d, stderr %q; want 0 and a note that it is a replica", code, errOut)
	}
}

// TestBatonctlSubmitWaitInterruptAndTimeout: submit -wait prints the job
// id before it waits; Ctrl-C stops the wait (exit 130), saying the job
// still runs and how to cancel it, and it does run; -timeout bounds a
// wait; cancel and release are idempotent; JSON and -o name agree on the
// id.
func TestBatonctlSubmitWaitInterruptAndTimeout(t *testing.T) {
	c, cl := slowCluster(t)
	addr := strings.Join(c.APIAddrs(), ",")
	dir := t.TempDir()
	genText(t, dir, 2, 200, 7)
	planFile := filepath.Join(dir, "plan.json")
	b, _ := json.Marshal(slowWordCount(filepath.Join(dir, "*.txt"), 60000))
	if err := os.WriteFile(planFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cmd := exec.Command(filepath.Join(binDir, "batonctl"), "-addr", addr, "submit", "-f", planFile, "-wait")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var id string
	var rest []string
	select {
	case l := <-lines:
		m := regexp.MustCompile(`^job (\d+) submitted`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("submit -wait's first line: %q, want the job id", l)
		}
		id = m[1]
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("submit -wait printed no job id within 60s")
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	for l := range lines {
		rest = append(rest, l)
	}
	err = cmd.Wait()
	took := time.Since(start)
	code := cmd.ProcessState.ExitCode()
	msg := strings.Join(rest, "\n")
	t.Logf("Ctrl-C: exit %d in %s: %s", code, took.Round(time.Millisecond), msg)
	if code != 130 || !strings.Contains(msg, "interrupted: job "+id+" is still running") || !strings.Contains(msg, "batonctl job cancel "+id) {
		t.Errorf("Ctrl-C on submit -wait: exit %d (%v), stderr %q; want 130, still running and how to cancel", code, err, msg)
	}
	if took > 5*time.Second {
		t.Errorf("Ctrl-C took %s to stop submit -wait", took)
	}
	var n uint64
	fmt.Sscan(id, &n)
	if j, err := cl.Job(ctx, n, true); err != nil || j.State != api.JobState_JOB_STATE_RUNNING {
		t.Fatalf("the job after Ctrl-C: %v %v, want it running", j.GetState(), err)
	}

	// -timeout bounds a wait, and says the job goes on.
	timedCtl(t, 30*time.Second, 1, "gave up waiting after -timeout 2s: job "+id+" is still running", "-addr", addr, "-timeout", "2s", "job", "status", id, "-watch")

	// JSON: the id is a number, states are the tables' names, times RFC 3339.
	out, _, code := batonctl(t, "-addr", addr, "job", "status", id, "-o", "json")
	var js struct {
		ID        uint64    `json:"id"`
		State     string    `json:"state"`
		Submitted time.Time `json:"submitted"`
		Stages    []struct {
			State   string `json:"state"`
			Attempt *int   `json:"attempt"`
		} `json:"stages"`
	}
	if err := json.Unmarshal([]byte(out), &js); code != 0 || err != nil || js.ID != n || js.State != "running" || js.Submitted.IsZero() || len(js.Stages) == 0 {
		t.Errorf("job status -o json: exit %d, %v, %+v:\n%s", code, err, js, out)
	}
	if out, _, code := batonctl(t, "-addr", addr, "jobs", "-o", "name"); code != 0 || strings.TrimSpace(out) != id {
		t.Errorf("jobs -o name: exit %d, %q, want %q", code, out, id)
	}

	// Cancel, then cancel again: both exit 0; release twice, too.
	if out, errOut, code := batonctl(t, "-addr", addr, "job", "cancel", id); code != 0 || !strings.Contains(out, "job "+id+" cancelled") {
		t.Errorf("job cancel: exit %d: %s %s", code, out, errOut)
	}
	if out, errOut, code := batonctl(t, "-addr", addr, "job", "cancel", id); code != 0 || !strings.Contains(out, "already ended (cancelled)") {
		t.Errorf("job cancel again: exit %d: %s %s", code, out, errOut)
	}
	// An ended job's wait says how it ended, once.
	if _, errOut, code := batonctl(t, "-addr", addr, "job", "status", id, "-watch"); code != 1 || !strings.Contains(errOut, "job "+id+" cancelled: cancelled with batonctl") || strings.Contains(strings.ToLower(errOut), "cancelled: job") {
		t.Errorf("watching a cancelled job: exit %d, %q", code, errOut)
	}
	for i := 0; i < 2; i++ {
		if out, errOut, code := batonctl(t, "-addr", addr, "job", "release", id); code != 0 || !strings.Contains(out, "released") {
			t.Errorf("job release (%d): exit %d: %s %s", i, code, out, errOut)
		}
	}

	// submit -o json and -o name give the id as job status does.
	out, _, code = batonctl(t, "-addr", addr, "submit", "-f", planFile, "-o", "json")
	var sub struct {
		ID    uint64 `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &sub); code != 0 || err != nil || sub.ID == 0 || sub.State != "running" {
		t.Errorf("submit -o json: exit %d, %v: %s", code, err, out)
	}
	out, _, code = batonctl(t, "-addr", addr, "submit", "-f", planFile, "-o", "name")
	if code != 0 || !regexp.MustCompile(`^\d+\n$`).MatchString(out) {
		t.Errorf("submit -o name: exit %d, %q, want the id alone", code, out)
	}
	batonctl(t, "-addr", addr, "job", "cancel", "-all")
}

func itoa64(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
