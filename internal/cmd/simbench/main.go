// Command simbench measures the scheduler at scale without the data
// plane: the real fsm, dag and driver on a one-node Raft log with real
// bbolt storage (fsync on every entry) and the group-commit proposer, and
// simulated executors that speak the session protocol in memory and end
// every task at once. It runs one job of -tasks tasks on -executors ×
// -slots slots, then a stream of small jobs, and reports:
//
//   - sustained tasks/s (the median of 200 ms windows, and overall);
//
//   - scheduling latency: for the stream, from a job's submission being
//     applied (the submitter's proposal returning: a little late, so
//     the figure errs low by the proposer's answer) to each task's
//     launch reaching its executor (runnable → launched), p50/p99; for the big job, from an executor's report
//     freeing a slot to the next launch it receives (slot refill);
//
//   - the process's peak heap (leader and simulated executors together);
//
//   - the snapshot's size and the time to take it and to restore it.
//
//     go run ./internal/cmd/simbench                  # 1,000 × 16, 1,000,000 tasks
//     go run ./internal/cmd/simbench -tasks 100000    # quicker
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/driver"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/propose"
	"github.com/baton-sched/baton/raftnet"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func main() { os.Exit(run()) }

type config struct {
	executors, slots, tasks int
	streamJobs, streamSize  int
	streamFor               time.Duration
}

func run() int {
	var c config
	flag.IntVar(&c.executors, "executors", 1000, "simulated executors")
	flag.IntVar(&c.slots, "slots", 16, "slots (cores) per executor")
	flag.IntVar(&c.tasks, "tasks", 1_000_000, "tasks of the big job")
	flag.IntVar(&c.streamJobs, "stream-jobs", 8, "small jobs in flight at once in the stream")
	flag.IntVar(&c.streamSize, "stream-tasks", 200, "tasks of each small job")
	flag.DurationVar(&c.streamFor, "stream-for", 15*time.Second, "how long the stream of small jobs runs")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *cpuprofile != "" {
		out, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "simbench:", err)
			return 1
		}
		pprof.StartCPUProfile(out)
		defer pprof.StopCPUProfile()
	}
	if err := bench(c); err != nil {
		fmt.Fprintln(os.Stderr, "simbench:", err)
		return 1
	}
	return 0
}

func bench(c config) error {
	dir, err := os.MkdirTemp("", "baton-simbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, err := freePort()
	if err != nil {
		return err
	}
	f := fsm.New(fsm.Options{})
	node, err := raftnet.Open(raftnet.Options{ID: "sim", DataDir: filepath.Join(dir, "raft"), RaftAddr: addr,
		Bootstrap: []raftnet.Peer{{ID: "sim", Addr: addr}}, FSM: f})
	if err != nil {
		return err
	}
	defer node.Shutdown()
	prop := propose.New(node, propose.Options{})
	defer prop.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := node.WaitLeader(ctx); err != nil {
		return err
	}
	d := driver.New(f, node, prop, func() (string, string) { return "sim", addr }, driver.Options{Logger: slog.New(slog.DiscardHandler)})
	d.Start()
	defer d.Stop()
	for !d.Driving() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the driver never drove")
		case <-f.Changed():
		case <-time.After(10 * time.Millisecond):
		}
	}

	heap := &heapWatch{}
	heap.start()
	defer heap.stop()

	cl := newCluster(d, c.executors, c.slots)
	defer cl.stop()
	if err := cl.waitRegistered(f, 60*time.Second); err != nil {
		return err
	}
	fmt.Printf("simbench: %d executors × %d slots registered (Raft on bbolt in %s)\n", c.executors, c.slots, dir)

	// The big job.
	start := time.Now()
	res, err := prop.Propose(context.Background(), &dag.SubmitJob{Graph: collectJob("big", c.tasks)})
	if err != nil || res[0].Err != nil {
		return fmt.Errorf("submit: %v %v", err, res[0].Err)
	}
	big := res[0].Job
	rates, err := waitJob(f, big, 30*time.Minute)
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("big job: %d tasks in %s: %.0f tasks/s overall, %.0f tasks/s sustained (median of %d 200 ms windows)\n",
		c.tasks, took.Round(time.Millisecond), float64(c.tasks)/took.Seconds(), median(rates), len(rates))
	p50, p99 := cl.refill.quantiles()
	fmt.Printf("  slot refill (report sent → next launch received): p50 %s, p99 %s over %d refills\n", p50, p99, cl.refill.n())
	fmt.Printf("  peak heap so far: %s\n", mib(heap.peak()))

	// The snapshot, with the big job's results in the state.
	if err := snapshot(f, dir); err != nil {
		return err
	}
	if _, err := prop.Propose(context.Background(), &dag.ReleaseJob{Job: big}); err != nil {
		return err
	}

	// The stream of small jobs.
	cl.refill.reset()
	var launched, submitted atomic.Int64
	lat := &samples{}
	var lmu sync.Mutex
	launches := map[uint64][]time.Time{}
	cl.onLaunch = func(job uint64, at time.Time) {
		lmu.Lock()
		launches[job] = append(launches[job], at)
		lmu.Unlock()
	}
	streamStart := time.Now()
	var wg sync.WaitGroup
	var streamErr atomic.Value
	for w := 0; w < c.streamJobs; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Since(streamStart) < c.streamFor; i++ {
				res, err := prop.Propose(context.Background(), &dag.SubmitJob{Graph: collectJob(fmt.Sprintf("s%d-%d", w, i), c.streamSize)})
				if err != nil || res[0].Err != nil {
					streamErr.Store(fmt.Errorf("submit: %v %v", err, res[0].Err))
					return
				}
				applied := time.Now()
				submitted.Add(1)
				if _, err := waitJob(f, res[0].Job, 5*time.Minute); err != nil {
					streamErr.Store(err)
					return
				}
				lmu.Lock()
				ats := launches[uint64(res[0].Job)]
				delete(launches, uint64(res[0].Job))
				lmu.Unlock()
				for _, at := range ats {
					// A launch can reach its executor before the
					// proposer's answer reaches the submitter.
					lat.add(max(0, at.Sub(applied)))
					launched.Add(1)
				}
				prop.Propose(context.Background(), &dag.ReleaseJob{Job: res[0].Job})
			}
		}(w)
	}
	wg.Wait()
	if err, ok := streamErr.Load().(error); ok && err != nil {
		return err
	}
	st := time.Since(streamStart)
	n := submitted.Load() * int64(c.streamSize)
	p50, p99 = lat.quantiles()
	fmt.Printf("stream: %d jobs of %d tasks (%d at once) in %s: %.0f tasks/s\n", submitted.Load(), c.streamSize, c.streamJobs, st.Round(time.Millisecond), float64(n)/st.Seconds())
	fmt.Printf("  scheduling latency (submission applied → launch received): p50 %s, p99 %s over %d tasks\n", p50, p99, launched.Load())
	fmt.Printf("peak heap (leader and %d simulated executors in one process): %s\n", c.executors, mib(heap.peak()))
	return nil
}

func collectJob(name string, n int) *plan.Graph {
	return &plan.Graph{Name: name, Nodes: []plan.Node{{Name: "src", Op: "range", Partitions: n}}, Action: plan.GraphAction{Op: "collect"}}
}

// waitJob waits for a job to succeed and returns its rates of finished
// tasks per second over windows of rateWindow (those with progress).
func waitJob(f *fsm.FSM, id dag.JobID, limit time.Duration) ([]float64, error) {
	deadline := time.Now().Add(limit)
	var rates []float64
	last, lastAt := 0, time.Now()
	for {
		var j dag.JobInfo
		f.Read(func(s *dag.State) { j, _ = s.Job(id) })
		switch j.Status {
		case dag.JobSucceeded:
			return rates, nil
		case dag.JobFailed, dag.JobCancelled:
			return nil, fmt.Errorf("job %d %s: %s", id, j.Status, j.Message)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("job %d: %d of %d tasks after %s", id, j.Finished, j.Tasks, limit)
		}
		if el := time.Since(lastAt); el >= rateWindow {
			if j.Finished > last {
				rates = append(rates, float64(j.Finished-last)/el.Seconds())
			}
			last, lastAt = j.Finished, time.Now()
		}
		select {
		case <-f.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

const rateWindow = 200 * time.Millisecond

// snapshot takes the state's snapshot into a file and restores it into a
// fresh FSM, timing both.
func snapshot(f *fsm.FSM, dir string) error {
	path := filepath.Join(dir, "state.snap")
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	start := time.Now()
	snap, err := f.Snapshot()
	if err != nil {
		return err
	}
	sink := &fileSink{File: file}
	if err := snap.Persist(sink); err != nil {
		return err
	}
	take := time.Since(start)
	info, _ := os.Stat(path)
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	start = time.Now()
	g := fsm.New(fsm.Options{})
	if err := g.Restore(in); err != nil {
		return err
	}
	restore := time.Since(start)
	fmt.Printf("snapshot with the big job's results: %s, taken (encoded and written, fsync) in %s, restored in %s\n", mib(uint64(info.Size())), take.Round(time.Millisecond), restore.Round(time.Millisecond))
	return nil
}

type fileSink struct{ *os.File }

func (s *fileSink) ID() string { return "simbench" }

// Close makes the snapshot durable, as Raft's file sink does.
func (s *fileSink) Close() error {
	if err := s.File.Sync(); err != nil {
		s.File.Close()
		return err
	}
	return s.File.Close()
}

func (s *fileSink) Cancel() error { return s.File.Close() }

var _ raft.SnapshotSink = (*fileSink)(nil)

// cluster is the simulated executors.
type cluster struct {
	d        *driver.Driver
	execs    []*simExec
	refill   *samples
	onLaunch func(job uint64, at time.Time)
	wg       sync.WaitGroup
	done     chan struct{}
}

func newCluster(d *driver.Driver, n, slots int) *cluster {
	cl := &cluster{d: d, refill: &samples{}, done: make(chan struct{})}
	cl.onLaunch = func(uint64, time.Time) {}
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		e := &simExec{cl: cl, id: fmt.Sprintf("e%04d", i), slots: slots, ctx: ctx, cancel: cancel,
			in: make(chan *api.ExecutorMessage, 64), out: make(chan *api.DriverMessage, 256)}
		cl.execs = append(cl.execs, e)
		cl.wg.Add(2)
		go func() {
			defer cl.wg.Done()
			d.Connect(e)
			cancel()
		}()
		go func() {
			defer cl.wg.Done()
			e.run()
		}()
	}
	// Heartbeats, for executors with nothing to report.
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-cl.done:
				return
			case <-t.C:
				for _, e := range cl.execs {
					e.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{}}})
				}
			}
		}
	}()
	return cl
}

func (cl *cluster) waitRegistered(f *fsm.FSM, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		n := 0
		f.Read(func(s *dag.State) {
			for _, e := range s.Executors() {
				if e.Alive {
					n++
				}
			}
		})
		if n == len(cl.execs) && len(cl.d.LastHeartbeat()) == len(cl.execs) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d executors registered", n, len(cl.execs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (cl *cluster) stop() {
	close(cl.done)
	for _, e := range cl.execs {
		e.cancel()
	}
	cl.wg.Wait()
}

// simExec is a simulated executor: a driver.Stream whose other end ends
// each launched task at once and reports it.
type simExec struct {
	cl     *cluster
	id     string
	slots  int
	ctx    context.Context
	cancel context.CancelFunc
	in     chan *api.ExecutorMessage // to the driver
	out    chan *api.DriverMessage   // from the driver
	// reported is when the executor last reported ends (unix ns; 0: the
	// refill it started was measured).
	reported atomic.Int64
	hello    atomic.Bool
}

func (e *simExec) Context() context.Context { return e.ctx }

// The rest of grpc.BidiStreamingServer: the session goes through the
// driver's gRPC handler (Connect), as a real executor's does, so the
// same program measures earlier builds of the driver too.
func (e *simExec) SetHeader(metadata.MD) error  { return nil }
func (e *simExec) SendHeader(metadata.MD) error { return nil }
func (e *simExec) SetTrailer(metadata.MD)       {}
func (e *simExec) SendMsg(any) error            { return fmt.Errorf("simbench: SendMsg unused") }
func (e *simExec) RecvMsg(any) error            { return fmt.Errorf("simbench: RecvMsg unused") }

var _ grpc.BidiStreamingServer[api.ExecutorMessage, api.DriverMessage] = (*simExec)(nil)

func (e *simExec) Send(m *api.DriverMessage) error {
	select {
	case e.out <- m:
		return nil
	case <-e.ctx.Done():
		return e.ctx.Err()
	}
}

func (e *simExec) Recv() (*api.ExecutorMessage, error) {
	if !e.hello.Swap(true) {
		return &api.ExecutorMessage{Msg: &api.ExecutorMessage_Hello{Hello: &api.Hello{ExecutorId: e.id, Addr: "127.0.0.1:1", Cores: int32(e.slots)}}}, nil
	}
	select {
	case m := <-e.in:
		return m, nil
	case <-e.ctx.Done():
		return nil, io.EOF
	}
}

func (e *simExec) send(m *api.ExecutorMessage) {
	select {
	case e.in <- m:
	case <-e.ctx.Done():
	}
}

func (e *simExec) run() {
	result := []byte("01234567")
	for {
		select {
		case <-e.ctx.Done():
			return
		case m := <-e.out:
			l := m.GetLaunch()
			if l == nil || len(l.Tasks) == 0 {
				continue
			}
			now := time.Now()
			if r := e.reported.Swap(0); r != 0 {
				e.cl.refill.add(now.Sub(time.Unix(0, r)))
			}
			ups := make([]*api.TaskStatus, len(l.Tasks))
			for i, t := range l.Tasks {
				e.cl.onLaunch(t.Id.Job, now)
				ups[i] = &api.TaskStatus{Id: t.Id, State: api.TaskState_TASK_STATE_FINISHED, DurationMs: 1, Result: result, ResultSize: int64(len(result))}
			}
			e.reported.Store(time.Now().UnixNano())
			e.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: ups}}})
		}
	}
}

// samples keeps durations for quantiles (a reservoir past maxSamples).
type samples struct {
	mu   sync.Mutex
	ds   []time.Duration
	seen int
}

const maxSamples = 1 << 20

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen++
	if len(s.ds) < maxSamples {
		s.ds = append(s.ds, d)
	} else {
		s.ds[s.seen%maxSamples] = d
	}
}

func (s *samples) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
}

func (s *samples) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ds, s.seen = nil, 0
}

func (s *samples) quantiles() (p50, p99 time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ds) == 0 {
		return 0, 0
	}
	ds := append([]time.Duration(nil), s.ds...)
	sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
	q := func(f float64) time.Duration {
		return ds[min(len(ds)-1, int(f*float64(len(ds))))].Round(10 * time.Microsecond)
	}
	return q(0.5), q(0.99)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// heapWatch samples the heap.
type heapWatch struct {
	max  atomic.Uint64
	done chan struct{}
	wg   sync.WaitGroup
}

func (h *heapWatch) start() {
	h.done = make(chan struct{})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > h.max.Load() {
				h.max.Store(m.HeapAlloc)
			}
			select {
			case <-h.done:
				return
			case <-t.C:
			}
		}
	}()
}

func (h *heapWatch) stop()        { close(h.done); h.wg.Wait() }
func (h *heapWatch) peak() uint64 { return h.max.Load() }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
