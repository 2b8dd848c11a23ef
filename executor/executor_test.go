package executor

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
)

// fakeDriver is a scripted leader: it records what executors say and
// lets the test send orders on the current session.
type fakeDriver struct {
	api.UnimplementedExecutorsServer
	mu       sync.Mutex
	term     uint64
	hellos   []*api.Hello
	updates  []*api.TaskStatus
	commits  []*api.TaskID // commit requests
	silent   bool          // answer nothing (a frozen leader)
	sessions chan grpc.BidiStreamingServer[api.ExecutorMessage, api.DriverMessage]
}

func (f *fakeDriver) Connect(stream grpc.BidiStreamingServer[api.ExecutorMessage, api.DriverMessage]) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.hellos = append(f.hellos, m.GetHello())
	term, silent := f.term, f.silent
	f.mu.Unlock()
	if silent {
		<-stream.Context().Done()
		return nil
	}
	stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_Welcome{Welcome: &api.Welcome{Term: term, HeartbeatIntervalMs: 50}}})
	f.sessions <- stream
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil
		}
		f.mu.Lock()
		silent := f.silent
		f.updates = append(f.updates, m.GetUpdates().GetUpdates()...)
		if c := m.GetCommit(); c != nil {
			f.commits = append(f.commits, c.Id)
		}
		f.mu.Unlock()
		if !silent && m.GetCommit() == nil && len(m.GetUpdates().GetUpdates()) == 0 {
			stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{}}})
		}
	}
}

func (f *fakeDriver) finished() map[uint64]*api.TaskStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint64]*api.TaskStatus{}
	for _, u := range f.updates {
		out[u.Id.Task] = u
	}
	return out
}

func startFake(t *testing.T, term uint64) (*fakeDriver, string) {
	t.Helper()
	f := &fakeDriver{term: term, sessions: make(chan grpc.BidiStreamingServer[api.ExecutorMessage, api.DriverMessage], 8)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	api.RegisterExecutorsServer(g, f)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return f, ln.Addr().String()
}

func launch(task, term uint64, g []byte) *api.DriverMessage {
	return &api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: &api.Launch{Tasks: []*api.TaskLaunch{{
		Id: &api.TaskID{Task: task, Job: 1, Stage: 0, Partition: 0}, Term: term, Graph: g, GraphKey: "g", Node: 0,
		MaxDirectResultSize: 1 << 16, MaxResultSize: 1 << 30,
	}}}}}
}

func countGraph(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(&plan.Graph{Nodes: []plan.Node{{Name: "r", Op: "range", Partitions: 1, Params: []byte(`{"n":7}`)}}, Action: plan.GraphAction{Op: "count"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Generous: the race detector on a loaded 2-core machine runs the
	// 80-result backlog test in tens of seconds.
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startExecutor(t *testing.T, dir string, scheds ...string) (*Executor, context.CancelFunc) {
	t.Helper()
	e, err := New(Options{ID: "x", DataDir: dir, Schedulers: scheds, Cores: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; e.Close() })
	return e, cancel
}

// TestFencing: launches and kills from a term below the highest seen are
// refused, and the highest term survives a restart.
func TestFencing(t *testing.T) {
	f, addr := startFake(t, 5)
	e, _ := startExecutor(t, t.TempDir(), addr)
	s := <-f.sessions
	g := countGraph(t)
	s.Send(launch(1, 5, g))
	waitFor(t, "task 1 to finish", func() bool { return f.finished()[1] != nil })
	if st := f.finished()[1]; st.State != api.TaskState_TASK_STATE_FINISHED {
		t.Fatalf("task 1: %v %s", st.State, st.Message)
	}
	// A launch from term 4 (a deposed leader's) is refused.
	s.Send(launch(2, 4, g))
	s.Send(launch(3, 6, g)) // a newer term is obeyed and raises the bar
	waitFor(t, "task 3 to finish", func() bool { return f.finished()[3] != nil })
	if f.finished()[2] != nil {
		t.Fatal("a launch from an older term was obeyed")
	}
	s.Send(launch(4, 5, g)) // term 5 is now below 6: refused
	s.Send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: 5, Tasks: []uint64{3}}}})
	s.Send(launch(5, 6, g))
	waitFor(t, "task 5 to finish", func() bool { return f.finished()[5] != nil })
	if f.finished()[4] != nil {
		t.Fatal("a launch from term 5 was obeyed after term 6")
	}
	e.mu.Lock()
	fenced, highest := e.stats.fenced, e.highestTerm
	e.mu.Unlock()
	if fenced != 3 || highest != 6 {
		t.Fatalf("fenced %d orders with highest term %d, want 3 and 6", fenced, highest)
	}
	// The highest term survives a restart.
	if got := loadTerm(e.opts.DataDir); got != 6 {
		t.Fatalf("stored highest term %d, want 6", got)
	}
}

// TestReportsSurviveALeaderChange: a task's report that no leader
// acknowledged is kept and sent to the next leader, whose hello lists it;
// a leader that stops answering heartbeats is left for another.
func TestReportsSurviveALeaderChange(t *testing.T) {
	old, oldAddr := startFake(t, 1)
	next, nextAddr := startFake(t, 2)
	e, _ := startExecutor(t, t.TempDir(), oldAddr, nextAddr)
	s := <-old.sessions
	s.Send(launch(7, 1, countGraph(t)))
	waitFor(t, "the report of task 7", func() bool { return old.finished()[7] != nil })
	// The old leader never acknowledges, and then freezes.
	old.mu.Lock()
	old.silent = true
	old.mu.Unlock()
	<-next.sessions
	next.mu.Lock()
	h := next.hellos[len(next.hellos)-1]
	next.mu.Unlock()
	if len(h.Unacked) != 1 || h.Unacked[0].Task != 7 || h.HighestTerm != 1 {
		t.Fatalf("hello to the new leader: unacked %v, highest term %d", h.Unacked, h.HighestTerm)
	}
	waitFor(t, "task 7's report to reach the new leader", func() bool { return next.finished()[7] != nil })
	if st := next.finished()[7]; st.State != api.TaskState_TASK_STATE_FINISHED {
		t.Fatalf("resent report: %v", st.State)
	}
	_ = e
}

// TestDeposedWelcomeRefused: an executor that has seen term 6 (before a
// restart, even) refuses a session with a leader of term 3, and keeps
// looking for the real leader.
func TestDeposedWelcomeRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(termPath(dir), []byte("6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f3, addr3 := startFake(t, 3)
	e, _ := startExecutor(t, dir, addr3)
	waitFor(t, "hellos to the deposed leader", func() bool {
		f3.mu.Lock()
		defer f3.mu.Unlock()
		return len(f3.hellos) >= 3
	})
	e.mu.Lock()
	highest, session := e.highestTerm, e.sessionID
	e.mu.Unlock()
	if highest != 6 || session != 0 {
		t.Fatalf("after a deposed leader's welcome: highest term %d, session %d; want 6 and none", highest, session)
	}
}
