package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// conn is one executor's session with this leader. Its identity fields
// are fixed when the session starts; the loop owns graphs, ready,
// unhealthy and the commit queue; the outbox and heard are safe from any
// goroutine.
type conn struct {
	id string
	// principal is who opened the session (see Options.Principal).
	principal string
	addr      string
	cores     int
	// taskSets: the executor takes launches packed in task sets
	// (its hello's task_sets): the sender packs them (api.PackLaunch).
	taskSets bool
	ctx      context.Context // the stream's
	funcs    map[string]bool // the functions the executor holds
	closed   chan struct{}
	once     sync.Once
	// heard is when the session last received anything (unix ns).
	heard atomic.Int64

	// outbox holds messages for the executor until the session's sender
	// takes them; wake tells it there are some.
	omu    sync.Mutex
	outbox []*api.DriverMessage
	wake   chan struct{}

	// ---- owned by the loop ----
	graphs map[string]bool // graph keys sent in this session
	ready  bool            // attached: registered in the state and adopted
	// unhealthy is why the executor should get no tasks now, as it last
	// said ("": healthy).
	unhealthy string
	// commits queues the session's reported ends for the log, in order;
	// committing says a batch of them is being logged.
	commits    []*reported
	committing bool
}

// maxOutbox bounds the messages waiting for one executor: a session that
// falls this far behind is closed (the executor reconnects and says what
// it runs), rather than holding memory without bound.
const maxOutbox = 4096

func (c *conn) close() { c.once.Do(func() { close(c.closed) }) }

func (c *conn) lastHeard() time.Time { return time.Unix(0, c.heard.Load()) }

// holds reports whether the executor holds every function named: a task
// runs only where its functions are (executors built with user functions
// hold more than the built-ins).
func (c *conn) holds(names []string) bool {
	for _, n := range names {
		if !c.funcs[n] && !(strings.HasPrefix(n, ops.PipePrefix) && c.funcs[ops.PipePrefix+"*"]) {
			return false
		}
	}
	return true
}

// send queues a message for the executor; it never blocks. It reports
// false when the session is closed (or was just closed for falling too
// far behind).
func (c *conn) send(m *api.DriverMessage) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	c.omu.Lock()
	if len(c.outbox) >= maxOutbox {
		c.omu.Unlock()
		c.close()
		return false
	}
	c.outbox = append(c.outbox, m)
	c.omu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// take empties the outbox.
func (c *conn) take() []*api.DriverMessage {
	c.omu.Lock()
	defer c.omu.Unlock()
	out := c.outbox
	c.outbox = nil
	return out
}

// Serve serves one executor's session. The executor says Hello; a
// follower answers NotLeader with the leader's address; the leader
// registers the executor (a logged RegisterExecutor), welcomes it, adopts
// or kills the attempts it reports, and then exchanges launches, kills
// and acknowledgements for status updates until the stream ends. Two
// goroutines serve the session besides the caller's: one sends what the
// loop queued, one receives and posts to the loop.
func (d *Driver) Serve(stream Stream) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil || hello.ExecutorId == "" || hello.Addr == "" {
		return fmt.Errorf("driver: a session must start with a Hello naming the executor and its address")
	}
	if d.opts.ExecutorCerts {
		p, ok := tlsconf.PeerFromContext(stream.Context())
		switch {
		case !ok:
			return status.Error(codes.Unauthenticated, "driver: an executor session needs an executor certificate of the cluster's CA")
		case p.Role != tlsconf.RoleExecutor:
			return status.Errorf(codes.PermissionDenied, "driver: %s's certificate is a %s's, not an executor's", p.Name, p.Role)
		case p.Name != hello.ExecutorId:
			return status.Errorf(codes.PermissionDenied, "driver: the certificate of %s cannot speak for executor %s", p.Name, hello.ExecutorId)
		}
	}
	l := d.current()
	if l == nil {
		id, addr := d.leader()
		return stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_NotLeader{NotLeader: &api.NotLeader{LeaderId: id, LeaderApiAddr: addr}}})
	}
	principal := ""
	if d.opts.Principal != nil {
		principal = d.opts.Principal(stream.Context())
	}
	c := &conn{id: hello.ExecutorId, principal: principal, addr: hello.Addr, cores: int(hello.Cores), taskSets: hello.TaskSets, ctx: stream.Context(),
		graphs: map[string]bool{}, funcs: map[string]bool{}, unhealthy: hello.Unhealthy, closed: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.heard.Store(d.clock.Now().UnixNano())
	for _, f := range hello.Funcs {
		c.funcs[f] = true
	}
	if err := l.attach(c, hello); err != nil {
		return err
	}
	defer l.post(evDetach{c})
	if !d.sessions.add(2) {
		c.close()
		return errors.New("driver: stopping")
	}
	sendErr := make(chan error, 1)
	go func() {
		defer d.sessions.done()
		d.sendLoop(l, c, stream, sendErr)
	}()
	recvErr := make(chan error, 1)
	go func() {
		defer d.sessions.done()
		d.recvLoop(l, c, stream, hello.Unhealthy, recvErr)
	}()
	select {
	case err := <-recvErr:
		c.close()
		drain(sendErr)
		return err
	case err := <-sendErr:
		return err
	case <-c.closed:
		// Let the sender say NotLeader before the stream ends.
		drain(sendErr)
		return nil
	case <-l.ctx.Done():
		// Stopped leading: the sender tells the executor where to go.
		c.close()
		drain(sendErr)
		return nil
	case <-stream.Context().Done():
		c.close()
		return stream.Context().Err()
	}
}

// sendLoop sends what the loop queued for the executor, in order, with
// launches merged into one message and acknowledgements into one (and
// launches over the message limit together split again: see fit).
func (d *Driver) sendLoop(l *leadership, c *conn, stream Stream, sendErr chan<- error) {
	for {
		select {
		case <-c.wake:
			for _, m := range fit(coalesce(c.take()), maxLaunchMessage) {
				if lm := m.GetLaunch(); lm != nil && c.taskSets {
					// Packed, a message is never larger (what a set's
					// launches share goes once).
					m = &api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: api.PackLaunch(lm.Tasks)}}
				}
				if err := stream.Send(m); err != nil {
					sendErr <- err
					c.close()
					return
				}
			}
		case <-c.closed:
			// Tell the executor to look elsewhere if we stopped leading;
			// best effort.
			if d.current() != l {
				id, addr := d.leader()
				stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_NotLeader{NotLeader: &api.NotLeader{LeaderId: id, LeaderApiAddr: addr}}})
			}
			sendErr <- nil
			return
		}
	}
}

// recvLoop receives the executor's messages and posts them to the loop;
// heartbeats are answered here (they change nothing but the time the
// executor was last heard of).
func (d *Driver) recvLoop(l *leadership, c *conn, stream Stream, health string, recvErr chan<- error) {
	for {
		msg, err := stream.Recv()
		if err != nil {
			recvErr <- err
			return
		}
		c.heard.Store(d.clock.Now().UnixNano())
		switch m := msg.Msg.(type) {
		case *api.ExecutorMessage_Updates:
			if len(m.Updates.Updates) > 0 || m.Updates.Unhealthy != health {
				health = m.Updates.Unhealthy
				if !l.post(evUpdates{c: c, unhealthy: health, updates: m.Updates.Updates}) {
					recvErr <- nil
					return
				}
			} else if l.ctx.Err() == nil {
				// A heartbeat: answer it, so the executor knows this
				// leader is alive (a frozen leader does not answer, nor
				// does one that stopped leading).
				c.send(&api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{}}})
			}
		case *api.ExecutorMessage_Commit:
			if !l.post(evCommit{c, m.Commit.Id}) {
				recvErr <- nil
				return
			}
		case *api.ExecutorMessage_OutputDone:
			l.outputs.deliver(c, m.OutputDone)
		case *api.ExecutorMessage_Hello:
			// A second hello is a protocol error.
			recvErr <- fmt.Errorf("driver: executor %s said hello twice", c.id)
			return
		}
	}
}

// drain waits a little for the sender to finish its last message.
func drain(sendErr <-chan error) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-sendErr:
	case <-t.C:
	}
}

// sessionGroup tracks sessions' goroutines: once closed, no more start,
// and wait returns when those started are done.
type sessionGroup struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *sessionGroup) add(n int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(n)
	return true
}

func (g *sessionGroup) done() { g.wg.Done() }

func (g *sessionGroup) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// attach registers an executor's session, in the session's goroutine up
// to the point where the loop takes over: it checks the session may
// attach, binds the executor id to the caller, logs the registration
// (the executor's outputs count only once it is registered), then hands
// the session to the loop (attached).
func (l *leadership) attach(c *conn, h *api.Hello) error {
	d := l.d
	// One attach of an executor at a time: an older hello that finished
	// after a newer one would adopt and end attempts by stale news.
	unlock := l.attaching.lock(c.id)
	defer unlock()
	var err error
	if !l.ask(func() {
		if err = l.attachable(c); err == nil && d.opts.Bind == nil {
			err = l.bindLocal(c)
		}
	}) {
		return errNotLeading
	}
	if err != nil {
		return err
	}
	if err := l.bind(c); err != nil {
		return err
	}
	need := true
	d.state.Read(func(s *dag.State) {
		if e, ok := s.Executor(dag.ExecutorID(h.ExecutorId)); ok && e.Alive && e.Addr == h.Addr && e.Cores == int(h.Cores) && sameFuncs(e.Funcs, h.Funcs) {
			need = false
		}
	})
	if need {
		ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
		res, err := d.prop.Propose(ctx, &dag.RegisterExecutor{ID: dag.ExecutorID(h.ExecutorId), Addr: h.Addr, Cores: int(h.Cores), Funcs: h.Funcs})
		cancel()
		if err != nil {
			return wrap(err, "register executor %s", h.ExecutorId)
		}
		if res[0].Err != nil {
			return wrap(res[0].Err, "register executor %s", h.ExecutorId)
		}
	}
	reply := make(chan error, 1)
	if !l.post(evAttach{c, h, reply}) {
		return errNotLeading
	}
	select {
	case err := <-reply:
		return err
	case <-l.done:
		return errNotLeading
	}
}

var errNotLeading = errors.New("driver: no longer leading")

// attached is the loop's half of attach: it welcomes the executor,
// adopts the attempts it runs, ends those it lost, replaces an older
// session, and deletes blocks no live job needs.
func (l *leadership) attached(c *conn, h *api.Hello) error {
	d := l.d
	if err := l.attachable(c); err != nil {
		return err
	}
	c.send(&api.DriverMessage{Msg: &api.DriverMessage_Welcome{Welcome: &api.Welcome{Term: l.term, HeartbeatIntervalMs: d.opts.HeartbeatInterval.Milliseconds(),
		GrantKey: l.blockSigner().Public()}}})
	// Adopt what the executor runs and holds before the session counts:
	// the grace period ends once every executor's session counts, and
	// from then on partitions not held are launched.
	l.adopt(c, h.Running, h.Unacked, h.RunningForMs)
	l.vanished(c.id, h)
	l.vanishedCommits(c.id, h)
	if old := l.conns[c.id]; old != nil {
		old.close()
	}
	l.conns[c.id] = c
	now := d.clock.Now()
	l.lastSeen[c.id] = now
	l.sessioned[c.id] = true
	delete(l.droppedAt, c.id)
	c.ready = true
	if !l.graceful {
		// How long executors take to come back is what the grace period
		// must cover: say it.
		d.log.Info("driver: executor connected", "executor", c.id, "addr", c.addr, "cores", c.cores, "running", len(h.Running), "unacked", len(h.Unacked),
			"after_takeover", now.Sub(l.won).Round(time.Millisecond), "grace_period", d.opts.GracePeriod)
	} else {
		d.log.Info("driver: executor connected", "executor", c.id, "addr", c.addr, "cores", c.cores, "running", len(h.Running), "unacked", len(h.Unacked))
	}

	// Blocks of shuffles the state no longer has, and results of jobs
	// that no longer hold results, are dead (deletions sent while the
	// executor was away were lost).
	del := &api.DeleteBlocks{}
	d.state.Read(func(s *dag.State) {
		for _, sh := range h.Shuffles {
			if _, ok := s.Shuffle(dag.ShuffleID(sh)); !ok {
				del.Shuffles = append(del.Shuffles, sh)
			}
		}
		for _, jid := range h.ResultJobs {
			if j, ok := s.Job(dag.JobID(jid)); !ok || j.Released {
				del.ResultJobs = append(del.ResultJobs, jid)
			}
		}
		for _, c := range h.Cached {
			if gen, ok := s.CacheGeneration(c.Key); !ok || gen != c.Generation {
				del.Cached = append(del.Cached, c)
			}
		}
	})
	if len(del.Shuffles)+len(del.ResultJobs)+len(del.Cached) > 0 {
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Delete{Delete: del}})
	}
	return nil
}

// launchedTo reports whether an attempt is one this leadership launched
// to (or adopted from) the session's executor, with the same identity.
func (l *leadership) launchedTo(c *conn, id *api.TaskID) bool {
	if id == nil {
		return false
	}
	a, ok := l.attempts[id.Task]
	return ok && a.exec == c.id && a.key == partKey{dag.StageID(id.Stage), int(id.StageAttempt), int(id.Partition)} && a.id.Job == id.Job
}

// mayReport reports whether a session may report an attempt's end: one
// this leadership launched or adopted to it, or one a leader's ticket says
// was launched to this executor (an end a takeover did not adopt, because
// its partition runs again, still reaches the state, which decides; it
// may hold a commit authorisation only its logged end frees). With no
// key (ACLs off) there is no identity to check, and every end goes to the
// state as before.
func (l *leadership) mayReport(key []byte, c *conn, id *api.TaskID) bool {
	if id == nil {
		return false
	}
	return l.launchedTo(c, id) || validTicket(key, id, c.id)
}

// bind binds an executor id to the principal of its first session in
// replicated state (Options.Bind; a session of another principal under
// that id is refused: it would receive the executor's tasks and speak for
// it). Called from the session's goroutine.
func (l *leadership) bind(c *conn) error {
	if c.principal == "" || l.d.opts.Bind == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	if err := l.d.opts.Bind(ctx, c.id, c.principal); err != nil {
		if status.Code(err) == codes.PermissionDenied {
			l.d.log.Warn("driver: refused a session under an executor id another identity holds", "executor", c.id, "caller", c.principal)
		}
		return err
	}
	return nil
}

// bindLocal binds an executor id to its first session's principal for
// this leadership (without Options.Bind).
func (l *leadership) bindLocal(c *conn) error {
	if c.principal == "" {
		return nil
	}
	switch owner, ok := l.owners[c.id]; {
	case !ok:
		l.owners[c.id] = c.principal
	case owner != c.principal:
		l.d.log.Warn("driver: refused a session under an executor id another identity holds", "executor", c.id, "holder", owner, "caller", c.principal)
		return status.Errorf(codes.PermissionDenied, "driver: executor id %s is bound to another identity", c.id)
	}
	return nil
}

// attachable says why a session may not be attached now: this leadership
// ended (a session attached to it would be served by nobody), the executor
// gave up on this hello, or the executor is being removed (it registers
// anew once the removal is logged).
func (l *leadership) attachable(c *conn) error {
	switch {
	case l.ctx.Err() != nil:
		return errNotLeading
	case c.ctx.Err() != nil:
		return fmt.Errorf("driver: executor %s left before its session was attached", c.id)
	case l.losing[c.id]:
		return fmt.Errorf("driver: executor %s is being removed; connect again", c.id)
	}
	return nil
}

// vanished ends the attempts this leader launched on an executor that,
// saying hello again, neither runs them nor has a report for them: the
// executor restarted and they are gone. They end as ExecutorLost (which
// does not count as a failure) and run again.
func (l *leadership) vanished(exec string, h *api.Hello) {
	known := map[uint64]bool{}
	for _, id := range h.Running {
		known[id.Task] = true
	}
	for _, id := range h.Unacked {
		known[id.Task] = true
	}
	var cmds []dag.Command
	for task, a := range l.attempts {
		if a.exec == exec && !known[task] {
			cmds = append(cmds, &dag.TaskEnded{Task: dag.TaskID(task), Stage: a.key.stage, StageAttempt: a.key.attempt, Partition: a.key.part,
				Attempt: int(a.id.Attempt), Executor: dag.ExecutorID(exec), Epoch: a.id.Epoch, Reason: dag.ExecutorLost,
				Message: "attempt vanished: executor " + exec + " restarted"})
			l.ended(task)
		}
	}
	if len(cmds) == 0 {
		return
	}
	l.d.log.Info("driver: attempts vanished with an executor restart", "executor", exec, "attempts", len(cmds))
	l.spawn(func() {
		if _, err := l.d.prop.Propose(l.ctx, cmds...); err != nil {
			l.d.log.Debug("driver: logging vanished attempts", "err", err)
			return
		}
		l.d.metrics.finished.WithLabelValues(dag.ExecutorLost.Label()).Add(float64(len(cmds)))
	})
}

// vanishedCommits ends the attempts that hold an output commit
// authorisation on an executor that, saying hello, neither runs them nor
// has a report for them: it restarted, and they died with it before they
// committed (a previous leader launched them, so vanished does not know
// them). Ending them frees their authorisation; otherwise every later
// attempt of the partition would be denied, forever.
func (l *leadership) vanishedCommits(exec string, h *api.Hello) {
	known := map[uint64]bool{}
	for _, id := range h.Running {
		known[id.Task] = true
	}
	for _, id := range h.Unacked {
		known[id.Task] = true
	}
	var cmds []dag.Command
	l.d.state.Read(func(s *dag.State) {
		for _, hc := range s.CommitsHeldBy(dag.ExecutorID(exec)) {
			if known[uint64(hc.Task)] {
				continue
			}
			attempt := 0
			if st, ok := s.Stage(hc.Stage); ok {
				attempt = st.Attempt
			}
			cmds = append(cmds, &dag.TaskEnded{Task: hc.Task, Stage: hc.Stage, StageAttempt: attempt, Partition: hc.Partition,
				Executor: dag.ExecutorID(exec), Reason: dag.ExecutorLost,
				Message: "attempt vanished with an executor restart while authorised to commit"})
		}
	})
	if len(cmds) == 0 {
		return
	}
	l.d.log.Info("driver: commit authorisations freed: their attempts vanished with an executor restart", "executor", exec, "attempts", len(cmds))
	l.spawn(func() {
		if _, err := l.d.prop.Propose(l.ctx, cmds...); err != nil {
			l.d.log.Debug("driver: freeing vanished commit authorisations", "err", err)
		}
	})
}

func sameFuncs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, f := range a {
		seen[f] = true
	}
	for _, f := range b {
		if !seen[f] {
			return false
		}
	}
	return true
}

// health records what an executor says of its health; a change is
// logged once.
func (l *leadership) health(c *conn, unhealthy string) {
	was := c.unhealthy
	c.unhealthy = unhealthy
	switch {
	case was == unhealthy:
	case unhealthy != "":
		l.d.log.Warn("driver: executor unhealthy; it gets no tasks until it is well", "executor", c.id, "reason", unhealthy)
	default:
		l.d.log.Info("driver: executor healthy again", "executor", c.id)
	}
}
