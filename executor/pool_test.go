package executor

import (
	"encoding/json"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/plan"
)

func sleepGraph(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(&plan.Graph{Nodes: []plan.Node{
		{Name: "r", Op: "range", Partitions: 1, Params: []byte(`{"n":1}`)},
		{Name: "s", Op: "mapPartitions", Partitions: 1, Fn: plan.Func{Name: "chaos.sleep", Args: []byte(`{"ms":600000}`)}, Deps: []plan.Dep{{Kind: plan.OneToOne, Parent: 0}}},
	}, Output: 1, Action: plan.GraphAction{Op: "count"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func launchOf(task, term uint64, key string, node int32, g []byte) *api.DriverMessage {
	m := launch(task, term, g)
	m.GetLaunch().Tasks[0].GraphKey = key
	m.GetLaunch().Tasks[0].Node = node
	return m
}

// TestTasksBeyondTheSlotsWaitAndAKilledOneEndsAtOnce: an executor of 2
// slots runs 2 tasks at a time; the tasks launched beyond them wait in
// launch order, and one killed while it waits is reported killed at once
// (the leader's slot is free), not when a slot frees.
func TestTasksBeyondTheSlotsWaitAndAKilledOneEndsAtOnce(t *testing.T) {
	f, addr := startFake(t, 1)
	startExecutor(t, t.TempDir(), addr) // 2 cores
	s := <-f.sessions
	sleep, count := sleepGraph(t), countGraph(t)
	s.Send(launchOf(1, 1, "sleep", 1, sleep))
	s.Send(launchOf(2, 1, "sleep", 1, nil))
	s.Send(launchOf(3, 1, "count", 0, count))
	s.Send(launchOf(4, 1, "count", 0, nil))
	s.Send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: 1, Tasks: []uint64{3}, Reason: "test"}}})
	waitFor(t, "the killed queued task's report", func() bool { return f.finished()[3] != nil })
	if st := f.finished()[3]; st.State != api.TaskState_TASK_STATE_KILLED || st.Message != "killed before it started" {
		t.Fatalf("task 3: %v %q, want killed before it started", st.State, st.Message)
	}
	if st := f.finished()[4]; st != nil {
		t.Fatalf("task 4 ran (%v) while both slots were taken by sleeping tasks (1: %v, 2: %v)", st.State, f.finished()[1], f.finished()[2])
	}
	// A slot frees: the waiting task runs.
	s.Send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: 1, Tasks: []uint64{1}, Reason: "test"}}})
	waitFor(t, "task 4 to finish", func() bool { return f.finished()[4] != nil })
	if st := f.finished()[4]; st.State != api.TaskState_TASK_STATE_FINISHED {
		t.Fatalf("task 4: %v %s", st.State, st.Message)
	}
	if st := f.finished()[1]; st == nil || st.State != api.TaskState_TASK_STATE_KILLED {
		t.Fatalf("task 1: %v, want killed", st)
	}
	if f.finished()[2] != nil {
		t.Fatal("task 2, still sleeping, ended")
	}
}
