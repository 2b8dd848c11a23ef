package driver

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
)

// Launches and the transport's message limit (Spark's TaskSetManager and
// spark.rpc.message.maxSize): several tasks' launches never make a
// message over the limit, and a task whose launch alone is over it aborts
// its jobs with a message naming the task, the size and the limit, rather
// than failing the executor's session (which an executor would reopen,
// to be sent the same launch again).

// setLaunchLimit lowers the driver's message limit for a test. Call it
// before newHarness: its cleanup then runs after the driver has stopped.
func setLaunchLimit(t *testing.T, n int) {
	old := maxLaunchMessage
	maxLaunchMessage = n
	t.Cleanup(func() { maxLaunchMessage = old })
}

// limitStream is a session's stream with gRPC's message limit: a message
// over it is not sent, the send fails with ResourceExhausted and the
// stream ends (a gRPC server stream writes that status, ending the call).
type limitStream struct {
	*simStream
	limit int
	// gate, when set, holds the first launch in its send until it is
	// closed (a sender that fell behind: more launches queue meanwhile);
	// held is closed once that launch waits.
	gate chan struct{}
	held chan struct{}

	mu      sync.Mutex
	sizes   []int // the launch messages sent, by size
	refused []int // the messages refused, by size
}

func (s *limitStream) Send(m *api.DriverMessage) error {
	n := proto.Size(m)
	if n > s.limit {
		s.mu.Lock()
		s.refused = append(s.refused, n)
		s.mu.Unlock()
		s.cancel()
		return status.Errorf(codes.ResourceExhausted, "grpc: trying to send message larger than max (%d vs. %d)", n, s.limit)
	}
	if _, ok := m.Msg.(*api.DriverMessage_Launch); ok {
		s.mu.Lock()
		first := len(s.sizes) == 0
		s.sizes = append(s.sizes, n)
		s.mu.Unlock()
		if first && s.gate != nil {
			close(s.held)
			select {
			case <-s.gate:
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
		}
	}
	return s.simStream.Send(m)
}

func (s *limitStream) sent() (sizes, refused []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...), append([]int(nil), s.refused...)
}

// connectLimited is connect over a limitStream of the given limit (gate:
// see limitStream).
func (h *harness) connectLimited(id string, o helloOpts, limit int, gate chan struct{}) (*simExec, *limitStream) {
	h.t.Helper()
	var ls *limitStream
	e := h.dialVia(id, helloOpts{cores: o.cores}, func(st *simStream) Stream {
		ls = &limitStream{simStream: st, limit: limit, gate: gate, held: make(chan struct{})}
		return ls
	})
	h.welcomed(e)
	return e, ls
}

// launchMessage is the message of these launches.
func launchMessage(tasks []*api.TaskLaunch) *api.DriverMessage {
	return &api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: &api.Launch{Tasks: tasks}}}
}

// checkSession fails the test if the executor's session ended or a
// message over the limit was tried, and if a sent launch message is over
// the limit.
func checkSession(t *testing.T, e *simExec, st *limitStream) {
	t.Helper()
	sizes, refused := st.sent()
	if len(refused) > 0 {
		t.Fatalf("the driver tried to send messages of %v bytes, over the limit of %d: the send failed and ended the session", refused, st.limit)
	}
	if len(e.served) > 0 {
		t.Fatalf("%s's session ended", e.id)
	}
	for _, n := range sizes {
		if n > st.limit {
			t.Fatalf("a launch message of %d bytes was sent, over the limit of %d", n, st.limit)
		}
	}
}

// TestALaunchRoundPastTheMessageLimitGoesInSeveralMessages: one round's
// launches to an executor (64 slots, 64 tasks) would make a message over
// the limit; they go in several messages under it, in order (the graph
// with the first), and the job runs to the end.
func TestALaunchRoundPastTheMessageLimitGoesInSeveralMessages(t *testing.T) {
	const limit = 1024
	setLaunchLimit(t, limit)
	h := newHarness(t, Options{})
	h.lead()
	e1, st := h.connectLimited("e1", helloOpts{cores: 64}, limit, nil)
	job := h.submit(collectJob(64))
	h.waitFor("64 launches on e1, or its session's end", func() bool { return len(e1.launches()) >= 64 || len(e1.served) > 0 })
	h.settle()
	checkSession(t, e1, st)
	ls := e1.launches()
	if len(ls) != 64 {
		t.Fatalf("%d launches, want 64", len(ls))
	}
	if n := proto.Size(launchMessage(ls)); n <= limit {
		t.Fatalf("the round's launches make %d bytes, not over the limit of %d: the test proves nothing", n, limit)
	}
	sizes, _ := st.sent()
	if len(sizes) < 4 {
		t.Fatalf("64 launches in %d messages (%v bytes), want at least 4 under %d bytes", len(sizes), sizes, limit)
	}
	parts := map[int32]bool{}
	for i, tl := range ls {
		parts[tl.Id.Partition] = true
		if (tl.Graph != nil) != (i == 0) {
			t.Fatalf("launch %d carries the graph: %t; the first of the session only should", i, tl.Graph != nil)
		}
	}
	if len(parts) != 64 {
		t.Fatalf("launched %d distinct partitions, want 64", len(parts))
	}
	for _, tl := range ls {
		e1.report(finished(tl, 5))
	}
	h.waitJob(job, dag.JobSucceeded)
	checkSession(t, e1, st)
}

// TestLaunchesMergedBehindASlowSendStayUnderTheMessageLimit: launches of
// several rounds queued while the session's sender was busy are merged
// into one message, each round's under the limit, the merge over it;
// they go in messages under the limit.
func TestLaunchesMergedBehindASlowSendStayUnderTheMessageLimit(t *testing.T) {
	const limit = 1024
	setLaunchLimit(t, limit)
	h := newHarness(t, Options{})
	h.lead()
	gate := make(chan struct{})
	e1, st := h.connectLimited("e1", helloOpts{cores: 64}, limit, gate)
	// Three jobs, three graphs (graphs are sent by content).
	job := func(name string) *plan.Graph {
		g := collectJob(12)
		g.Name = name
		return g
	}
	h.submit(job("a"))
	h.waitFor("the first launch held in its send", func() bool {
		select {
		case <-st.held:
			return true
		default:
			return len(e1.served) > 0
		}
	})
	// Two more rounds queue behind it.
	h.submit(job("b"))
	h.settle()
	h.submit(job("c"))
	h.settle()
	queued := 0
	l := h.d.current()
	l.ask(func() {
		c := l.conns["e1"]
		c.omu.Lock()
		for _, m := range c.outbox {
			if lm := m.GetLaunch(); lm != nil {
				queued += len(lm.Tasks)
			}
		}
		c.omu.Unlock()
	})
	if queued != 24 {
		t.Fatalf("%d launches queued behind the held one, want 24 (two rounds)", queued)
	}
	close(gate)
	h.waitFor("36 launches on e1, or its session's end", func() bool { return len(e1.launches()) >= 36 || len(e1.served) > 0 })
	h.settle()
	checkSession(t, e1, st)
	ls := e1.launches()
	if len(ls) != 36 {
		t.Fatalf("%d launches, want 36", len(ls))
	}
	if n := proto.Size(launchMessage(ls[12:])); n <= limit {
		t.Fatalf("the queued launches make %d bytes, not over the limit of %d: the test proves nothing", n, limit)
	}
	// In order: each job's first launch carries its graph.
	for i, tl := range ls {
		if (tl.Graph != nil) != (i%12 == 0) {
			t.Fatalf("launch %d (job %d) carries a graph: %t, want the first of each job only", i, tl.Id.Job, tl.Graph != nil)
		}
	}
}

// overLimit finds "was N bytes" in a message and returns N.
func overLimit(t *testing.T, msg string) int {
	t.Helper()
	m := regexp.MustCompile(`was (\d+) bytes`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("message %q names no size", msg)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// cancels returns the CancelJob commands logged.
func cancels(h *harness) []*dag.CancelJob {
	var out []*dag.CancelJob
	for _, c := range h.log.commands() {
		if cj, ok := c.(*dag.CancelJob); ok {
			out = append(out, cj)
		}
	}
	return out
}

// TestALaunchOverTheMessageLimitAbortsItsJob: a reducer's launch carries
// the location of every map output it reads; with 300 maps it is over
// the limit on its own. The job is aborted at once through the log, with
// Spark's message naming the task, its size and the limit (once, though
// rounds go by while the abort is being logged); nothing is sent, the
// session goes on, and no attempt ends as an executor loss.
func TestALaunchOverTheMessageLimitAbortsItsJob(t *testing.T) {
	const limit = 4096
	const maps = 300
	setLaunchLimit(t, limit)
	h := newHarness(t, Options{})
	h.lead()
	e1, st := h.connectLimited("e1", helloOpts{cores: 16}, limit, nil)
	job := h.submit(shuffleJob("k", maps, 2))
	for done := 0; done < maps; {
		batch := e1.waitLaunches(min(done+16, maps))[done:]
		var updates []*api.TaskStatus
		for _, tl := range batch {
			updates = append(updates, finished(tl, 5))
		}
		done += len(batch)
		if done < maps {
			e1.report(updates...)
			continue
		}
		// With the last maps' ends, e1 says it is unhealthy: the
		// reducers wait until it is well again.
		e1.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: updates, Unhealthy: "held by the test"}}})
		h.waitFor("the last maps' acknowledgements", func() bool { return e1.isAcked(batch[len(batch)-1].Id.Task) })
		h.settle()
	}
	if n := len(e1.launches()); n != maps {
		t.Fatalf("%d launches before the reducers could run, want the %d maps", n, maps)
	}
	// The abort's proposal is held while rounds go by.
	h.log.mu.Lock()
	h.log.hold = make(chan struct{})
	h.log.mu.Unlock()
	e1.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{}}})
	inflight := func() int {
		h.log.mu.Lock()
		defer h.log.mu.Unlock()
		return h.log.inflight
	}
	h.waitFor("a proposal, or e1's session's end", func() bool { return inflight() > 0 || len(e1.served) > 0 })
	checkSession(t, e1, st)
	l := h.d.current()
	for i := 0; i < 5; i++ {
		h.clock.Advance(tick)
		l.ask(func() { l.schedule(true) })
	}
	if n := inflight(); n != 1 {
		t.Fatalf("%d proposals in flight after 5 rounds, want the one abort", n)
	}
	h.log.mu.Lock()
	close(h.log.hold)
	h.log.hold = nil
	h.log.mu.Unlock()
	h.settle()

	info := h.job(job)
	if info.Status != dag.JobCancelled {
		t.Fatalf("job %s (%q), want it aborted", info.Status, info.Message)
	}
	for _, want := range []string{"aborted due to stage failure: Serialized task 1.0:", "which exceeds max allowed", fmt.Sprintf("(%d bytes)", limit), fmt.Sprintf("%d map outputs", maps)} {
		if !strings.Contains(info.Message, want) {
			t.Fatalf("job message %q: want %q", info.Message, want)
		}
	}
	if n := overLimit(t, info.Message); n <= limit || n > 2*maps*30 {
		t.Fatalf("message %q: size %d, want a reducer's launch (over %d, about %d)", info.Message, n, limit, maps*23)
	}
	if cs := cancels(h); len(cs) != 1 || cs[0].Job != job {
		t.Fatalf("aborts logged: %+v, want one of job %d", cs, job)
	}
	if n := len(e1.launches()); n != maps {
		t.Fatalf("%d launches, want the %d maps: no reducer's launch is sent", n, maps)
	}
	for _, te := range h.ends() {
		if te.Reason != dag.Success {
			t.Fatalf("an attempt ended %s (%s): nothing but the maps' successes should be logged", te.Reason, te.Message)
		}
	}
	checkSession(t, e1, st)
}

// TestAGraphOverTheMessageLimitAbortsEveryJobOfItsStage: the graph rides
// with a session's first launch of it; a job's graph over the limit
// makes its map stage's launches over it. Every job that needs the stage
// (a second job reuses its shuffle) is aborted, naming the graph, and the
// session then runs other jobs.
func TestAGraphOverTheMessageLimitAbortsEveryJobOfItsStage(t *testing.T) {
	const limit = 4096
	setLaunchLimit(t, limit)
	h := newHarness(t, Options{})
	h.lead()
	big := shuffleJob("k", 2, 2)
	big.Name = strings.Repeat("g", 8000)
	a := h.submit(big)
	b := h.submit(shuffleJob("k", 2, 2))
	e1, st := h.connectLimited("e1", helloOpts{cores: 4}, limit, nil)
	// The session's hello reaches the loop in its own time: settle until
	// the jobs are aborted (it failed about once in 100 runs when one
	// settle came first).
	h.waitFor("both jobs aborted", func() bool {
		h.settle()
		return h.job(a).Status == dag.JobCancelled && h.job(b).Status == dag.JobCancelled
	})
	checkSession(t, e1, st)
	for _, id := range []dag.JobID{a, b} {
		info := h.job(id)
		if info.Status != dag.JobCancelled {
			t.Fatalf("job %d %s (%q), want it aborted", id, info.Status, info.Message)
		}
		for _, want := range []string{"Serialized task 0.0:", fmt.Sprintf("(%d bytes)", limit), "graph"} {
			if !strings.Contains(info.Message, want) {
				t.Fatalf("job %d message %q: want %q", id, info.Message, want)
			}
		}
		if n := overLimit(t, info.Message); n <= 8000 {
			t.Fatalf("message %q: size %d, want the launch with the graph (over 8000)", info.Message, n)
		}
	}
	if n := len(e1.launches()); n != 0 {
		t.Fatalf("%d launches, want none", n)
	}
	// The session goes on: a small job runs, its graph with its first
	// launch.
	job := h.submit(collectJob(2))
	ls := e1.waitLaunches(2)
	if ls[0].Graph == nil {
		t.Fatalf("the new job's first launch carries no graph")
	}
	e1.report(finished(ls[0], 5), finished(ls[1], 5))
	h.waitJob(job, dag.JobSucceeded)
	checkSession(t, e1, st)
}

// TestAnAbortNotLoggedIsTriedAgain: when the abort's proposal fails, the
// next round finds the launch over the limit again and logs the abort.
func TestAnAbortNotLoggedIsTriedAgain(t *testing.T) {
	const limit = 4096
	setLaunchLimit(t, limit)
	h := newHarness(t, Options{})
	h.lead()
	tries := 0
	h.log.mu.Lock()
	h.log.fail = func(cmds []dag.Command) (error, bool) {
		if _, ok := cmds[0].(*dag.CancelJob); ok {
			if tries++; tries == 1 {
				return errNotLeader, false
			}
		}
		return nil, false
	}
	h.log.mu.Unlock()
	big := collectJob(2)
	big.Name = strings.Repeat("g", 8000)
	job := h.submit(big)
	e1, st := h.connectLimited("e1", helloOpts{cores: 2}, limit, nil)
	h.waitFor("the job's abort, or e1's session's end", func() bool { return h.job(job).Status == dag.JobCancelled || len(e1.served) > 0 })
	h.settle()
	checkSession(t, e1, st)
	h.log.mu.Lock()
	n := tries
	h.log.mu.Unlock()
	if n != 2 {
		t.Fatalf("the abort was proposed %d times, want twice (once failed)", n)
	}
	if cs := cancels(h); len(cs) != 1 {
		t.Fatalf("%d aborts logged, want 1", len(cs))
	}
}

// TestLaunchSizesAreExact: the size build computes for a launch (its
// stage's inputs sized once) is proto's, and fit splits launch messages
// over the limit into messages under it, in order, leaving the others.
func TestLaunchSizesAreExact(t *testing.T) {
	var inputs []*api.ShuffleInput
	for s := 0; s < 2; s++ {
		in := &api.ShuffleInput{Shuffle: uint64(s), Key: "0123456789abcdef01234567", Maps: 500}
		for m := 0; m < 500; m++ {
			in.Locations = append(in.Locations, &api.MapLocation{Map: int32(m), Executor: fmt.Sprint("executor-", m%7), Addr: fmt.Sprint("10.0.0.", m%7, ":7078")})
		}
		inputs = append(inputs, in)
	}
	graph := []byte(strings.Repeat("x", 300))
	p := &placer{}
	sv := &stageView{inputs: inputs}
	var tasks []*api.TaskLaunch
	for i, tc := range []struct {
		inputs []*api.ShuffleInput
		graph  []byte
	}{{nil, nil}, {nil, graph}, {inputs, nil}, {inputs, graph}} {
		s := &stageView{inputs: tc.inputs}
		if tc.inputs != nil {
			s = sv
		}
		tl := &api.TaskLaunch{Id: &api.TaskID{Task: 1<<40 | uint64(i), Job: 3, Stage: 4, StageAttempt: 1, Partition: int32(i * 1000), Attempt: 2, Epoch: 9, Ticket: []byte("ticket")},
			Term: 1, GraphKey: "aabbccddeeff001122334455", Node: 2, MaxDirectResultSize: 64 << 10, MaxResultSize: 1 << 30, ShuffleKey: "k", Inputs: tc.inputs}
		for range tc.inputs {
			tl.InputGrants = append(tl.InputGrants, []byte("grant-bytes"))
		}
		got := launchSize(p.taskSize(tl, s, tc.graph))
		tl.Graph = tc.graph
		if want := proto.Size(launchMessage([]*api.TaskLaunch{tl})); got != want {
			t.Fatalf("case %d: size %d, proto says %d", i, got, want)
		}
		tasks = append(tasks, tl)
	}
	if got, want := launchSize(proto.Size(tasks[0]), proto.Size(tasks[3])), proto.Size(launchMessage([]*api.TaskLaunch{tasks[0], tasks[3]})); got != want {
		t.Fatalf("two launches: size %d, proto says %d", got, want)
	}

	var many []*api.TaskLaunch
	for i := 0; i < 40; i++ {
		many = append(many, tasks[i%4])
	}
	ack := &api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{Tasks: []uint64{1}}}}
	small := launchMessage(tasks[:2])
	limit := proto.Size(launchMessage(tasks[2:4])) + 100
	in := []*api.DriverMessage{small, ack, launchMessage(many), ack}
	out := fit(in, limit)
	var got []*api.TaskLaunch
	for i, m := range out {
		if n := proto.Size(m); n > limit {
			t.Fatalf("message %d: %d bytes, over %d", i, n, limit)
		}
		if i > 1 && i < len(out)-1 {
			got = append(got, m.GetLaunch().Tasks...)
		}
	}
	if out[0] != small || out[1] != ack || out[len(out)-1] != ack || len(got) != len(many) {
		t.Fatalf("fit made %d messages of %d launches; want the small launch and the ack as they were, then the 40 launches, then the ack", len(out), len(got))
	}
	for i := range many {
		if got[i] != many[i] {
			t.Fatalf("launch %d out of order", i)
		}
	}
	if msgs := []*api.DriverMessage{small, ack}; &fit(msgs, limit)[0] != &msgs[0] {
		t.Fatalf("fit copied messages that needed no split")
	}
}

// TestQueueForVeryShortTasks pins how many tasks a slot may queue: at
// least QueuePerSlot for short stages, as many as take QueuedWork for very
// short ones (0 ms reported counts as minTaskTime), never more than
// maxQueuePerSlot, and none when queueing is off.
func TestQueueForVeryShortTasks(t *testing.T) {
	for _, c := range []struct {
		avg     time.Duration
		perSlot int
		work    time.Duration
		want    int
	}{
		{0, 3, 20 * time.Millisecond, maxQueuePerSlot},
		{time.Millisecond, 3, 20 * time.Millisecond, 20},
		{5 * time.Millisecond, 3, 20 * time.Millisecond, 4},
		{10 * time.Millisecond, 3, 20 * time.Millisecond, 3},
		{19 * time.Millisecond, 3, 20 * time.Millisecond, 3},
		{0, 3, -1, 3},                    // QueuedWork off
		{0, 0, 20 * time.Millisecond, 0}, // queueing off
		{0, 500, 20 * time.Millisecond, 500},
	} {
		if got := queueFor(c.avg, c.perSlot, c.work); got != c.want {
			t.Errorf("queueFor(%s, %d, %s) = %d, want %d", c.avg, c.perSlot, c.work, got, c.want)
		}
	}
}
