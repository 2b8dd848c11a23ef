package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/internal/grpcdial"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// schedulerConn returns the executor's connection to a scheduler.
func (e *Executor) schedulerConn(addr string) (*grpc.ClientConn, error) {
	e.schedMu.Lock()
	defer e.schedMu.Unlock()
	if cc, ok := e.sched[addr]; ok {
		return cc, nil
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(dialCreds(e.opts.TLS, tlsconf.RoleServer))}
	if e.opts.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(e.opts.Token)))
	}
	cc, err := grpc.NewClient(addr, append(opts, grpcdial.ConnectParams(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(grpcdial.MaxMessageSize), grpc.MaxCallSendMsgSize(grpcdial.MaxMessageSize)))...)
	if err != nil {
		return nil, err
	}
	e.sched[addr] = cc
	return cc, nil
}

// bearerToken sends the executor's ACL token with every call.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

// session runs one session with the leader through the member at addr.
// It returns the leader's API address when the member says it is not the
// leader and knows who is. The goroutines it starts have ended when it
// returns.
func (e *Executor) session(ctx context.Context, addr string, session uint64) (string, error) {
	cc, err := e.schedulerConn(addr)
	if err != nil {
		return "", err
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the goroutines end with sctx
	defer cancel()
	stream, err := api.NewExecutorsClient(cc).Connect(sctx)
	if err != nil {
		return "", err
	}
	if err := stream.Send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Hello{Hello: e.hello()}}); err != nil {
		return "", err
	}
	// A member that does not answer the hello soon is frozen or lost.
	answered := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-answered:
		case <-time.After(2 * time.Second):
			cancel()
		case <-sctx.Done():
		}
	}()
	first, err := stream.Recv()
	close(answered)
	if err != nil {
		return "", err
	}
	var hb time.Duration
	switch m := first.Msg.(type) {
	case *api.DriverMessage_NotLeader:
		e.log.Debug("not the leader; going to the leader", "via", addr, "leader", m.NotLeader.LeaderId, "leader_addr", m.NotLeader.LeaderApiAddr)
		return m.NotLeader.LeaderApiAddr, nil
	case *api.DriverMessage_Welcome:
		e.mu.Lock()
		if m.Welcome.Term < e.highestTerm {
			e.mu.Unlock()
			return "", fmt.Errorf("welcomed by a leader of term %d, but term %d has been seen: a deposed leader", m.Welcome.Term, e.highestTerm)
		}
		e.raiseTerm(m.Welcome.Term)
		e.setGrantKey(m.Welcome.GrantKey)
		// Everything not acknowledged is sent again in this session.
		e.sessionID = session
		// Graphs are cached per session: the leader sends each graph
		// once per session, so a new session starts an empty cache
		// (running tasks keep theirs).
		e.graphs = map[string]*plan.Graph{}
		e.runner.ForgetParams()
		e.unsent = e.unsent[:0]
		for id, u := range e.pending {
			u.sent = 0
			e.unsent = append(e.unsent, id)
		}
		e.mu.Unlock()
		e.wake()
		hb = time.Duration(m.Welcome.HeartbeatIntervalMs) * time.Millisecond
		e.welcomed.Store(time.Now().UnixNano())
		e.log.Info("connected to the leader", "via", addr, "term", m.Welcome.Term)
	default:
		return "", fmt.Errorf("unexpected first message %T", first.Msg)
	}
	if hb <= 0 {
		hb = time.Second
	}
	sendErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendErr <- e.sender(sctx, stream, session, hb) // buffered: never blocks
	}()
	// The leader answers every heartbeat; a leader silent for three
	// heartbeat intervals is dead or frozen: find another.
	heard := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(3 * hb)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-heard:
				if !t.Stop() {
					<-t.C
				}
				t.Reset(3 * hb)
			case <-t.C:
				e.log.Warn("the leader is silent; looking for another", "via", addr)
				cancel()
				return
			}
		}
	}()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return "", err
		}
		select {
		case heard <- struct{}{}:
		default:
		}
		switch m := msg.Msg.(type) {
		case *api.DriverMessage_Launch:
			launches, err := api.ExpandLaunch(m.Launch)
			if err != nil {
				e.log.Error("executor: a launch message that cannot be read; its tasks run elsewhere once the leader loses them", "err", err)
				launches = m.Launch.Tasks
			}
			for _, l := range launches {
				e.launch(ctx, l)
			}
		case *api.DriverMessage_Kill:
			e.kill(m.Kill)
		case *api.DriverMessage_Ack:
			e.mu.Lock()
			for _, id := range m.Ack.Tasks {
				delete(e.pending, id)
			}
			e.mu.Unlock()
		case *api.DriverMessage_Delete:
			e.deleteBlocks(m.Delete)
		case *api.DriverMessage_Commit:
			e.decided(m.Commit)
		case *api.DriverMessage_Output:
			e.output(ctx, m.Output)
		case *api.DriverMessage_NotLeader:
			e.log.Info("the leader stepped down; going to the new one", "via", addr, "leader", m.NotLeader.LeaderId, "leader_addr", m.NotLeader.LeaderApiAddr)
			return m.NotLeader.LeaderApiAddr, nil
		}
		select {
		case err := <-sendErr:
			return "", err
		default:
		}
	}
}

func (e *Executor) hello() *api.Hello {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := &api.Hello{ExecutorId: e.opts.ID, Addr: e.addr, Cores: int32(e.opts.Cores), TaskSets: true, Funcs: append(e.opts.Registry.Names(), e.opts.Confine.PipeFuncs()...), HighestTerm: e.highestTerm,
		Unhealthy: e.health()}
	for _, t := range e.running {
		h.Running = append(h.Running, t.id)
		h.RunningForMs = append(h.RunningForMs, time.Since(t.started).Milliseconds())
	}
	for _, u := range e.pending {
		h.Unacked = append(h.Unacked, u.status.Id)
	}
	if shuffles, err := e.store.Shuffles(); err == nil {
		h.Shuffles = shuffles
	}
	if jobs, err := e.store.ResultJobs(); err == nil {
		h.ResultJobs = jobs
	}
	if sets, err := e.store.CachedSets(); err == nil {
		for _, c := range sets {
			h.Cached = append(h.Cached, &api.CachedDatasetBlocks{Key: c.Key, Generation: c.Gen})
		}
	}
	return h
}

// sender sends the status updates not yet sent in this session as soon as
// there are any (the leader frees a task's slot when it hears of its end,
// so reporting at once keeps slots busy), and an empty message every
// heartbeat interval.
func (e *Executor) sender(ctx context.Context, stream grpc.BidiStreamingClient[api.ExecutorMessage, api.DriverMessage], session uint64, hb time.Duration) error {
	t := time.NewTicker(hb)
	defer t.Stop()
	for {
		heartbeat := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.kick:
		case <-t.C:
			heartbeat = true
		}
		e.mu.Lock()
		if e.sessionID != session {
			e.mu.Unlock()
			return nil
		}
		var batch []*api.TaskStatus
		for _, id := range e.unsent {
			if u, ok := e.pending[id]; ok && u.sent != session {
				u.sent = session
				batch = append(batch, u.status)
			}
		}
		e.unsent = e.unsent[:0]
		var asks []*api.TaskID
		for _, a := range e.commits {
			if a.sent != session {
				a.sent = session
				asks = append(asks, a.id)
			}
		}
		done := e.outputDone
		e.outputDone = nil
		e.mu.Unlock()
		for _, d := range done {
			if err := stream.Send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_OutputDone{OutputDone: d}}); err != nil {
				return err
			}
		}
		for _, id := range asks {
			if err := stream.Send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Commit{Commit: &api.CommitRequest{Id: id}}}); err != nil {
				return err
			}
		}
		if len(batch) == 0 && !heartbeat {
			continue
		}
		if err := sendUpdates(stream, batch, e.health()); err != nil {
			return err
		}
	}
}

// maxUpdateBytes bounds the task statuses one message carries. A backlog
// (every end a dead leader never acknowledged, with their direct results)
// can be larger than a message may be: it goes in several messages, never
// in one the transport refuses, which would end the session and be tried
// again in the next one, forever.
const maxUpdateBytes = 8 << 20

// sendUpdates sends batch in messages of at most maxUpdateBytes of
// statuses (a single larger status goes alone), or one empty message, the
// heartbeat, when batch is empty.
func sendUpdates(stream grpc.BidiStreamingClient[api.ExecutorMessage, api.DriverMessage], batch []*api.TaskStatus, unhealthy string) error {
	for first := true; first || len(batch) > 0; first = false {
		n, size := 0, 0
		for n < len(batch) {
			s := proto.Size(batch[n])
			if n > 0 && size+s > maxUpdateBytes {
				break
			}
			size += s
			n++
		}
		m := &api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: batch[:n], Unhealthy: unhealthy}}}
		if err := stream.Send(m); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// askCommit asks the leader (whichever it is, as long as it takes) whether
// the task may commit its output, and waits for the answer.
func (e *Executor) askCommit(ctx context.Context, id *api.TaskID) (bool, error) {
	a := &commitAsk{id: id, answer: make(chan bool, 1)}
	e.mu.Lock()
	e.commits[id.Task] = a
	e.mu.Unlock()
	e.wake()
	defer func() {
		e.mu.Lock()
		delete(e.commits, id.Task)
		e.mu.Unlock()
	}()
	select {
	case ok := <-a.answer:
		return ok, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// decided delivers a commit decision, unless a deposed leader made it.
func (e *Executor) decided(d *api.CommitDecision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d.Term < e.highestTerm {
		e.stats.fenced++
		e.metrics.fenced.Inc()
		e.log.Warn("refused a commit decision from a deposed leader", "task", d.Task, "term", d.Term, "highest", e.highestTerm)
		return
	}
	e.raiseTerm(d.Term)
	if a, ok := e.commits[d.Task]; ok {
		select {
		case a.answer <- d.Authorized:
		default:
		}
	}
}

// launch starts a task unless the executor is closing, the order is
// fenced off (an older leader's) or the task is already known.
func (e *Executor) launch(ctx context.Context, l *api.TaskLaunch) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return // the executor is closing: the leader runs the task elsewhere
	}
	if l.Term < e.highestTerm {
		e.stats.fenced++
		e.metrics.fenced.Inc()
		e.log.Warn("refused a launch from a deposed leader", "task", l.Id.GetTask(), "term", l.Term, "highest", e.highestTerm)
		return
	}
	e.raiseTerm(l.Term)
	id := l.Id.GetTask()
	if _, dup := e.running[id]; dup {
		return
	}
	if _, dup := e.pending[id]; dup {
		return
	}
	now := time.Now().UnixNano()
	e.stats.launches++
	e.metrics.launched.Inc()
	e.stats.launchesJob[l.Id.GetJob()]++
	if _, ok := e.stats.firstByTerm[l.Term]; !ok {
		e.stats.firstByTerm[l.Term] = now
	}
	e.stats.lastByTerm[l.Term] = now
	g := e.graphs[l.GraphKey]
	if g == nil && len(l.Graph) > 0 {
		g = &plan.Graph{}
		if err := json.Unmarshal(l.Graph, g); err != nil || g.Validate() != nil {
			e.finishLocked(failed(l.Id, fmt.Sprintf("executor: bad graph in launch: %v", err)))
			return
		}
		e.graphs[l.GraphKey] = g
	}
	if g == nil {
		e.finishLocked(failed(l.Id, "executor: launch names a graph this executor does not have"))
		return
	}
	tctx, cancel := context.WithCancel(ctx)
	t := &task{id: l.Id, cancel: cancel, started: time.Now()}
	e.running[id] = t
	e.wg.Add(1) // under mu, closing false: before Close waits
	e.enqueueLocked(queued{ctx: tctx, t: t, l: l, g: g})
}

func (e *Executor) kill(k *api.Kill) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k.Term < e.highestTerm {
		e.stats.fenced++
		e.metrics.fenced.Inc()
		e.log.Warn("refused a kill from a deposed leader", "term", k.Term, "highest", e.highestTerm)
		return
	}
	e.raiseTerm(k.Term)
	for _, id := range k.Tasks {
		if t, ok := e.running[id]; ok {
			t.killed = true
			t.cancel()
			if !t.begun {
				e.killQueuedLocked(t)
			}
		}
	}
}

func (e *Executor) deleteBlocks(d *api.DeleteBlocks) {
	for _, s := range d.Shuffles {
		if err := e.store.DeleteShuffle(s); err != nil {
			e.log.Warn("delete shuffle", "shuffle", s, "err", err)
		}
	}
	for _, r := range d.Results {
		if err := e.store.DeleteResult(r.Job, r.Task); err != nil {
			e.log.Warn("delete result", "job", r.Job, "task", r.Task, "err", err)
		}
	}
	for _, j := range d.ResultJobs {
		if err := e.store.DeleteJobResults(j); err != nil {
			e.log.Warn("delete results", "job", j, "err", err)
		}
	}
	for _, k := range d.CachedKeys {
		if err := e.store.DeleteCached(k); err != nil {
			e.log.Warn("delete cached partitions", "dataset", k, "err", err)
		}
	}
	for _, c := range d.Cached {
		if err := e.store.DeleteCachedGen(c.Key, c.Generation); err != nil {
			e.log.Warn("delete cached partitions", "dataset", c.Key, "generation", c.Generation, "err", err)
		}
	}
}

// finishLocked records a final status to report. e.mu is held.
func (e *Executor) finishLocked(st *api.TaskStatus) {
	// A message is protobuf text: bytes that are not UTF-8 (a pipe's
	// stderr cut mid-character, a program's binary output) would make
	// every report batch holding it unsendable.
	st.Message = strings.ToValidUTF8(st.Message, "\uFFFD")
	id := st.Id.GetTask()
	delete(e.running, id)
	e.metrics.endedBy[endedState(st.State)].Inc()
	e.pending[id] = &update{status: st}
	e.unsent = append(e.unsent, id)
	e.wake()
}

func failed(id *api.TaskID, msg string) *api.TaskStatus {
	return &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FAILED, Failure: api.FailureKind_FAILURE_KIND_EXCEPTION, Message: msg}
}

var errKilled = errors.New("killed")

// probeTimeout is how long findLeader waits for members' answers.
const probeTimeout = 500 * time.Millisecond

// findLeader asks every member at once for its Raft status and returns
// the API address to say hello to: the member that reports itself leader
// in the highest term, or failing that a member that answered (it
// redirects to the leader), preferring any but avoid (the member the last
// session ended with). It returns "" when no member answered in time.
// The probes still out when it has its answer are cancelled, and have
// ended when it returns.
func (e *Executor) findLeader(ctx context.Context, avoid string) string {
	type answer struct {
		addr string
		st   *api.NodeStatus
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel
	defer cancel()
	answers := make(chan answer, len(e.opts.Schedulers))
	for _, addr := range e.opts.Schedulers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st *api.NodeStatus
			if cc, err := e.schedulerConn(addr); err == nil {
				st, _ = api.NewOperatorClient(cc).GetNodeStatus(ctx, &api.NodeStatusRequest{})
			}
			answers <- answer{addr, st} // buffered: never blocks
		}()
	}
	// The first member to say it leads wins at once (a frozen member
	// never answers); otherwise the best of what came back in time.
	var leader, other answer
	for range e.opts.Schedulers {
		a := <-answers
		switch {
		case a.st == nil:
		case a.st.State == "Leader" && (leader.st == nil || a.st.Term > leader.st.Term):
			leader = a
		case other.st == nil || other.addr == avoid:
			other = a
		}
		if leader.st != nil && leader.addr != avoid {
			return leader.addr
		}
	}
	switch {
	case leader.st != nil:
		return leader.addr
	case other.st != nil:
		return other.addr
	}
	return ""
}
