package driver

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/plan"
)

// leadership is the driver's volatile state for one term.
type leadership struct {
	d      *Driver
	term   uint64
	ctx    context.Context
	cancel context.CancelFunc
	won    time.Time
	wake   chan struct{}
	// key signs launch tickets (see ticket.go); refreshed each round.
	key atomic.Pointer[[]byte]
	// signer makes block grants; derived from the same key.
	signer atomic.Pointer[blockstore.Signer]
	// owners binds executor ids to the principal that registered them.
	owners map[string]string

	mu       sync.Mutex
	conns    map[string]*conn
	attempts map[uint64]*attempt // running attempts by task id
	byPart   map[partKey]uint64  // running attempt of a (stage, stage attempt, partition)
	spec     map[partKey]uint64  // its speculative copy, if any
	launches map[[2]uint64]int   // launches so far per (stage, partition): attempt numbers
	waiting  map[partKey]time.Time
	lastSeen map[string]time.Time // executors' last sign of life (from the takeover at the earliest)
	losing   map[string]bool      // executors being removed
	// attaching serialises the attaches of each executor.
	attaching map[string]*sync.Mutex
	graphs    map[*plan.Graph]*graphEnc
	funcs     map[*plan.Graph][]string // the functions each graph names
	// durations is a moving average of each stage's task durations.
	durations map[dag.StageID]time.Duration
	// succeeded holds the durations of the successful tasks of each stage
	// attempt, for speculation (only when it is on).
	succeeded map[stageKey][]time.Duration
	// excl is who failed what (see exclusions).
	excl     exclusions
	armed    bool // the resubmit timer
	graceful bool // the grace period is over
	// saving holds, per running saveAsTextFile job, the partitions whose
	// successful ends were reported to this leader (see markSaved).
	saving map[dag.JobID]map[int]bool
	// savingJobs are the saveAsTextFile jobs this leader launched result
	// tasks of, by output directory, until they end (see abortSaved).
	savingJobs map[dag.JobID]string
	// grants keeps the shuffle grants made for each (shuffle, executor),
	// by signer: a signature costs tens of microseconds, launches are
	// many.
	grants       map[grantFor][]byte
	grantsSigner *blockstore.Signer
	// denied holds the partitions (stage, partition) whose attempts were
	// denied their output commit, for backoff (see noteDenials).
	denied map[[2]uint64]denial
}

type partKey struct {
	stage   dag.StageID
	attempt int
	part    int
}

// stageKey is a stage attempt (a task set).
type stageKey struct {
	stage   dag.StageID
	attempt int
}

func (k partKey) set() stageKey { return stageKey{k.stage, k.attempt} }

type attempt struct {
	id      *api.TaskID
	exec    string
	key     partKey
	pool    string    // the pool of the job it runs for
	started time.Time // launched or adopted
	// speculative: a copy of a slow attempt (Spark's speculation).
	speculative bool
	killing     bool
	// reported: the executor reported the attempt's end, which is being
	// logged. Its slot is free (as in Spark, where a status update frees
	// the executor's cores at once), but its partition is not launched
	// again until the end is committed.
	reported bool
}

// ticketKey returns the key of launch tickets (nil: none).
func (l *leadership) ticketKey() []byte {
	if k := l.key.Load(); k != nil {
		return *k
	}
	return nil
}

// blockSigner makes block grants (nil: none).
func (l *leadership) blockSigner() *blockstore.Signer { return l.signer.Load() }

// refreshKey reads the ticket key (outside any read of the state).
func (l *leadership) refreshKey() {
	if l.d.opts.TicketKey != nil {
		k := l.d.opts.TicketKey()
		if bytes.Equal(k, l.ticketKey()) && l.key.Load() != nil {
			return // unchanged: keep the derived signer
		}
		l.key.Store(&k)
		l.signer.Store(blockstore.NewSigner(k))
	}
}

type grantFor struct {
	shuffle uint64
	exec    string
}

// shuffleGrant returns the grant for exec to read a shuffle's blocks.
// l.mu held.
func (l *leadership) shuffleGrant(shuffle uint64, exec string) []byte {
	sg := l.blockSigner()
	if sg == nil {
		return nil
	}
	if l.grantsSigner != sg || len(l.grants) >= maxGrants {
		l.grants, l.grantsSigner = map[grantFor][]byte{}, sg
	}
	k := grantFor{shuffle, exec}
	g, ok := l.grants[k]
	if !ok {
		g = sg.ShuffleGrant(shuffle, exec)
		l.grants[k] = g
	}
	return g
}

// maxGrants bounds the shuffle grants a leadership keeps.
const maxGrants = 1 << 16

func (l *leadership) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// loop schedules whenever something changes: the state, an executor, a
// status update, or the clock (locality waits, liveness, resubmission).
//
// Rounds are at least minRound apart: under a stream of triggers (every
// status update and every commit is one) a round then serves many of
// them, while a lone trigger is served at once.
func (l *leadership) loop() {
	const minRound = time.Millisecond
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	stateChanged := true
	for {
		changed := l.d.fsm.Changed()
		start := time.Now()
		l.schedule(stateChanged)
		stateChanged = false
		select {
		case <-l.ctx.Done():
			return
		case <-l.wake:
		case <-changed:
			stateChanged = true
		case <-t.C:
			stateChanged = true
		}
		if wait := minRound - time.Since(start); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case <-changed:
			stateChanged = true
		default:
		}
	}
}

// ended forgets a finished attempt. l.mu is held.
func (l *leadership) ended(task uint64) {
	a, ok := l.attempts[task]
	if !ok {
		return
	}
	delete(l.attempts, task)
	switch task {
	case l.byPart[a.key]:
		delete(l.byPart, a.key)
		// The copy, if any, takes the partition over.
		if c, ok := l.spec[a.key]; ok {
			delete(l.spec, a.key)
			l.byPart[a.key] = c
			if ca := l.attempts[c]; ca != nil {
				ca.speculative = false
			}
		}
	case l.spec[a.key]:
		delete(l.spec, a.key)
	}
}

// adopt takes over the attempts an executor reports: those running and
// still useful are recorded as running (not launched again), the others
// killed; those finished whose reports are not yet committed hold their
// partitions until the reports (sent right after) are committed, so a
// task that finished under the previous leader never runs again.
func (l *leadership) adopt(c *conn, running, unacked []*api.TaskID) {
	var kill []uint64
	l.d.fsm.Read(func(s *dag.State) {
		l.mu.Lock()
		defer l.mu.Unlock()
		tkey := l.ticketKey()
		for _, id := range unacked {
			if _, known := l.attempts[id.Task]; known {
				continue
			}
			if !validTicket(tkey, id, c.id) {
				l.d.log.Warn("driver: refused an attempt end no leader launched to this executor", "executor", c.id, "task", id.Task, "stage", id.Stage, "partition", id.Partition)
				continue
			}
			key := partKey{dag.StageID(id.Stage), int(id.StageAttempt), int(id.Partition)}
			if _, taken := l.byPart[key]; taken {
				continue
			}
			l.attempts[id.Task] = &attempt{id: id, exec: c.id, key: key, pool: poolOf(s, id), started: time.Now(), reported: true}
			l.byPart[key] = id.Task
		}
		for _, id := range running {
			if a, known := l.attempts[id.Task]; known {
				if a.killing {
					// The kill went to the old session: again.
					kill = append(kill, id.Task)
				}
				continue
			}
			if !validTicket(tkey, id, c.id) {
				l.d.log.Warn("driver: refused to adopt an attempt no leader launched to this executor", "executor", c.id, "task", id.Task, "stage", id.Stage, "partition", id.Partition)
				kill = append(kill, id.Task)
				continue
			}
			key := partKey{dag.StageID(id.Stage), int(id.StageAttempt), int(id.Partition)}
			if _, taken := l.byPart[key]; taken || !s.StageActive(key.stage, key.attempt) {
				kill = append(kill, id.Task)
				continue
			}
			l.attempts[id.Task] = &attempt{id: id, exec: c.id, key: key, pool: poolOf(s, id), started: time.Now()}
			l.byPart[key] = id.Task
			l.launches[[2]uint64{id.Stage, uint64(id.Partition)}]++
		}
	})
	if len(kill) > 0 {
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: l.term, Tasks: kill, Reason: "no longer needed"}}})
	}
}

// poolOf returns the pool of the job a task was launched for.
func poolOf(s *dag.State, id *api.TaskID) string {
	j, _ := s.Job(dag.JobID(id.Job))
	return j.Pool
}

// schedule does one round: liveness, resubmission, kills (when the state
// changed), launches.
func (l *leadership) schedule(stateChanged bool) {
	if l.ctx.Err() != nil {
		return
	}
	now := time.Now()
	l.liveness(now)
	if stateChanged {
		l.resubmit()
		l.kills()
	}
	if !l.graceOver(now) {
		return
	}
	l.launch(now)
}

// graceOver reports whether the takeover's grace period is over: it lasts
// GracePeriod, or until every live executor has reconnected.
func (l *leadership) graceOver(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.graceful {
		return true
	}
	all := true
	for id := range l.lastSeen {
		if c := l.conns[id]; c == nil || !c.ready {
			all = false
			break
		}
	}
	if all || now.Sub(l.won) >= l.d.opts.GracePeriod {
		l.graceful = true
		l.d.log.Info("driver: launching", "term", l.term, "after", now.Sub(l.won).Round(time.Millisecond), "all executors back", all)
		l.d.metrics.takeover.Observe(now.Sub(l.won).Seconds())
		back := 0
		for id := range l.lastSeen {
			if c := l.conns[id]; c != nil && c.ready {
				back++
			}
		}
		rec := fsm.LeaderReady{ID: l.d.node.ID(), Term: l.term, Won: l.won.UnixNano(), Ready: now.UnixNano(), Executors: len(l.lastSeen), ExecutorsBack: back}
		go l.recordTakeover(rec)
	}
	return l.graceful
}

// recordTakeover logs the takeover in the cluster's leader history (for
// operators: the UI and batonctl).
func (l *leadership) recordTakeover(rec fsm.LeaderReady) {
	data, err := fsm.EncodeLeaderReady(time.Now().UnixNano(), rec)
	if err == nil {
		_, err = l.d.node.Apply(data, 5*time.Second)
	}
	if err != nil {
		l.d.log.Debug("driver: recording the takeover", "err", err)
	}
}

// liveness declares executors silent for ExecutorTimeout lost: it logs
// RemoveExecutor and the end of their running attempts (ExecutorLost,
// which does not count as a task failure).
func (l *leadership) liveness(now time.Time) {
	l.mu.Lock()
	var lost []string
	for id, t := range l.lastSeen {
		if now.Sub(t) > l.d.opts.ExecutorTimeout && !l.losing[id] {
			lost = append(lost, id)
			l.losing[id] = true
		}
	}
	l.mu.Unlock()
	for _, id := range lost {
		go l.lose(id, "no heartbeat for "+l.d.opts.ExecutorTimeout.String())
	}
}

func (l *leadership) lose(id, reason string) {
	l.mu.Lock()
	var cmds []dag.Command
	var ended []uint64
	for task, a := range l.attempts {
		if a.exec == id {
			cmds = append(cmds, &dag.TaskEnded{Task: dag.TaskID(task), Stage: a.key.stage, StageAttempt: a.key.attempt, Partition: a.key.part,
				Attempt: int(a.id.Attempt), Executor: dag.ExecutorID(id), Epoch: a.id.Epoch, Reason: dag.ExecutorLost, Message: "executor " + id + " lost: " + reason})
			ended = append(ended, task)
		}
	}
	if c := l.conns[id]; c != nil {
		c.close()
	}
	l.mu.Unlock()
	sort.Slice(cmds, func(a, b int) bool { return cmds[a].(*dag.TaskEnded).Task < cmds[b].(*dag.TaskEnded).Task })
	cmds = append([]dag.Command{&dag.RemoveExecutor{ID: dag.ExecutorID(id), Reason: reason}}, cmds...)
	if _, err := l.d.prop.Propose(l.ctx, cmds...); err != nil {
		l.d.log.Warn("driver: could not log an executor's loss", "executor", id, "err", err)
		l.mu.Lock()
		delete(l.losing, id)
		l.mu.Unlock()
		return
	}
	l.d.log.Warn("driver: executor lost", "executor", id, "reason", reason, "attempts", len(ended))
	l.d.metrics.finished.WithLabelValues(reasonLabel(dag.ExecutorLost)).Add(float64(len(ended)))
	l.mu.Lock()
	for _, t := range ended {
		l.ended(t)
	}
	delete(l.lastSeen, id)
	delete(l.losing, id)
	l.mu.Unlock()
	l.kick()
}

// resubmit arms the ResubmitFailedStages timer when the state asks.
func (l *leadership) resubmit() {
	want := false
	l.d.fsm.Read(func(s *dag.State) { want = s.ResubmitRequested() })
	l.mu.Lock()
	defer l.mu.Unlock()
	if !want || l.armed {
		return
	}
	l.armed = true
	time.AfterFunc(l.d.opts.ResubmitTimeout, func() {
		if _, err := l.d.prop.Propose(l.ctx, &dag.ResubmitFailedStages{}); err != nil {
			l.d.log.Debug("driver: resubmit failed stages", "err", err)
		}
		l.mu.Lock()
		l.armed = false
		l.mu.Unlock()
		l.kick()
	})
}

// kills stops attempts whose stage attempt nobody needs any more
// (cancelled jobs, superseded attempts).
func (l *leadership) kills() {
	byExec := map[string][]uint64{}
	l.d.fsm.Read(func(s *dag.State) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for task, a := range l.attempts {
			if !a.killing && !s.StageActive(a.key.stage, a.key.attempt) {
				byExec[a.exec] = append(byExec[a.exec], task)
			}
		}
		l.abortSaved(s)
		// What is learnt about a task set ends with it.
		active := func(k stageKey) bool { return s.StageActive(k.stage, k.attempt) }
		l.excl.forget(active)
		for k := range l.succeeded {
			if !active(k) {
				delete(l.succeeded, k)
			}
		}
		for k := range l.denied {
			if st, ok := s.Stage(dag.StageID(k[0])); !ok || !active(stageKey{st.ID, st.Attempt}) {
				delete(l.denied, k)
			}
		}
	})
	for exec, tasks := range byExec {
		l.mu.Lock()
		c := l.conns[exec]
		l.mu.Unlock()
		// A kill not sent is tried again at the next state change or
		// once the executor is back (its hello lists what it runs).
		if c == nil || !c.send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: l.term, Tasks: tasks, Reason: "stage no longer needed"}}}) {
			continue
		}
		l.mu.Lock()
		for _, task := range tasks {
			if a := l.attempts[task]; a != nil {
				a.killing = true
			}
		}
		l.mu.Unlock()
	}
}
