package driver

import (
	"sort"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
)

// The loop: one goroutine per leadership owns its state and does every
// scheduling round. It wakes on
//
//   - an event posted to it (below): a session attached or detached, a
//     batch of status updates, a commit request, blocks to delete, or the
//     outcome of a proposal it started (evFunc);
//   - a change of the replicated state (State.Changed);
//   - the clock's tick (locality waits, liveness, the grace period, the
//     resubmit delay).
//
// It never blocks: a proposal, a grant of leadership to a session or file
// system work runs in a goroutine it tracks (spawn), and messages to
// executors go to per-session queues (conn.send) that never block.

// event is something the loop handles.
type event interface{ isEvent() }

// evAttach: a session said hello and its executor is registered; attach
// it (reply says whether it was).
type evAttach struct {
	c     *conn
	hello *api.Hello
	reply chan error
}

// evDetach: a session ended.
type evDetach struct{ c *conn }

// evUpdates: an executor's batch of status updates (or a heartbeat that
// changed its health).
type evUpdates struct {
	c         *conn
	unhealthy string
	updates   []*api.TaskStatus
}

// evCommit: an attempt asks whether it may commit its output.
type evCommit struct {
	c  *conn
	id *api.TaskID
}

// evDropped: blocks no job needs any more.
type evDropped struct{ dr *dag.Dropped }

// evFunc runs fn on the loop: the outcome of work the loop started, or a
// question asked from outside (see ask).
type evFunc struct{ fn func() }

func (evAttach) isEvent()  {}
func (evDetach) isEvent()  {}
func (evUpdates) isEvent() {}
func (evCommit) isEvent()  {}
func (evDropped) isEvent() {}
func (evFunc) isEvent()    {}

// eventQueue is how many events may wait for the loop; posters wait
// beyond it (back pressure on sessions, never on the loop).
const eventQueue = 4096

// tick is the period of the loop's clock rounds.
const tick = 50 * time.Millisecond

// post hands an event to the loop; false once the leadership ended.
// Never called from the loop itself.
func (l *leadership) post(ev event) bool {
	select {
	case l.events <- ev:
		return true
	case <-l.done:
		return false
	case <-l.ctx.Done():
		return false
	}
}

// ask runs fn on the loop and waits for it; false if the leadership ended
// first (fn then has not run, or its effects are not to be read). Never
// called from the loop itself.
func (l *leadership) ask(fn func()) bool {
	ran := make(chan struct{})
	if !l.post(evFunc{func() { fn(); close(ran) }}) {
		return false
	}
	select {
	case <-ran:
		return true
	case <-l.done:
		// The loop may have run fn just before it returned.
		select {
		case <-ran:
			return true
		default:
			return false
		}
	}
}

// loop handles events and does rounds until the leadership ends.
//
// Rounds are at least minRound apart: under a stream of events (every
// status update and every commit is one) a round then serves many of
// them, while a lone event is served at once.
func (l *leadership) loop() {
	const minRound = time.Millisecond
	tickC, stopTick := l.d.clock.NewTicker(tick)
	defer stopTick()
	stateChanged := true
	for {
		changed := l.d.state.Changed()
		start := time.Now()
		l.schedule(stateChanged)
		stateChanged = false
		select {
		case <-l.ctx.Done():
			return
		case ev := <-l.events:
			l.handle(ev)
		case <-changed:
			stateChanged = true
		case <-tickC:
			stateChanged = true
		}
		// Take what else is waiting, and keep taking events until
		// minRound has passed since the round began.
		if !l.gather(start.Add(minRound)) {
			return
		}
		select {
		case <-changed:
			stateChanged = true
		default:
		}
	}
}

// gather handles the events waiting, and those arriving before deadline;
// false once the leadership ended.
func (l *leadership) gather(deadline time.Time) bool {
	for n := 0; n < eventQueue; n++ {
		select {
		case ev := <-l.events:
			l.handle(ev)
			continue
		default:
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case ev := <-l.events:
			t.Stop()
			l.handle(ev)
		case <-t.C:
			return true
		case <-l.ctx.Done():
			t.Stop()
			return false
		}
	}
	return true
}

// handle handles one event.
func (l *leadership) handle(ev event) {
	switch e := ev.(type) {
	case evAttach:
		e.reply <- l.attached(e.c, e.hello)
	case evDetach:
		if l.conns[e.c.id] == e.c {
			delete(l.conns, e.c.id)
			if e.c.ready && !l.losing[e.c.id] {
				l.droppedAt[e.c.id] = l.d.clock.Now()
			}
		}
	case evUpdates:
		l.health(e.c, e.unhealthy)
		if len(e.updates) > 0 {
			l.updates(e.c, e.updates)
		}
	case evCommit:
		l.commit(e.c, e.id)
	case evDropped:
		l.dropped(e.dr)
	case evFunc:
		e.fn()
	}
}

// schedule does one round: liveness, resubmission, kills (when the state
// changed), launches.
func (l *leadership) schedule(stateChanged bool) {
	if l.ctx.Err() != nil {
		return
	}
	now := l.d.clock.Now()
	l.liveness(now)
	l.resubmit(now, stateChanged)
	if stateChanged {
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
	if !all && now.Sub(l.won) < l.d.opts.GracePeriod {
		return false
	}
	l.graceful = true
	l.d.log.Info("driver: launching", "term", l.term, "after", now.Sub(l.won).Round(time.Millisecond), "all executors back", all)
	l.d.metrics.takeover.Observe(now.Sub(l.won).Seconds())
	back := 0
	for id := range l.lastSeen {
		if c := l.conns[id]; c != nil && c.ready {
			back++
		}
	}
	rec := fsm.LeaderReady{ID: l.d.raft.ID(), Term: l.term, Won: l.won.UnixNano(), Ready: now.UnixNano(), Executors: len(l.lastSeen), ExecutorsBack: back}
	l.spawn(func() { l.recordTakeover(rec) })
	return true
}

// recordTakeover logs the takeover in the cluster's leader history (for
// operators: the UI and batonctl).
func (l *leadership) recordTakeover(rec fsm.LeaderReady) {
	data, err := fsm.EncodeLeaderReady(time.Now().UnixNano(), rec)
	if err == nil {
		_, err = l.d.raft.Apply(data, 5*time.Second)
	}
	if err != nil {
		l.d.log.Debug("driver: recording the takeover", "err", err)
	}
}

// refreshSeen brings lastSeen up to what sessions last heard.
func (l *leadership) refreshSeen() {
	for id, c := range l.conns {
		if h := c.lastHeard(); h.After(l.lastSeen[id]) {
			if _, watched := l.lastSeen[id]; watched {
				l.lastSeen[id] = h
			}
		}
	}
}

// liveness declares executors lost: those whose session dropped and did
// not come back within ReconnectGrace (Spark's onDisconnected), and those
// silent for ExecutorTimeout. It logs RemoveExecutor and the end of their
// running attempts as executor losses, which count toward MaxTaskFailures
// when this leader saw the executor go (see lose).
func (l *leadership) liveness(now time.Time) {
	l.refreshSeen()
	type loss struct {
		id, reason string
	}
	var lost []loss
	for id, t := range l.droppedAt {
		if l.conns[id] == nil && now.Sub(t) > l.d.opts.ReconnectGrace && !l.losing[id] {
			lost = append(lost, loss{id, "session ended and not back within " + l.d.opts.ReconnectGrace.String()})
		}
	}
	for id, t := range l.lastSeen {
		if _, dropped := l.droppedAt[id]; !dropped && now.Sub(t) > l.d.opts.ExecutorTimeout && !l.losing[id] {
			lost = append(lost, loss{id, "no heartbeat for " + l.d.opts.ExecutorTimeout.String()})
		}
	}
	sort.Slice(lost, func(a, b int) bool { return lost[a].id < lost[b].id })
	for _, x := range lost {
		l.lose(x.id, x.reason)
	}
}

// lose logs an executor's removal and the end of its attempts. An
// attempt's loss counts toward MaxTaskFailures (ExitCausedByApp, as
// Spark's ExecutorLostFailure) when this leader had a session with the
// executor, so saw it crash, be killed or fall silent while the attempt
// ran; not when the executor never came back after a leader change (the
// loss may be the failover's), nor for an attempt whose end it had
// already reported.
func (l *leadership) lose(id, reason string) {
	l.losing[id] = true
	delete(l.droppedAt, id)
	var cmds []dag.Command
	var ended []uint64
	for task, a := range l.attempts {
		if a.exec == id {
			msg := "executor " + id + " lost: " + reason
			byApp := l.sessioned[id] && !a.reported
			if byApp {
				msg = "ExecutorLostFailure (executor " + id + " exited while running the task, which may have caused it): " + reason
			}
			cmds = append(cmds, &dag.TaskEnded{Task: dag.TaskID(task), Stage: a.key.stage, StageAttempt: a.key.attempt, Partition: a.key.part,
				Attempt: int(a.id.Attempt), Executor: dag.ExecutorID(id), Epoch: a.id.Epoch, Reason: dag.ExecutorLost, Message: msg,
				ExitCausedByApp: byApp, Speculative: a.id.Speculative})
			ended = append(ended, task)
		}
	}
	if c := l.conns[id]; c != nil {
		c.close()
	}
	sort.Slice(cmds, func(a, b int) bool { return cmds[a].(*dag.TaskEnded).Task < cmds[b].(*dag.TaskEnded).Task })
	cmds = append([]dag.Command{&dag.RemoveExecutor{ID: dag.ExecutorID(id), Reason: reason}}, cmds...)
	l.spawn(func() {
		_, err := l.d.prop.Propose(l.ctx, cmds...)
		l.post(evFunc{func() {
			delete(l.losing, id)
			if err != nil {
				l.d.log.Warn("driver: could not log an executor's loss", "executor", id, "err", err)
				return
			}
			l.d.log.Warn("driver: executor lost", "executor", id, "reason", reason, "attempts", len(ended))
			l.d.metrics.finished.WithLabelValues(dag.ExecutorLost.Label()).Add(float64(len(ended)))
			for _, t := range ended {
				l.ended(t)
			}
			delete(l.lastSeen, id)
		}})
	})
}

// resubmit logs ResubmitFailedStages ResubmitTimeout after the state
// asks for it (Spark's RESUBMIT_TIMEOUT: more fetch failures of the same
// round arrive meanwhile).
func (l *leadership) resubmit(now time.Time, stateChanged bool) {
	if l.resubmitting {
		return
	}
	if l.resubmitAt.IsZero() {
		if !stateChanged {
			return
		}
		want := false
		l.d.state.Read(func(s *dag.State) { want = s.ResubmitRequested() })
		if want {
			l.resubmitAt = now.Add(l.d.opts.ResubmitTimeout)
		}
		return
	}
	if now.Before(l.resubmitAt) {
		return
	}
	l.resubmitting = true
	l.spawn(func() {
		if _, err := l.d.prop.Propose(l.ctx, &dag.ResubmitFailedStages{}); err != nil {
			l.d.log.Debug("driver: resubmit failed stages", "err", err)
		}
		l.post(evFunc{func() { l.resubmitAt, l.resubmitting = time.Time{}, false }})
	})
}

// kills stops attempts whose stage attempt nobody needs any more
// (cancelled jobs, superseded attempts).
func (l *leadership) kills() {
	byExec := map[string][]uint64{}
	l.d.state.Read(func(s *dag.State) {
		// Attempts are mostly of a few stage attempts: ask once per
		// stage attempt, not per attempt.
		activeSets := map[stageKey]bool{}
		for task, a := range l.attempts {
			if a.killing {
				continue
			}
			k := stageKey{a.key.stage, a.key.attempt}
			on, ok := activeSets[k]
			if !ok {
				on = s.StageActive(k.stage, k.attempt)
				activeSets[k] = on
			}
			if !on {
				byExec[a.exec] = append(byExec[a.exec], task)
			}
		}
		l.abortSaved(s)
		// What is learnt about a task set ends with it.
		active := func(k stageKey) bool { return s.StageActive(k.stage, k.attempt) }
		for k := range l.denied {
			if st, ok := s.Stage(dag.StageID(k[0])); !ok || !active(stageKey{st.ID, st.Attempt}) {
				delete(l.denied, k)
			}
		}
	})
	for exec, tasks := range byExec {
		sort.Slice(tasks, func(a, b int) bool { return tasks[a] < tasks[b] })
		c := l.conns[exec]
		// A kill not sent is tried again at the next state change or
		// once the executor is back (its hello lists what it runs).
		if c == nil || !c.send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: l.term, Tasks: tasks, Reason: "stage no longer needed"}}}) {
			continue
		}
		for _, task := range tasks {
			if a := l.attempts[task]; a != nil {
				a.killing = true
			}
		}
	}
}
