package driver

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// reported is a batch of an executor's reported ends on its way to the
// log.
type reported struct {
	cmds []dag.Command
	ids  []uint64
}

// updates takes a batch of status updates from one executor: the slots
// are free at once, and the ends are queued for the log behind the
// session's earlier ones (see flushCommits).
func (l *leadership) updates(c *conn, updates []*api.TaskStatus) {
	key := l.ticketKey()
	var stray []uint64
	for _, u := range updates {
		if !l.mayReport(key, c, u.Id) {
			stray = append(stray, u.Id.GetTask())
		}
	}
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
	b := &reported{}
	for _, u := range updates {
		cmd := toTaskEnded(c.id, u)
		if cmd == nil {
			continue
		}
		if len(cmd.Cached) > 0 {
			// Partitions the state would refuse never reach the log;
			// the success itself stands (they are optional).
			var err error
			l.d.state.Read(func(s *dag.State) { err = s.CheckCached(cmd.Stage, cmd.Partition, cmd.Cached) })
			if err != nil {
				l.d.log.Warn("driver: ignored the cached partitions a task reported", "executor", c.id, "task", cmd.Task, "err", err)
				cmd.Cached = nil
			}
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
		b.cmds = append(b.cmds, cmd)
		b.ids = append(b.ids, u.Id.GetTask())
	}
	if len(b.cmds) == 0 {
		return
	}
	// The slots are free now; the partitions stay taken until the ends
	// are committed.
	// Exclusion follows once they are (the state keeps it); until then
	// an exception keeps its executor off the stage (see failing).
	for i, id := range b.ids {
		if a, ok := l.attempts[id]; ok {
			a.reported = true
			if b.cmds[i].(*dag.TaskEnded).Reason == dag.Exception {
				l.noteFailing(a, 1)
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
	c.commits = append(c.commits, b)
	l.flushCommits(c)
}

// flushCommits logs a session's queued ends, one batch at a time per
// session so they commit in the order the executor sent them; while one
// is being logged the next ones gather and go together. Many sessions'
// batches still commit together (the proposer's group commit).
func (l *leadership) flushCommits(c *conn) {
	if c.committing || len(c.commits) == 0 {
		return
	}
	b := c.commits[0]
	if len(c.commits) > 1 {
		b = &reported{}
		for _, q := range c.commits {
			b.cmds = append(b.cmds, q.cmds...)
			b.ids = append(b.ids, q.ids...)
		}
	}
	c.commits = nil
	c.committing = true
	saved, finish := l.markSaved(b.cmds)
	l.spawn(func() {
		// The output of a saveAsTextFile job whose last partitions these
		// are is finished before they are logged (see markSaved).
		for _, j := range finish {
			l.finishOutput(j.id, j.dir, c.id)
		}
		res, err := l.d.prop.Propose(l.ctx, b.cmds...)
		l.post(evFunc{func() { l.committed(c, b, saved, res, err) }})
	})
}

// committed settles a logged (or failed) batch of ends and acknowledges
// it.
func (l *leadership) committed(c *conn, b *reported, saved []savedPart, res []dag.Result, err error) {
	c.committing = false
	for i, id := range b.ids {
		if a, ok := l.attempts[id]; ok && b.cmds[i].(*dag.TaskEnded).Reason == dag.Exception {
			l.noteFailing(a, -1)
		}
	}
	if err != nil {
		l.unmarkSaved(saved)
		// Not acknowledged: the executor sends them again to the next
		// leader, or in its next session: still leading (a leadership
		// transfer that failed, a full queue), the executor resends
		// unacknowledged reports only in a new session, so end this one.
		l.d.log.Debug("driver: status updates not committed", "executor", c.id, "err", err)
		for _, q := range append(c.commits, b) {
			for _, id := range q.ids {
				if a, ok := l.attempts[id]; ok {
					a.reported = false
				}
			}
		}
		c.commits = nil
		c.close()
		return
	}
	l.d.metrics.batch.Observe(float64(len(b.cmds)))
	for _, cmd := range b.cmds {
		l.d.metrics.finishedBy(cmd.(*dag.TaskEnded).Reason).Inc()
	}
	l.noteDenials(b.cmds)
	kill := l.settle(b.cmds, b.ids)
	for i, id := range b.ids {
		ok := b.cmds[i].(*dag.TaskEnded).Reason == dag.Success && i < len(res) && res[i].Err == nil && res[i].Ignored == ""
		l.endedAs(id, ok)
	}
	for exec, tasks := range kill {
		if kc := l.conns[exec]; kc != nil {
			kc.send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: l.term, Tasks: tasks, Reason: "another attempt succeeded"}}})
		}
	}
	var dropped dag.Dropped
	for i, r := range res {
		if r.Err != nil {
			l.d.log.Warn("driver: status update rejected", "executor", c.id, "task", b.ids[i], "err", r.Err)
		}
		for _, exec := range r.Excluded {
			l.d.log.Warn("driver: executor excluded for every task after task failures that succeeded elsewhere", "executor", exec)
		}
		if r.Dropped != nil {
			dropped.Shuffles = append(dropped.Shuffles, r.Dropped.Shuffles...)
			dropped.Results = append(dropped.Results, r.Dropped.Results...)
		}
	}
	c.send(&api.DriverMessage{Msg: &api.DriverMessage_Ack{Ack: &api.Ack{Tasks: b.ids}}})
	if len(dropped.Shuffles)+len(dropped.Results) > 0 {
		l.dropped(&dropped)
	}
	l.flushCommits(c)
}

// settle ends, for each logged success, the partition's other attempt (a
// speculative copy or the original), returned by executor for killing.
// (What successes teach, durations for speculation and the failures that
// exclude executors, the state learnt from the log.)
func (l *leadership) settle(cmds []dag.Command, ids []uint64) map[string][]uint64 {
	var kill map[string][]uint64
	for i, cmd := range cmds {
		te := cmd.(*dag.TaskEnded)
		a := l.attempts[ids[i]]
		if a == nil || te.Reason != dag.Success {
			continue
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
	return kill
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
		Message: clip(u.Message), DurationMs: max(u.DurationMs, 0), Speculative: id.Speculative, SpilledBytes: max(u.SpilledBytes, 0),
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
	if len(u.Accumulators) > 0 {
		accs, err := toAccumulators(u.Accumulators)
		if err != nil {
			// Updates the state would refuse never reach the log: the
			// attempt fails, saying why, and its output does not count.
			*te = dag.TaskEnded{Task: te.Task, Stage: te.Stage, StageAttempt: te.StageAttempt, Partition: te.Partition,
				Attempt: te.Attempt, Executor: te.Executor, Epoch: te.Epoch, DurationMs: te.DurationMs, Speculative: te.Speculative,
				Reason: dag.Exception, Message: clip("driver: the executor reported bad accumulator updates: " + err.Error())}
			return te
		}
		te.Accumulators = accs
	}
	if len(u.Cached) > 0 && len(u.Cached) <= maxCachedReported && te.Reason == dag.Success {
		te.Cached = make([]dag.CachedPartition, 0, len(u.Cached))
		for _, c := range u.Cached {
			te.Cached = append(te.Cached, dag.CachedPartition{Key: c.Key, Partition: int(c.Partition), Bytes: c.Bytes, Gen: c.Generation})
		}
	}
	return te
}

// maxCachedReported bounds the cached partitions one report may carry (a
// task reports those of the persisted datasets its partition reads);
// more are dropped before the state sees them.
const maxCachedReported = 256

// toAccumulators checks an attempt's accumulator updates as the state
// would (dag.CheckAccumulators).
func toAccumulators(us []*api.Accumulator) ([]dag.Accumulator, error) {
	if len(us) > dag.MaxTaskAccumulators {
		return nil, fmt.Errorf("%d accumulator updates, at most %d", len(us), dag.MaxTaskAccumulators)
	}
	out := make([]dag.Accumulator, len(us))
	for i, u := range us {
		if u == nil || u.Tasks != 0 || u.Kind <= 0 || u.Kind > 255 {
			return nil, fmt.Errorf("update %d: not an accumulator update", i)
		}
		out[i] = dag.Accumulator{Name: u.Name, Kind: dag.AccKind(u.Kind), Int: u.IntValue, Float: u.FloatValue}
	}
	if err := dag.CheckAccumulators(out); err != nil {
		return nil, err
	}
	return out, nil
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
	if len(shuffles)+len(jobs)+len(dr.Cached) == 0 {
		return
	}
	for _, c := range l.conns {
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Delete{Delete: &api.DeleteBlocks{Shuffles: shuffles, ResultJobs: jobs, CachedKeys: dr.Cached}}})
	}
}

// commit decides whether a task attempt may commit its output: the output
// commit coordinator in the replicated state answers, and the decision
// carries this leader's term, so a deposed leader's decision is refused.
func (l *leadership) commit(c *conn, id *api.TaskID) {
	if id == nil {
		return
	}
	if !l.mayReport(l.ticketKey(), c, id) {
		l.d.log.Warn("driver: commit refused for an attempt not launched to this session", "executor", c.id, "task", id.Task)
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Commit{Commit: &api.CommitDecision{Term: l.term, Task: id.Task, Authorized: false}}})
		return
	}
	l.spawn(func() {
		res, err := l.d.prop.Propose(l.ctx, &dag.AuthorizeCommit{Stage: dag.StageID(id.Stage), StageAttempt: int(id.StageAttempt), Partition: int(id.Partition), Task: dag.TaskID(id.Task), Executor: dag.ExecutorID(c.id)})
		if err != nil {
			// No decision: the executor asks again in its next session,
			// with this leader or the next.
			l.d.log.Debug("driver: commit authorisation not committed", "task", id.Task, "err", err)
			c.close()
			return
		}
		ok := res[0].Err == nil && res[0].Authorized
		if !ok {
			l.d.log.Info("driver: commit denied", "executor", c.id, "task", id.Task, "stage", id.Stage, "partition", id.Partition, "why", res[0].Ignored)
		}
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Commit{Commit: &api.CommitDecision{Term: l.term, Task: id.Task, Authorized: ok}}})
	})
}

// maxMerged bounds the launches (or acknowledgements) merged into one
// message.
const maxMerged = 1024

// coalesce returns the messages queued for an executor with the launches
// merged into one message and the acknowledgements into one, keeping
// everything else in order. Launches and acknowledgements commute with
// each other; other messages act as barriers.
func coalesce(queue []*api.DriverMessage) []*api.DriverMessage {
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
	for _, m := range queue {
		switch x := m.Msg.(type) {
		case *api.DriverMessage_Launch:
			if launch != nil && len(launch.Tasks) >= maxMerged {
				flush()
			}
			if launch == nil {
				launch = &api.Launch{}
			}
			launch.Tasks = append(launch.Tasks, x.Launch.Tasks...)
		case *api.DriverMessage_Ack:
			if ack != nil && len(ack.Tasks) >= maxMerged {
				flush()
			}
			if ack == nil {
				ack = &api.Ack{}
			}
			ack.Tasks = append(ack.Tasks, x.Ack.Tasks...)
		default:
			flush()
			out = append(out, m)
		}
	}
	flush()
	return out
}

// noteFailing counts an attempt's reported, unlogged exception in (+1) or
// out (-1) of failing.
func (l *leadership) noteFailing(a *attempt, by int) {
	k := a.key.set()
	m := l.failing[k]
	if m == nil {
		if by < 0 {
			return
		}
		m = map[string]int{}
		l.failing[k] = m
	}
	if m[a.exec] += by; m[a.exec] <= 0 {
		delete(m, a.exec)
	}
	if len(m) == 0 {
		delete(l.failing, k)
	}
}
