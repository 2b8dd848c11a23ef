package driver

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
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

	mu       sync.Mutex
	conns    map[string]*conn
	attempts map[uint64]*attempt // running attempts by task id
	byPart   map[partKey]uint64  // running attempt of a (stage, stage attempt, partition)
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
	armed     bool // the resubmit timer
	graceful  bool // the grace period is over
	// saving holds, per running saveAsTextFile job, the partitions whose
	// successful ends were reported to this leader (see markSaved).
	saving map[dag.JobID]map[int]bool
}

type partKey struct {
	stage   dag.StageID
	attempt int
	part    int
}

type attempt struct {
	id      *api.TaskID
	exec    string
	key     partKey
	killing bool
	// reported: the executor reported the attempt's end, which is being
	// logged. Its slot is free (as in Spark, where a status update frees
	// the executor's cores at once), but its partition is not launched
	// again until the end is committed.
	reported bool
}

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
	if l.byPart[a.key] == task {
		delete(l.byPart, a.key)
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
		for _, id := range unacked {
			if _, known := l.attempts[id.Task]; known {
				continue
			}
			key := partKey{dag.StageID(id.Stage), int(id.StageAttempt), int(id.Partition)}
			if _, taken := l.byPart[key]; taken {
				continue
			}
			l.attempts[id.Task] = &attempt{id: id, exec: c.id, key: key, reported: true}
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
			key := partKey{dag.StageID(id.Stage), int(id.StageAttempt), int(id.Partition)}
			if _, taken := l.byPart[key]; taken || !s.StageActive(key.stage, key.attempt) {
				kill = append(kill, id.Task)
				continue
			}
			l.attempts[id.Task] = &attempt{id: id, exec: c.id, key: key}
			l.byPart[key] = id.Task
			l.launches[[2]uint64{id.Stage, uint64(id.Partition)}]++
		}
	})
	if len(kill) > 0 {
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: l.term, Tasks: kill, Reason: "no longer needed"}}})
	}
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
	}
	return l.graceful
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

// launch offers free slots to runnable tasks, in FIFO order, preferring
// executors that hold most of a task's input (waiting up to LocalityWait
// for one), and sends each executor its launches in one message.
//
// An executor takes as many tasks as it has slots; for a stage whose tasks
// are known to be short (they end in under shortTask), it also takes
// QueuePerSlot more per slot, queued on the executor, so the next task is
// at hand when one ends rather than a round trip away.
func (l *leadership) launch(now time.Time) {
	type room struct {
		slots, used int
		c           *conn // the session the launches go to
	}
	l.mu.Lock()
	rooms := map[string]*room{}
	for id, c := range l.conns {
		if c.ready && !l.losing[id] {
			rooms[id] = &room{slots: c.cores, c: c}
		}
	}
	for _, a := range l.attempts {
		if r := rooms[a.exec]; r != nil && !a.reported {
			r.used++
		}
	}
	queue := l.d.opts.QueuePerSlot
	anyRoom := false
	for _, r := range rooms {
		anyRoom = anyRoom || r.used < r.slots*(1+queue)
	}
	l.mu.Unlock()
	if !anyRoom {
		return
	}
	batches := map[string][]*api.TaskLaunch{}
	l.d.fsm.Read(func(s *dag.State) {
		b := &launchBuilder{l: l, s: s, inputs: map[dag.StageID][]*api.ShuffleInput{}}
		b.conn = func(exec string) *conn { return rooms[exec].c }
		l.mu.Lock()
		defer l.mu.Unlock()
		free := map[string]int{}
		var freeStage dag.StageID
		freeFor := func(stage dag.StageID) map[string]int {
			if len(free) > 0 && freeStage == stage {
				return free
			}
			clear(free)
			q := 0
			if d, ok := l.durations[stage]; ok && d < shortTask {
				q = queue
			}
			var needs []string
			if st, ok := s.Stage(stage); ok && st.Graph != nil {
				needs = l.funcsOf(st.Graph)
			}
			for id, r := range rooms {
				if n := r.slots*(1+q) - r.used; n > 0 && r.c.holds(needs) {
					free[id] = n
				}
			}
			freeStage = stage
			return free
		}
		full := 0
		s.Runnable(func(t dag.TaskSpec) bool {
			key := partKey{t.Stage, t.StageAttempt, t.Partition}
			if _, running := l.byPart[key]; running {
				return true
			}
			free := freeFor(t.Stage)
			if len(free) == 0 {
				// No room for this stage's tasks; a later stage's may be
				// short. Give up after a few full stages.
				full++
				return full < 64
			}
			exec := pick(t.Preferred, free)
			if exec == "" {
				if len(t.Preferred) > 0 {
					first, seen := l.waiting[key]
					if !seen {
						l.waiting[key] = now
						first = now
					}
					if now.Sub(first) < l.d.opts.LocalityWait {
						return true // wait for a preferred slot
					}
				}
				exec = mostFree(free)
			}
			tl := b.build(t, exec)
			if tl == nil {
				return true
			}
			delete(l.waiting, key)
			l.attempts[tl.Id.Task] = &attempt{id: tl.Id, exec: exec, key: key}
			l.byPart[key] = tl.Id.Task
			batches[exec] = append(batches[exec], tl)
			rooms[exec].used++
			if free[exec]--; free[exec] == 0 {
				delete(free, exec)
			}
			return true
		})
	})
	for exec, tasks := range batches {
		// Only on the session the launches were built for (a new session
		// has not got the graphs), and only those still wanted: a
		// reconnect in between ended them (vanished).
		c := rooms[exec].c
		l.mu.Lock()
		kept := tasks[:0]
		for _, t := range tasks {
			if a, ok := l.attempts[t.Id.Task]; ok && a.exec == exec {
				kept = append(kept, t)
			}
		}
		tasks = kept
		l.mu.Unlock()
		if len(tasks) == 0 {
			continue
		}
		if !c.send(&api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: &api.Launch{Tasks: tasks}}}) {
			// The session broke: forget the launches; the tasks run again.
			l.mu.Lock()
			for _, t := range tasks {
				l.ended(t.Id.Task)
			}
			l.mu.Unlock()
		}
	}
}

// funcsOf returns the functions a graph names (cached); l.mu is held.
func (l *leadership) funcsOf(g *plan.Graph) []string {
	if fs, ok := l.funcs[g]; ok {
		return fs
	}
	seen := map[string]bool{}
	var fs []string
	add := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			fs = append(fs, name)
		}
	}
	for _, n := range g.Nodes {
		add(n.Fn.Name)
	}
	add(g.Action.Fn.Name)
	l.funcs[g] = fs
	return fs
}

// shortTask is the average duration under which a stage's tasks are
// queued on executors ahead of free slots.
const shortTask = 20 * time.Millisecond

// pick returns the first preferred executor with a free slot.
func pick(preferred []dag.ExecutorID, free map[string]int) string {
	for _, p := range preferred {
		if free[string(p)] > 0 {
			return string(p)
		}
	}
	return ""
}

// mostFree returns the executor with the most free slots (ties by id).
func mostFree(free map[string]int) string {
	best, n := "", 0
	for id, f := range free {
		if f > n || (f == n && id < best) {
			best, n = id, f
		}
	}
	return best
}

// launchBuilder builds launches within one read of the state.
type launchBuilder struct {
	l      *leadership
	conn   func(exec string) *conn
	s      *dag.State
	inputs map[dag.StageID][]*api.ShuffleInput
}

func (b *launchBuilder) build(t dag.TaskSpec, exec string) *api.TaskLaunch {
	l := b.l
	st, ok := b.s.Stage(t.Stage)
	if !ok {
		return nil
	}
	ge := l.graphs[st.Graph]
	if ge == nil {
		var err error
		if ge, err = encodeGraph(st.Graph); err != nil {
			l.d.log.Error("driver: encode graph", "stage", t.Stage, "err", err)
			return nil
		}
		l.graphs[st.Graph] = ge
	}
	job, _ := b.s.Job(t.Job)
	// Task ids are unique across leaderships: the term, then a sequence
	// the driver keeps (two leaderships of one term never share one).
	tid := l.term<<40 | l.d.seq.Add(1)&(1<<40-1)
	pk := [2]uint64{uint64(t.Stage), uint64(t.Partition)}
	n := max(l.launches[pk], t.Failures)
	l.launches[pk]++
	tl := &api.TaskLaunch{
		Id: &api.TaskID{Task: tid, Job: uint64(t.Job), Stage: uint64(t.Stage), StageAttempt: int32(t.StageAttempt),
			Partition: int32(t.Partition), Attempt: int32(n), Epoch: t.Epoch},
		Term:                l.term,
		GraphKey:            ge.key,
		Node:                int32(st.Node),
		Map:                 t.Map,
		Shuffle:             uint64(t.Shuffle),
		Inputs:              b.stageInputs(st),
		MaxDirectResultSize: l.d.opts.MaxDirectResultSize,
		MaxResultSize:       job.MaxResultSize,
	}
	if t.Map {
		if sh, ok := b.s.Shuffle(t.Shuffle); ok {
			tl.ShuffleKey = sh.Key
		}
	}
	if c := b.conn(exec); c != nil && !c.graphs[ge.key] {
		tl.Graph = ge.data
		c.graphs[ge.key] = true
	}
	return tl
}

// stageInputs returns where the shuffles a stage reads live, once per
// stage per round.
func (b *launchBuilder) stageInputs(st dag.StageInfo) []*api.ShuffleInput {
	if in, ok := b.inputs[st.ID]; ok {
		return in
	}
	var out []*api.ShuffleInput
	addrs := map[dag.ExecutorID]string{}
	for _, d := range st.Graph.ShuffleDeps(st.Node) {
		sid, ok := b.s.ShuffleByKey(d.Shuffle.Key)
		if !ok {
			continue
		}
		sh, _ := b.s.Shuffle(sid)
		in := &api.ShuffleInput{Shuffle: uint64(sid), Key: sh.Key, Maps: int32(sh.Maps)}
		for _, o := range b.s.MapOutputs(sid) {
			addr, ok := addrs[o.Executor]
			if !ok {
				e, _ := b.s.Executor(o.Executor)
				addr = e.Addr
				addrs[o.Executor] = addr
			}
			in.Locations = append(in.Locations, &api.MapLocation{Map: int32(o.Map), Executor: string(o.Executor), Addr: addr})
		}
		out = append(out, in)
	}
	b.inputs[st.ID] = out
	return out
}
