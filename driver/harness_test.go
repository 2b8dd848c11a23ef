package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/plan"
)

// The harness runs the real driver on the real fsm and dag, with a log in
// memory in place of Raft, simulated executors speaking the session
// protocol over in-memory streams, and a fake clock that moves only when
// a test says (Nomad's scheduler Harness is the model). Nothing sleeps:
// a test waits for what it expects by condition, with a generous
// deadline, and settles the loop before it checks that something did not
// happen.

// waitDeadline bounds every wait of the harness (a loaded machine is
// slow; a wait that times out is a failure, not a flake).
const waitDeadline = 30 * time.Second

// fakeClock is a Clock that moves only on Advance.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

type fakeTicker struct {
	c       chan time.Time
	every   time.Duration
	next    time.Time
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time, 1), every: d, next: c.now.Add(d)}
	c.tickers = append(c.tickers, t)
	return t.c, func() {
		c.mu.Lock()
		t.stopped = true
		c.mu.Unlock()
	}
}

// Advance moves the clock and fires the tickers that fell due (one tick
// each at most, as a real ticker drops ticks a slow reader missed).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		if t.stopped || c.now.Before(t.next) {
			continue
		}
		for !c.now.Before(t.next) {
			t.next = t.next.Add(t.every)
		}
		select {
		case t.c <- c.now:
		default:
		}
	}
}

// memLog is the Proposer and the log: commands are encoded as Raft would
// carry them and applied to the real fsm in order, stamped with the fake
// clock. fail, when set, decides that a proposal fails (applied or not).
type memLog struct {
	mu      sync.Mutex
	fsm     *fsm.FSM
	clock   *fakeClock
	index   uint64
	term    uint64
	entries [][]dag.Command
	// fail returns an error for a proposal to fail with; apply says
	// whether it is applied first (an outcome unknown to the caller).
	fail func(cmds []dag.Command) (err error, apply bool)
	// hold, when set, makes proposals wait until it is closed.
	hold     chan struct{}
	inflight int
	idle     *sync.Cond
}

func newMemLog(f *fsm.FSM, clock *fakeClock) *memLog {
	m := &memLog{fsm: f, clock: clock, term: 1}
	m.idle = sync.NewCond(&m.mu)
	return m
}

func (m *memLog) Propose(ctx context.Context, cmds ...dag.Command) ([]dag.Result, error) {
	m.mu.Lock()
	m.inflight++
	hold := m.hold
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.inflight--
		m.idle.Broadcast()
		m.mu.Unlock()
	}()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		if err, apply := m.fail(cmds); err != nil {
			if apply {
				m.applyLocked(cmds)
			}
			return nil, err
		}
	}
	return m.applyLocked(cmds), nil
}

func (m *memLog) applyLocked(cmds []dag.Command) []dag.Result {
	data, err := fsm.Encode(m.clock.Now().UnixNano(), cmds)
	if err != nil {
		panic(err)
	}
	m.index++
	m.entries = append(m.entries, cmds)
	r := m.fsm.Apply(&raft.Log{Index: m.index, Term: m.term, Type: raft.LogCommand, Data: data})
	return r.(*fsm.Response).Results
}

// applyData applies an fsm command already encoded (the takeover record).
func (m *memLog) applyData(data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index++
	m.fsm.Apply(&raft.Log{Index: m.index, Term: m.term, Type: raft.LogCommand, Data: data})
}

// commands returns every command logged so far, in order.
func (m *memLog) commands() []dag.Command {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []dag.Command
	for _, e := range m.entries {
		out = append(out, e...)
	}
	return out
}

func (m *memLog) waitIdle() {
	m.mu.Lock()
	for m.inflight > 0 && m.hold == nil {
		m.idle.Wait()
	}
	m.mu.Unlock()
}

// fakeRaft is the leadership a test grants and takes away.
type fakeRaft struct {
	log *memLog
	mu  sync.Mutex
	// leading and term are what the node would say.
	leading bool
	term    uint64
	subs    []chan bool
}

func (r *fakeRaft) ID() string { return "s1" }

func (r *fakeRaft) Subscribe() (<-chan bool, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan bool, 16)
	r.subs = append(r.subs, ch)
	return ch, func() {}
}

func (r *fakeRaft) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leading
}

func (r *fakeRaft) Term() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.term
}

func (r *fakeRaft) Barrier(time.Duration) error { return nil }

func (r *fakeRaft) Apply(data []byte, _ time.Duration) (any, error) {
	r.log.applyData(data)
	return nil, nil
}

func (r *fakeRaft) set(leading bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if leading {
		r.term++
		r.log.mu.Lock()
		r.log.term = r.term
		r.log.mu.Unlock()
	}
	r.leading = leading
	for _, ch := range r.subs {
		ch <- leading
	}
}

type harness struct {
	t     *testing.T
	clock *fakeClock
	fsm   *fsm.FSM
	log   *memLog
	raft  *fakeRaft
	d     *Driver
	wg    sync.WaitGroup
}

// newHarness starts a driver that does not lead yet (see lead).
func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	return newHarnessConfig(t, opts, dag.Config{})
}

// newHarnessConfig is newHarness over a state with the given config.
func newHarnessConfig(t *testing.T, opts Options, cfg dag.Config) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), fsm: fsm.New(fsm.Options{Config: cfg})}
	h.log = newMemLog(h.fsm, h.clock)
	h.raft = &fakeRaft{log: h.log}
	opts.Clock = h.clock
	h.d = New(h.fsm, h.raft, h.log, func() (string, string) { return "s2", "127.0.0.1:1" }, opts)
	h.d.Start()
	h.waitFor("the driver to follow leadership", func() bool {
		h.raft.mu.Lock()
		defer h.raft.mu.Unlock()
		return len(h.raft.subs) > 0
	})
	t.Cleanup(func() {
		h.log.mu.Lock()
		if h.log.hold != nil {
			close(h.log.hold)
			h.log.hold = nil
		}
		h.log.mu.Unlock()
		h.d.Stop()
		h.wg.Wait()
	})
	return h
}

// lead grants leadership (a new term) and waits for the driver to drive.
func (h *harness) lead() {
	h.t.Helper()
	before := h.d.current()
	h.raft.set(true)
	h.waitFor("the driver to lead", func() bool { l := h.d.current(); return l != nil && l != before })
}

// depose takes leadership away and waits for the driver to stop.
func (h *harness) depose() {
	h.t.Helper()
	h.raft.set(false)
	h.waitFor("the driver to stop leading", func() bool { return h.d.current() == nil })
}

// waitFor waits until cond holds, re-checking whenever the state or an
// executor's messages change, and at least every few milliseconds.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitDeadline)
	recheck := time.NewTicker(2 * time.Millisecond)
	defer recheck.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("harness: timed out waiting for %s", what)
		}
		select {
		case <-h.fsm.Changed():
		case <-recheck.C:
		}
	}
}

// settle returns once the loop has handled every event posted, done a
// round after them, and every proposal it started has been applied.
func (h *harness) settle() {
	h.t.Helper()
	for i := 0; i < 1000; i++ {
		h.log.waitIdle()
		l := h.d.current()
		if l == nil {
			return
		}
		before := len(h.log.commands())
		l.ask(func() { l.schedule(true) })
		h.log.waitIdle()
		if len(h.log.commands()) == before && len(l.events) == 0 && l.ask(func() {}) && len(h.log.commands()) == before {
			return
		}
	}
	h.t.Fatal("harness: the loop never settled")
}

// advance moves the clock and settles.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	h.settle()
}

// propose logs commands as a client of the cluster would.
func (h *harness) propose(cmds ...dag.Command) []dag.Result {
	h.t.Helper()
	res, err := h.log.Propose(context.Background(), cmds...)
	if err != nil {
		h.t.Fatalf("harness: propose: %v", err)
	}
	for _, r := range res {
		if r.Err != nil {
			h.t.Fatalf("harness: propose: %v", r.Err)
		}
	}
	return res
}

// submit submits a job and returns its id.
func (h *harness) submit(g *plan.Graph) dag.JobID {
	h.t.Helper()
	return h.propose(&dag.SubmitJob{Graph: g})[0].Job
}

func (h *harness) job(id dag.JobID) (j dag.JobInfo) {
	h.fsm.Read(func(s *dag.State) { j, _ = s.Job(id) })
	return j
}

func (h *harness) waitJob(id dag.JobID, want dag.JobStatus) dag.JobInfo {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("job %d to be %s", id, want), func() bool { return h.job(id).Status == want })
	return h.job(id)
}

// ends returns the logged task ends, in order.
func (h *harness) ends() []*dag.TaskEnded {
	var out []*dag.TaskEnded
	for _, c := range h.log.commands() {
		if te, ok := c.(*dag.TaskEnded); ok {
			out = append(out, te)
		}
	}
	return out
}

// collectJob is a one-stage job of n tasks.
func collectJob(n int) *plan.Graph {
	return &plan.Graph{
		Nodes:  []plan.Node{{Name: "src", Op: "range", Partitions: n}},
		Output: 0,
		Action: plan.GraphAction{Op: "collect"},
	}
}

// shuffleJob is a map stage of maps tasks and a result stage of reducers.
func shuffleJob(key string, maps, reducers int) *plan.Graph {
	return &plan.Graph{
		Nodes: []plan.Node{
			{Name: "src", Op: "range", Partitions: maps},
			{Name: "counts", Op: "reduceByKey", Partitions: reducers, Deps: []plan.Dep{{Kind: plan.Shuffle, Parent: 0,
				Shuffle: &plan.ShuffleDep{Key: key, Partitioner: plan.Partitioner{Kind: "hash", Partitions: reducers}}}}},
		},
		Output: 1,
		Action: plan.GraphAction{Op: "collect"},
	}
}

// simStream is one session's stream, in memory: the executor writes to
// in, the driver to out. It ends when the driver's Serve returns (as a
// gRPC stream does) or the executor hangs up.
type simStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	in     chan *api.ExecutorMessage
	out    chan *api.DriverMessage
	// stuck makes Send block until the stream ends (an executor that
	// stopped reading).
	stuck bool
}

func (s *simStream) Context() context.Context { return s.ctx }

func (s *simStream) Send(m *api.DriverMessage) error {
	if s.stuck {
		<-s.ctx.Done()
		return s.ctx.Err()
	}
	select {
	case s.out <- m:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *simStream) Recv() (*api.ExecutorMessage, error) {
	select {
	case m := <-s.in:
		return m, nil
	case <-s.ctx.Done():
		return nil, io.EOF
	}
}

// simExec is a simulated executor: it records everything the driver
// sends it and reports what a test tells it to.
type simExec struct {
	h      *harness
	id     string
	stream *simStream
	served chan error // Serve's return

	mu       sync.Mutex
	changed  chan struct{}
	welcome  *api.Welcome
	launched []*api.TaskLaunch
	// sets and unpacked count the task sets and the one-task launches
	// received.
	sets, unpacked int
	killed         []uint64
	acked          map[uint64]bool
	acks           int // acknowledgements received (heartbeats' too)
	commits        []*api.CommitDecision
	deletes        []*api.DeleteBlocks
	notLead        bool
}

// helloOpts is what an executor says when it connects.
type helloOpts struct {
	cores     int
	running   []*api.TaskID
	unacked   []*api.TaskID
	unhealthy string
	stuck     bool
	// runningFor[i]: how long running[i] has run, in milliseconds.
	runningFor []int64
	// taskSets: the executor takes launches packed in task sets.
	taskSets bool
}

// connect opens a session for executor id and waits for its welcome.
func (h *harness) connect(id string, o helloOpts) *simExec {
	h.t.Helper()
	e := h.dial(id, o)
	h.welcomed(e)
	return e
}

// welcomed waits for an executor's welcome, then for the loop to settle.
func (h *harness) welcomed(e *simExec) {
	h.t.Helper()
	h.waitFor("executor "+e.id+"'s welcome", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.welcome != nil
	})
	h.settle()
}

// dial opens a session without waiting for anything.
func (h *harness) dial(id string, o helloOpts) *simExec {
	return h.dialVia(id, o, nil)
}

// dialVia is dial with the driver serving wrap(stream) (nil: the stream
// itself), for tests that put a transport's limits in between.
func (h *harness) dialVia(id string, o helloOpts, wrap func(*simStream) Stream) *simExec {
	if o.cores == 0 {
		o.cores = 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &simStream{ctx: ctx, cancel: cancel, in: make(chan *api.ExecutorMessage, 64), out: make(chan *api.DriverMessage, 64), stuck: o.stuck}
	e := &simExec{h: h, id: id, stream: st, served: make(chan error, 1), changed: make(chan struct{}), acked: map[uint64]bool{}}
	st.in <- &api.ExecutorMessage{Msg: &api.ExecutorMessage_Hello{Hello: &api.Hello{ExecutorId: id, Addr: "127.0.0.1:9" + id[len(id)-1:],
		Cores: int32(o.cores), Running: o.running, Unacked: o.unacked, Unhealthy: o.unhealthy, RunningForMs: o.runningFor, TaskSets: o.taskSets}}}
	var served Stream = st
	if wrap != nil {
		served = wrap(st)
	}
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		err := h.d.Serve(served)
		cancel()
		e.served <- err
	}()
	go func() {
		defer h.wg.Done()
		for {
			select {
			case m := <-st.out:
				e.record(m)
			case <-ctx.Done():
				for {
					select {
					case m := <-st.out:
						e.record(m)
					default:
						return
					}
				}
			}
		}
	}()
	return e
}

func (e *simExec) record(m *api.DriverMessage) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch x := m.Msg.(type) {
	case *api.DriverMessage_Welcome:
		e.welcome = x.Welcome
	case *api.DriverMessage_Launch:
		ls, err := api.ExpandLaunch(x.Launch)
		if err != nil {
			e.h.t.Errorf("executor %s: %v", e.id, err)
		}
		e.launched = append(e.launched, ls...)
		e.sets += len(x.Launch.Sets)
		e.unpacked += len(x.Launch.Tasks)
	case *api.DriverMessage_Kill:
		e.killed = append(e.killed, x.Kill.Tasks...)
	case *api.DriverMessage_Ack:
		e.acks++
		for _, t := range x.Ack.Tasks {
			e.acked[t] = true
		}
	case *api.DriverMessage_Commit:
		e.commits = append(e.commits, x.Commit)
	case *api.DriverMessage_Delete:
		e.deletes = append(e.deletes, x.Delete)
	case *api.DriverMessage_NotLeader:
		e.notLead = true
	}
}

// launches returns the tasks launched to the executor so far.
func (e *simExec) launches() []*api.TaskLaunch {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*api.TaskLaunch(nil), e.launched...)
}

// waitLaunches waits until n tasks in all were launched to the executor.
func (e *simExec) waitLaunches(n int) []*api.TaskLaunch {
	e.h.t.Helper()
	e.h.waitFor(fmt.Sprintf("%d launches on %s", n, e.id), func() bool { return len(e.launches()) >= n })
	return e.launches()
}

func (e *simExec) kills() []uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]uint64(nil), e.killed...)
}

func (e *simExec) isAcked(task uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.acked[task]
}

// send sends a message to the driver.
func (e *simExec) send(m *api.ExecutorMessage) {
	select {
	case e.stream.in <- m:
	case <-e.stream.ctx.Done():
	}
}

// report sends status updates and waits for their acknowledgement.
func (e *simExec) report(updates ...*api.TaskStatus) {
	e.h.t.Helper()
	e.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: updates}}})
	e.h.waitFor("acknowledgements on "+e.id, func() bool {
		for _, u := range updates {
			if !e.isAcked(u.Id.Task) {
				return false
			}
		}
		return true
	})
	e.h.settle()
}

// heartbeat sends an empty batch of updates and waits for its answer.
func (e *simExec) heartbeat() {
	e.h.t.Helper()
	e.mu.Lock()
	n := e.acks
	e.mu.Unlock()
	e.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{}}})
	e.h.waitFor("a heartbeat's answer on "+e.id, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.acks > n
	})
}

// hangUp ends the session from the executor's side and waits for the
// driver to notice.
func (e *simExec) hangUp() {
	e.stream.cancel()
	<-e.served
	e.served <- nil
	e.h.settle()
}

func finished(tl *api.TaskLaunch, durationMs int64) *api.TaskStatus {
	u := &api.TaskStatus{Id: tl.Id, State: api.TaskState_TASK_STATE_FINISHED, DurationMs: durationMs, Result: []byte("r"), ResultSize: 1}
	if tl.Map {
		u.Result, u.ResultSize = nil, 0
		u.MapBytes = 10
	}
	return u
}

func failed(tl *api.TaskLaunch, kind api.FailureKind, msg string) *api.TaskStatus {
	return &api.TaskStatus{Id: tl.Id, State: api.TaskState_TASK_STATE_FAILED, Failure: kind, Message: msg}
}

var errNotLeader = errors.New("harness: not the leader")
