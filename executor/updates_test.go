package executor

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
	"google.golang.org/grpc"
)

// backlogLeader is a scripted leader that acknowledges no task, so that
// every end stays pending, and can end the current session: a leader
// that died before logging what it was told. It takes messages up to the
// scheduler's own limit (64 MiB).
type backlogLeader struct {
	api.UnimplementedExecutorsServer
	mu       sync.Mutex
	sessions int
	got      map[int]map[uint64]bool // tasks reported, per session
	end      chan struct{}           // closed: the current session ends
	launches chan *api.Launch        // sent on the current session
}

func (b *backlogLeader) Connect(stream grpc.BidiStreamingServer[api.ExecutorMessage, api.DriverMessage]) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	b.mu.Lock()
	b.sessions++
	n, end := b.sessions, b.end
	b.got[n] = map[uint64]bool{}
	b.mu.Unlock()
	if err := stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_Welcome{Welcome: &api.Welcome{Term: 1, HeartbeatIntervalMs: 100}}}); err != nil {
		return err
	}
	msgs := make(chan *api.ExecutorMessage)
	go func() {
		defer close(msgs)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	for {
		select {
		case <-end:
			return nil
		case l := <-b.launches:
			if err := stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: l}}); err != nil {
				return err
			}
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			b.mu.Lock()
			for _, u := range m.GetUpdates().GetUpdates() {
				b.got[n][u.Id.Task] = true
			}
			b.mu.Unlock()
			// An empty acknowledgement: the leader is alive, and every
			// end stays pending.
			stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{}}})
		}
	}
}

// reported returns the most tasks one session at or after from heard of,
// and that session.
func (b *backlogLeader) reported(from int) (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, at := 0, 0
	for s, ids := range b.got {
		if s >= from && len(ids) > best {
			best, at = len(ids), s
		}
	}
	return best, at
}

// TestABacklogOfReportsReachesTheNextLeader: the ends a leader never
// acknowledged go again to the next one. They used to go in one message
// however many there were: past the 64 MiB a message may carry (here 80
// direct results of 1 MiB, as an executor that ran many tasks with large
// direct results through a failover would hold), the send failed, the
// session ended, and the next one tried the same message again: no end
// reached any leader again. A message now carries at most
// maxUpdateBytes of them, and the rest follow.
func TestABacklogOfReportsReachesTheNextLeader(t *testing.T) {
	const tasks, size = 80, 1 << 20
	b := &backlogLeader{got: map[int]map[uint64]bool{}, end: make(chan struct{}), launches: make(chan *api.Launch, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	api.RegisterExecutorsServer(g, b)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	e, err := New(Options{ID: "x", DataDir: t.TempDir(), Schedulers: []string{ln.Addr().String()}, Cores: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; e.Close() })

	// The first leader launches the tasks and hears of every end, one at
	// a time, as they finish.
	waitFor(t, "the first session", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.sessions == 1 })
	graph := blobGraph(t, size)
	launch := &api.Launch{}
	for i := uint64(1); i <= tasks; i++ {
		l := &api.TaskLaunch{Id: &api.TaskID{Task: i, Job: 1, Partition: 0}, Term: 1, GraphKey: "blob", Node: 1,
			MaxDirectResultSize: 2 * size, MaxResultSize: 1 << 30}
		if i == 1 {
			l.Graph = graph
		}
		launch.Tasks = append(launch.Tasks, l)
	}
	b.mu.Lock()
	end := b.end
	b.mu.Unlock()
	b.launches <- launch
	waitFor(t, "every end reported in the first session", func() bool {
		n, _ := b.reported(1)
		return n == tasks
	})
	e.mu.Lock()
	pending := len(e.pending)
	var direct int64
	for _, u := range e.pending {
		direct += int64(len(u.status.Result))
	}
	e.mu.Unlock()
	if want := int64(len(ops.AppendRecord(nil, ops.Record{Value: make([]byte, size)}))); pending != tasks || direct != tasks*want {
		t.Fatalf("%d ends pending with %d bytes of direct results, want %d with %d (none acknowledged)", pending, direct, tasks, tasks*want)
	}

	// The first leader dies before logging any: the next session must
	// bring every end to the next one.
	b.mu.Lock()
	b.end = make(chan struct{})
	b.mu.Unlock()
	close(end)
	waitFor(t, "every end reported again to the next leader", func() bool {
		n, _ := b.reported(2)
		return n == tasks
	})
}
