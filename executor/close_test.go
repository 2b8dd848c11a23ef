package executor

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// TestCloseWaitsForTasks: Close cancels a running task and returns only
// after the task's goroutine ended, its write to the block store
// included: the task, which ignores its cancellation for a while (as a
// user's function may), still writes its result to an open store, and
// finds no closed one.
func TestCloseWaitsForTasks(t *testing.T) {
	started := make(chan struct{})
	closeReturned := make(chan struct{})
	var once sync.Once
	reg := ops.NewRegistry()
	if err := reg.Register(ops.Func{Name: "test.slow", Kind: ops.KindMap, Doc: "blocks until killed, then a while longer",
		New: func(json.RawMessage) (any, error) {
			return ops.MapFunc(func(tc *ops.TaskContext, r ops.Record) (ops.Record, error) {
				once.Do(func() { close(started) })
				<-tc.Ctx.Done()
				// Go on after the kill, as a function that does not look
				// at its context does: until Close returns (which it must
				// not do while this runs) or, with a Close that waits,
				// for a second.
				select {
				case <-closeReturned:
				case <-time.After(time.Second):
				}
				return r, nil
			}), nil
		}}); err != nil {
		t.Fatal(err)
	}
	f, addr := startFake(t, 1)
	dir := t.TempDir()
	e, err := New(Options{ID: "x", DataDir: dir, Schedulers: []string{addr}, Cores: 2, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; e.Close() })

	p, err := plan.Parse([]byte(`{"datasets": {"r": {"op": "range", "n": 1, "partitions": 1},
		"m": {"op": "map", "input": "r", "fn": "test.slow"}},
		"action": {"op": "count", "input": "m"}}`))
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
	s := <-f.sessions
	m := launch(1, 1, g)
	l := m.GetLaunch().Tasks[0]
	l.GraphKey = "slow"
	l.Node = int32(cg.Output)
	l.MaxDirectResultSize = 0 // the result goes to the block store
	s.Send(m)
	<-started

	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	close(closeReturned)
	e.mu.Lock()
	u, ended := e.pending[1]
	running := len(e.running)
	e.mu.Unlock()
	if !ended || running != 0 {
		t.Fatalf("Close returned with the task's goroutine still running (ended %v, %d running)", ended, running)
	}
	if st := u.status; st.State != api.TaskState_TASK_STATE_FINISHED || !st.Indirect {
		t.Fatalf("task 1 after Close: %v indirect %v %q; want finished, its result in the store", st.State, st.Indirect, st.Message)
	}
	store, err := blockstore.Open(filepath.Join(dir, "blocks"), &blockstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if res, err := store.Result(1, 1); err != nil || len(res) == 0 {
		t.Fatalf("the result written before Close returned: %q, %v", res, err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("a second close: %v", err)
	}
}

// TestCloseKillsRunningTasks: Close kills a task that would run for a
// long time (a built-in range source), returns only once its goroutine
// has ended and Run has returned, and a launch after Close starts
// nothing.
func TestCloseKillsRunningTasks(t *testing.T) {
	f, addr := startFake(t, 1)
	e, err := New(Options{ID: "x", DataDir: t.TempDir(), Schedulers: []string{addr}, Cores: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); e.Close() })
	s := <-f.sessions
	long, err := json.Marshal(&plan.Graph{Nodes: []plan.Node{{Name: "r", Op: "range", Partitions: 1, Params: []byte(`{"n":1000000000000}`)}}, Action: plan.GraphAction{Op: "count"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(launch(1, 1, long))
	waitFor(t, "the task to run", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.running) == 1
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	running, u := len(e.running), e.pending[1]
	e.mu.Unlock()
	if running != 0 || u == nil || u.status.State != api.TaskState_TASK_STATE_KILLED {
		t.Fatalf("after Close: %d tasks running, task 1's status %v; want none running, task 1 killed", running, u)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	default:
		t.Fatal("Close returned before Run did")
	}
	e.launch(context.Background(), launch(2, 1, long).GetLaunch().Tasks[0])
	e.mu.Lock()
	running, u = len(e.running), e.pending[2]
	e.mu.Unlock()
	if running != 0 || u != nil {
		t.Fatalf("a launch after Close: %d tasks running, status %v", running, u)
	}
	if err := e.Run(context.Background()); err == nil {
		t.Fatal("Run after Close returned no error")
	}
}

// TestCloseClosesSchedulerConnections: the executor owns its connections
// to the schedulers: Close shuts every one down, and none is dialled
// after it (Run, which dials them, has returned).
func TestCloseClosesSchedulerConnections(t *testing.T) {
	f, addr := startFake(t, 1)
	_, other := startFake(t, 1)
	e, err := New(Options{ID: "x", DataDir: t.TempDir(), Schedulers: []string{addr, other}, Cores: 1})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- e.Run(context.Background()) }()
	t.Cleanup(func() { e.Close() })
	<-f.sessions
	e.schedMu.Lock()
	var conns []*grpc.ClientConn
	for _, cc := range e.sched {
		conns = append(conns, cc)
	}
	e.schedMu.Unlock()
	if len(conns) == 0 {
		t.Fatal("no scheduler connection during a session")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	default:
		t.Fatal("Close returned before Run did")
	}
	for i, cc := range conns {
		if s := cc.GetState(); s != connectivity.Shutdown {
			t.Errorf("connection %d (%s) after Close: %v", i, cc.Target(), s)
		}
	}
	e.schedMu.Lock()
	left := len(e.sched)
	e.schedMu.Unlock()
	if left != 0 {
		t.Fatalf("%d scheduler connections after Close", left)
	}
}
