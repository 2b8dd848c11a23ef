package executor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/plan"
)

func saveLaunch(t *testing.T, task, term uint64, dir string) *api.DriverMessage {
	t.Helper()
	g, err := json.Marshal(&plan.Graph{Nodes: []plan.Node{{Name: "r", Op: "range", Partitions: 1, Params: []byte(`{"n":3}`)}},
		Action: plan.GraphAction{Op: "saveAsTextFile", Path: dir}})
	if err != nil {
		t.Fatal(err)
	}
	m := launch(task, term, g)
	m.GetLaunch().Tasks[0].GraphKey = "save"
	return m
}

func (f *fakeDriver) asked(task uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.commits {
		if c.Task == task {
			return true
		}
	}
	return false
}

// TestOutputCommit: a saveAsTextFile attempt writes under _temporary and
// asks to commit; a deposed leader's decision is refused, a denial drops
// the file and fails the attempt as CommitDenied, an authorisation renames
// it to part-NNNNN; no temporary file is left.
func TestOutputCommit(t *testing.T) {
	f, addr := startFake(t, 5)
	e, _ := startExecutor(t, t.TempDir(), addr)
	s := <-f.sessions
	dir := filepath.Join(t.TempDir(), "out")

	s.Send(saveLaunch(t, 1, 5, dir))
	waitFor(t, "task 1 to ask to commit", func() bool { return f.asked(1) })
	if _, err := os.Stat(filepath.Join(dir, "_temporary", "1", "attempt-1", "part-00000")); err != nil {
		t.Fatalf("attempt file before the commit: %v", err)
	}
	// A decision from a deposed leader is refused: the task keeps waiting.
	s.Send(&api.DriverMessage{Msg: &api.DriverMessage_Commit{Commit: &api.CommitDecision{Term: 4, Task: 1, Authorized: true}}})
	waitFor(t, "the old decision to be fenced", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.stats.fenced == 1
	})
	if f.finished()[1] != nil {
		t.Fatal("task 1 ended on a deposed leader's commit decision")
	}
	s.Send(&api.DriverMessage{Msg: &api.DriverMessage_Commit{Commit: &api.CommitDecision{Term: 5, Task: 1, Authorized: false}}})
	waitFor(t, "task 1 to end", func() bool { return f.finished()[1] != nil })
	if st := f.finished()[1]; st.State != api.TaskState_TASK_STATE_FAILED || st.Failure != api.FailureKind_FAILURE_KIND_COMMIT_DENIED {
		t.Fatalf("denied task: %v %v %s", st.State, st.Failure, st.Message)
	}
	if _, err := os.Stat(filepath.Join(dir, "part-00000")); !os.IsNotExist(err) {
		t.Fatalf("a denied attempt committed its file: %v", err)
	}

	s.Send(saveLaunch(t, 2, 5, dir))
	waitFor(t, "task 2 to ask to commit", func() bool { return f.asked(2) })
	s.Send(&api.DriverMessage{Msg: &api.DriverMessage_Commit{Commit: &api.CommitDecision{Term: 5, Task: 2, Authorized: true}}})
	waitFor(t, "task 2 to end", func() bool { return f.finished()[2] != nil })
	if st := f.finished()[2]; st.State != api.TaskState_TASK_STATE_FINISHED {
		t.Fatalf("authorised task: %v %s", st.State, st.Message)
	}
	b, err := os.ReadFile(filepath.Join(dir, "part-00000"))
	if err != nil || strings.Join(strings.Fields(string(b)), " ") != "0 1 2" {
		t.Fatalf("part-00000: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("output directory holds %d entries, want part-00000 alone", len(entries))
	}
}

// TestInvalidUTF8MessageIsSent: a failure whose message holds bytes that
// are not UTF-8 (a program's binary stderr) is still reported, and the
// reports after it too.
func TestInvalidUTF8MessageIsSent(t *testing.T) {
	f, addr := startFake(t, 1)
	startExecutor(t, t.TempDir(), addr)
	s := <-f.sessions
	p, err := plan.Parse([]byte(`{"datasets": {"r": {"op": "range", "n": 3, "partitions": 1},
		"p": {"op": "pipe", "input": "r", "command": "sh", "args": ["-c", "printf 'bad \\377\\376 bytes' >&2; exit 3"]}},
		"action": {"op": "count", "input": "p"}}`))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := plan.Compile(p, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := json.Marshal(cg)
	if err != nil {
		t.Fatal(err)
	}
	m := launch(1, 1, g)
	m.GetLaunch().Tasks[0].GraphKey = "pipe"
	m.GetLaunch().Tasks[0].Node = int32(cg.Output)
	s.Send(m)
	waitFor(t, "the failure of task 1", func() bool { return f.finished()[1] != nil })
	if st := f.finished()[1]; st.State != api.TaskState_TASK_STATE_FAILED || !strings.Contains(st.Message, "bad \uFFFD bytes") {
		t.Fatalf("task 1: %v %q", st.State, st.Message)
	}
	s.Send(launch(2, 1, countGraph(t)))
	waitFor(t, "task 2 to finish", func() bool { return f.finished()[2] != nil })
}
