package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// conn is one executor's session with this leader.
type conn struct {
	id string
	// principal is who opened the session (see Options.Principal).
	principal string
	addr      string
	cores     int
	out       chan *api.DriverMessage
	graphs    map[string]bool // graph keys sent in this session
	funcs     map[string]bool // the functions the executor holds
	ready     bool            // registered in the state
	// unhealthy is why the executor should get no tasks now, as it last
	// said ("": healthy). l.mu guards it.
	unhealthy string
	closed    chan struct{}
	once      sync.Once
}

func (c *conn) close() { c.once.Do(func() { close(c.closed) }) }

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

// send queues a message for the executor; it never blocks the caller for
// long (a session that cannot keep up is closed and will reconnect).
func (c *conn) send(m *api.DriverMessage) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.out <- m:
		return true
	case <-c.closed:
		return false
	case <-time.After(5 * time.Second):
		c.close()
		return false
	}
}

// Connect serves one executor's session (api.Executors). The executor
// says Hello; a follower answers NotLeader with the leader's address; the
// leader registers the executor (a logged RegisterExecutor), welcomes it,
// adopts or kills the attempts it reports, and then exchanges launches,
// kills and acknowledgements for status updates until the stream ends.
func (d *Driver) Connect(stream grpc.BidiStreamingServer[api.ExecutorMessage, api.DriverMessage]) error {
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
	c := &conn{id: hello.ExecutorId, principal: principal, addr: hello.Addr, cores: int(hello.Cores), out: make(chan *api.DriverMessage, 256), graphs: map[string]bool{}, funcs: map[string]bool{},
		unhealthy: hello.Unhealthy, closed: make(chan struct{})}
	for _, f := range hello.Funcs {
		c.funcs[f] = true
	}
	if err := l.attach(c, hello, stream.Context()); err != nil {
		return err
	}
	defer l.detach(c)

	// One goroutine sends, so messages keep their order.
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case m := <-c.out:
				// Merge what else is queued: launches into one message,
				// acknowledgements into one (fewer messages, fewer
				// writes).
				for _, m := range coalesce(m, c.out) {
					if err := stream.Send(m); err != nil {
						sendErr <- err
						c.close()
						return
					}
				}
			case <-c.closed:
				// Tell the executor to look elsewhere if we stopped
				// leading; best effort.
				if d.current() != l {
					id, addr := d.leader()
					stream.Send(&api.DriverMessage{Msg: &api.DriverMessage_NotLeader{NotLeader: &api.NotLeader{LeaderId: id, LeaderApiAddr: addr}}})
				}
				sendErr <- nil
				return
			}
		}
	}()
	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			l.heard(c.id)
			switch m := msg.Msg.(type) {
			case *api.ExecutorMessage_Updates:
				l.health(c, m.Updates.Unhealthy)
				if len(m.Updates.Updates) > 0 {
					go l.updates(c, m.Updates.Updates)
				} else if l.ctx.Err() == nil {
					// A heartbeat: answer it, so the executor knows this
					// leader is alive (a frozen leader does not answer,
					// nor does one that stopped leading).
					c.send(&api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{}}})
				}
			case *api.ExecutorMessage_Commit:
				go l.commit(c, m.Commit.Id)
			case *api.ExecutorMessage_Hello:
				// A second hello is a protocol error.
				recvErr <- fmt.Errorf("driver: executor %s said hello twice", c.id)
				return
			}
		}
	}()
	select {
	case err := <-recvErr:
		c.close()
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

// drain waits a little for the sender to finish its last message.
func drain(sendErr <-chan error) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-sendErr:
	case <-t.C:
	}
}

// attach registers an executor's session: it replaces an older session of
// the same executor, logs the registration, welcomes the executor,
// deletes blocks no live job needs, and adopts the attempts it runs.
func (l *leadership) attach(c *conn, h *api.Hello, stream context.Context) error {
	d := l.d
	// One attach of an executor at a time: an older hello that finished
	// after a newer one would adopt and end attempts by stale news.
	unlock := l.lockExecutor(c.id)
	defer unlock()
	if err := l.attachable(c.id, stream); err != nil {
		return err
	}
	if err := l.bind(c); err != nil {
		return err
	}
	// Register (or revive, or update) the executor in the state first:
	// its outputs count only once it is registered.
	need := true
	d.fsm.Read(func(s *dag.State) {
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
	if err := l.attachable(c.id, stream); err != nil {
		return err
	}
	c.send(&api.DriverMessage{Msg: &api.DriverMessage_Welcome{Welcome: &api.Welcome{Term: l.term, HeartbeatIntervalMs: d.opts.HeartbeatInterval.Milliseconds(),
		GrantKey: l.blockSigner().Public()}}})
	// Adopt what the executor runs and holds before the session counts:
	// the grace period ends once every executor's session counts, and
	// from then on partitions not held are launched.
	l.adopt(c, h.Running, h.Unacked)
	l.vanished(c.id, h)
	l.vanishedCommits(c.id, h)
	l.mu.Lock()
	if err := l.attachableLocked(c.id, stream); err != nil {
		l.mu.Unlock()
		return err
	}
	if old := l.conns[c.id]; old != nil {
		old.close()
	}
	l.conns[c.id] = c
	l.lastSeen[c.id] = time.Now()
	c.ready = true
	inGrace := !l.graceful
	l.mu.Unlock()
	if inGrace {
		// How long executors take to come back is what the grace period
		// must cover: say it.
		d.log.Info("driver: executor connected", "executor", c.id, "addr", c.addr, "cores", c.cores, "running", len(h.Running), "unacked", len(h.Unacked),
			"after_takeover", time.Since(l.won).Round(time.Millisecond), "grace_period", d.opts.GracePeriod)
	} else {
		d.log.Info("driver: executor connected", "executor", c.id, "addr", c.addr, "cores", c.cores, "running", len(h.Running), "unacked", len(h.Unacked))
	}

	// Blocks of shuffles the state no longer has, and results of jobs
	// that no longer hold results, are dead (deletions sent while the
	// executor was away were lost).
	del := &api.DeleteBlocks{}
	d.fsm.Read(func(s *dag.State) {
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
	})
	if len(del.Shuffles)+len(del.ResultJobs) > 0 {
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Delete{Delete: del}})
	}
	l.kick()
	return nil
}

// lockExecutor serialises the attaches of one executor.
func (l *leadership) lockExecutor(id string) (unlock func()) {
	l.mu.Lock()
	m := l.attaching[id]
	if m == nil {
		m = &sync.Mutex{}
		l.attaching[id] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// attachable says why a session may not be attached now: this leadership
// ended (a session attached to it would be served by nobody), the executor
// gave up on this hello, or the executor is being removed (it registers
// anew once the removal is logged).
// launchedTo reports whether an attempt is one this leadership launched
// to (or adopted from) the session's executor, with the same identity.
// Called with l.mu held.
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
// state as before. Called with l.mu held.
func (l *leadership) mayReport(key []byte, c *conn, id *api.TaskID) bool {
	if id == nil {
		return false
	}
	return l.launchedTo(c, id) || validTicket(key, id, c.id)
}

// bind binds an executor id to the principal of its first session; a
// session of another principal under that id is refused (it would
// receive the executor's tasks and speak for it). With Options.Bind the
// binding is replicated state (it outlives the leadership); without, it
// lasts this leadership.
func (l *leadership) bind(c *conn) error {
	if c.principal == "" {
		return nil
	}
	if l.d.opts.Bind != nil {
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
	l.mu.Lock()
	defer l.mu.Unlock()
	switch owner, ok := l.owners[c.id]; {
	case !ok:
		l.owners[c.id] = c.principal
	case owner != c.principal:
		l.d.log.Warn("driver: refused a session under an executor id another identity holds", "executor", c.id, "holder", owner, "caller", c.principal)
		return status.Errorf(codes.PermissionDenied, "driver: executor id %s is bound to another identity", c.id)
	}
	return nil
}

func (l *leadership) attachable(id string, stream context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attachableLocked(id, stream)
}

func (l *leadership) attachableLocked(id string, stream context.Context) error {
	switch {
	case l.ctx.Err() != nil:
		return errors.New("driver: no longer leading")
	case stream.Err() != nil:
		return fmt.Errorf("driver: executor %s left before its session was attached", id)
	case l.losing[id]:
		return fmt.Errorf("driver: executor %s is being removed; connect again", id)
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
	l.mu.Lock()
	for task, a := range l.attempts {
		if a.exec == exec && !known[task] {
			cmds = append(cmds, &dag.TaskEnded{Task: dag.TaskID(task), Stage: a.key.stage, StageAttempt: a.key.attempt, Partition: a.key.part,
				Attempt: int(a.id.Attempt), Executor: dag.ExecutorID(exec), Epoch: a.id.Epoch, Reason: dag.ExecutorLost,
				Message: "attempt vanished: executor " + exec + " restarted"})
			l.ended(task)
		}
	}
	l.mu.Unlock()
	if len(cmds) == 0 {
		return
	}
	l.d.log.Info("driver: attempts vanished with an executor restart", "executor", exec, "attempts", len(cmds))
	if _, err := l.d.prop.Propose(l.ctx, cmds...); err != nil {
		l.d.log.Debug("driver: logging vanished attempts", "err", err)
		return
	}
	l.d.metrics.finished.WithLabelValues(reasonLabel(dag.ExecutorLost)).Add(float64(len(cmds)))
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
	l.d.fsm.Read(func(s *dag.State) {
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
	if _, err := l.d.prop.Propose(l.ctx, cmds...); err != nil {
		l.d.log.Debug("driver: freeing vanished commit authorisations", "err", err)
	}
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

// detach forgets a session (not the executor: its liveness deadline
// decides whether it is lost).
func (l *leadership) detach(c *conn) {
	c.close()
	l.mu.Lock()
	if l.conns[c.id] == c {
		delete(l.conns, c.id)
	}
	l.mu.Unlock()
}

// health records what an executor says of its health; a change is
// logged once, and an executor that became healthy may take tasks at once.
func (l *leadership) health(c *conn, unhealthy string) {
	l.mu.Lock()
	was := c.unhealthy
	c.unhealthy = unhealthy
	l.mu.Unlock()
	switch {
	case was == unhealthy:
		return
	case unhealthy != "":
		l.d.log.Warn("driver: executor unhealthy; it gets no tasks until it is well", "executor", c.id, "reason", unhealthy)
	default:
		l.d.log.Info("driver: executor healthy again", "executor", c.id)
		l.kick()
	}
}

func (l *leadership) heard(exec string) {
	l.mu.Lock()
	l.lastSeen[exec] = time.Now()
	l.mu.Unlock()
}

// updates logs a batch of status updates from one executor and, once
// committed, acknowledges them. Many executors' batches commit together
// through the proposer (group commit).
func (l *leadership) updates(c *conn, updates []*api.TaskStatus) {
	cmds := make([]dag.Command, 0, len(updates))
	ids := make([]uint64, 0, len(updates))
	durations := make([]time.Duration, 0, len(updates))
	var stray []uint64
	key := l.ticketKey()
	l.mu.Lock()
	for _, u := range updates {
		if !l.mayReport(key, c, u.Id) {
			stray = append(stray, u.Id.GetTask())
		}
	}
	l.mu.Unlock()
	if len(stray) > 0 {
		// Not an attempt of this session (a forgery, or the end of one
		// this leader already settled): acknowledged, so the executor
		// forgets it, and never logged.
		l.d.log.Warn("driver: ignored status updates for attempts not launched to this session", "executor", c.id, "updates", len(stray), "first", stray[0])
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{Tasks: stray}}})
		if len(stray) == len(updates) {
			return
		}
		keep := updates[:0:0]
		for _, u := range updates {
			if !slices.Contains(stray, u.Id.GetTask()) {
				keep = append(keep, u)
			}
		}
		updates = keep
	}
	for _, u := range updates {
		cmd := toTaskEnded(c.id, u)
		if cmd == nil {
			continue
		}
		switch cmd.Reason {
		case dag.Success:
		case dag.Killed:
			// Killed on purpose (a cancel, a stage no longer needed, a
			// speculative copy's loser): not worth a line each.
			l.d.log.Debug("driver: task attempt killed", "executor", c.id, "task", cmd.Task, "job", u.Id.GetJob(), "stage", cmd.Stage,
				"attempt", cmd.StageAttempt, "partition", cmd.Partition)
		default:
			l.d.log.Info("driver: task attempt failed", "executor", c.id, "task", cmd.Task, "job", u.Id.GetJob(), "stage", cmd.Stage,
				"attempt", cmd.StageAttempt, "partition", cmd.Partition, "reason", cmd.Reason.String(), "message", cmd.Message)
		}
		cmds = append(cmds, cmd)
		ids = append(ids, u.Id.GetTask())
		durations = append(durations, time.Duration(u.DurationMs)*time.Millisecond)
	}
	if len(cmds) == 0 {
		return
	}
	// The slots are free now; the partitions stay taken until the ends
	// are committed.
	l.mu.Lock()
	for i, id := range ids {
		if a, ok := l.attempts[id]; ok {
			a.reported = true
			// An exception counts against its executor at once: its slot
			// is free now, and should not take the next task before the
			// end is logged.
			if cmds[i].(*dag.TaskEnded).Reason == dag.Exception {
				l.excl.failed(a.key, a.exec)
			}
		}
	}
	for _, u := range updates {
		if u.State == api.TaskState_TASK_STATE_FINISHED && u.Id != nil {
			st := dag.StageID(u.Id.Stage)
			d := time.Duration(u.DurationMs) * time.Millisecond
			if old, ok := l.durations[st]; ok {
				d = (3*old + d) / 4
			}
			l.durations[st] = d
		}
	}
	l.mu.Unlock()
	l.kick()
	saved := l.markSaved(cmds)
	res, err := l.d.prop.Propose(l.ctx, cmds...)
	if err != nil {
		l.unmarkSaved(saved)
		// Not acknowledged: the executor sends them again to the next
		// leader.
		l.d.log.Debug("driver: status updates not committed", "executor", c.id, "err", err)
		l.mu.Lock()
		for _, id := range ids {
			if a, ok := l.attempts[id]; ok {
				a.reported = false
			}
		}
		l.mu.Unlock()
		// Still leading (a leadership transfer that failed, a full
		// queue): the executor resends unacknowledged reports only in a
		// new session, so end this one.
		c.close()
		return
	}
	var dropped dag.Dropped
	l.d.metrics.batch.Observe(float64(len(cmds)))
	for _, cmd := range cmds {
		l.d.metrics.finished.WithLabelValues(reasonLabel(cmd.(*dag.TaskEnded).Reason)).Inc()
	}
	l.mu.Lock()
	l.noteDenials(cmds)
	kill := l.settle(cmds, ids, durations)
	for _, id := range ids {
		l.ended(id)
	}
	l.mu.Unlock()
	for exec, tasks := range kill {
		if kc := l.connOf(exec); kc != nil {
			kc.send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: l.term, Tasks: tasks, Reason: "another attempt succeeded"}}})
		}
	}
	for i, r := range res {
		if r.Err != nil {
			l.d.log.Warn("driver: status update rejected", "executor", c.id, "task", ids[i], "err", r.Err)
		}
		if r.Dropped != nil {
			dropped.Shuffles = append(dropped.Shuffles, r.Dropped.Shuffles...)
			dropped.Results = append(dropped.Results, r.Dropped.Results...)
		}
	}
	c.send(&api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{Tasks: ids}}})
	if len(dropped.Shuffles)+len(dropped.Results) > 0 {
		l.dropped(&dropped)
	}
	l.kick()
}

// settle learns from logged successes (l.mu is held): they feed
// speculation's durations and clear their partition's failures (which may
// exclude the executors they happened on), and end the partition's other
// attempt (a speculative copy or the original), returned by executor for
// killing.
func (l *leadership) settle(cmds []dag.Command, ids []uint64, durations []time.Duration) map[string][]uint64 {
	var kill map[string][]uint64
	now := time.Now()
	for i, cmd := range cmds {
		te := cmd.(*dag.TaskEnded)
		a := l.attempts[ids[i]]
		if a == nil {
			continue
		}
		switch te.Reason {
		case dag.Success:
			if l.d.opts.Speculation {
				l.succeeded[a.key.set()] = append(l.succeeded[a.key.set()], durations[i])
			}
			for _, exec := range l.excl.succeeded(a.key, now) {
				l.d.log.Warn("driver: executor excluded after task failures that succeeded elsewhere", "executor", exec, "for", l.d.opts.ExcludeTimeout)
			}
			other := l.spec[a.key]
			if a.speculative {
				other = l.byPart[a.key]
			}
			if oa := l.attempts[other]; oa != nil && other != ids[i] && !oa.killing && !oa.reported {
				oa.killing = true
				if kill == nil {
					kill = map[string][]uint64{}
				}
				kill[oa.exec] = append(kill[oa.exec], other)
			}
		}
	}
	return kill
}

// connOf returns an executor's current session.
func (l *leadership) connOf(exec string) *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[exec]
}

// toTaskEnded turns a final status update into the command that logs it;
// nil for an update that is not final.
func toTaskEnded(exec string, u *api.TaskStatus) *dag.TaskEnded {
	id := u.Id
	if id == nil {
		return nil
	}
	te := &dag.TaskEnded{
		Task: dag.TaskID(id.Task), Stage: dag.StageID(id.Stage), StageAttempt: int(id.StageAttempt),
		Partition: int(id.Partition), Attempt: int(id.Attempt), Executor: dag.ExecutorID(exec), Epoch: id.Epoch,
		Message: clip(u.Message), DurationMs: max(u.DurationMs, 0),
	}
	switch u.State {
	case api.TaskState_TASK_STATE_FINISHED:
		te.Reason = dag.Success
		te.MapBytes, te.MapSizes = u.MapBytes, u.MapSizes
		te.ResultSize, te.Result, te.Indirect = u.ResultSize, u.Result, u.Indirect
		if !u.Indirect && u.Result == nil {
			te.Result = []byte{}
		}
	case api.TaskState_TASK_STATE_KILLED:
		te.Reason = dag.Killed
	case api.TaskState_TASK_STATE_FAILED:
		switch u.Failure {
		case api.FailureKind_FAILURE_KIND_FETCH_FAILED:
			te.Reason = dag.FetchFailed
			te.FetchExecutor, te.FetchShuffle = dag.ExecutorID(u.FetchExecutor), dag.ShuffleID(u.FetchShuffle)
			te.FetchMap, te.FetchReduce = int(u.FetchMap), int(u.FetchReduce)
		case api.FailureKind_FAILURE_KIND_RESULT_LOST:
			te.Reason = dag.ResultLost
		case api.FailureKind_FAILURE_KIND_COMMIT_DENIED:
			te.Reason = dag.CommitDenied
		default:
			te.Reason = dag.Exception
		}
	default:
		return nil
	}
	return te
}

// maxMessage bounds a failure message kept in the log: an executor's
// message is its own business, the log's size is everyone's.
const maxMessage = 4 << 10

// clip shortens a message to maxMessage bytes, on a character boundary.
func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + " …(clipped)"
}

// dropped sends deletions to the executors holding the blocks.
func (l *leadership) dropped(dr *dag.Dropped) {
	l.mu.Lock()
	conns := make([]*conn, 0, len(l.conns))
	for _, c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	shuffles := make([]uint64, len(dr.Shuffles))
	for i, s := range dr.Shuffles {
		shuffles[i] = uint64(s)
	}
	// Every result of the jobs concerned goes, on every executor: that
	// also takes the results of earlier attempts nobody references.
	var jobs []uint64
	seen := map[dag.JobID]bool{}
	for _, r := range dr.Results {
		if !seen[r.Job] {
			seen[r.Job] = true
			jobs = append(jobs, uint64(r.Job))
		}
	}
	for _, c := range conns {
		if len(shuffles)+len(jobs) > 0 {
			c.send(&api.DriverMessage{Msg: &api.DriverMessage_Delete{Delete: &api.DeleteBlocks{Shuffles: shuffles, ResultJobs: jobs}}})
		}
	}
}

// coalesce returns first and the messages queued behind it, with the
// launches merged into one message and the acknowledgements into one,
// keeping everything else in order. Launches and acknowledgements commute
// with each other; other messages act as barriers.
func coalesce(first *api.DriverMessage, queue chan *api.DriverMessage) []*api.DriverMessage {
	var out []*api.DriverMessage
	var launch *api.Launch
	var ack *api.Ack
	flush := func() {
		if launch != nil {
			out = append(out, &api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: launch}})
			launch = nil
		}
		if ack != nil {
			out = append(out, &api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: ack}})
			ack = nil
		}
	}
	add := func(m *api.DriverMessage) {
		switch x := m.Msg.(type) {
		case *api.DriverMessage_Launch:
			if launch == nil {
				launch = &api.Launch{}
			}
			launch.Tasks = append(launch.Tasks, x.Launch.Tasks...)
		case *api.DriverMessage_Ack:
			if ack == nil {
				ack = &api.Ack{}
			}
			ack.Tasks = append(ack.Tasks, x.Ack.Tasks...)
		default:
			flush()
			out = append(out, m)
		}
	}
	add(first)
	for i := 0; i < 256; i++ {
		select {
		case m := <-queue:
			add(m)
		default:
			i = 256
		}
	}
	flush()
	return out
}
