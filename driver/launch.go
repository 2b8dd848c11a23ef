package driver

import (
	"math"
	"slices"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/internal/grpcdial"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// launch offers free slots to runnable tasks and sends each executor its
// launches in one message. Task sets (running stage attempts) are served
// in FIFO order (by job, then stage) or, in FAIR mode, by pool (see
// fair). A task prefers the executors that hold most of its input,
// waiting up to LocalityWait for one; it runs only on executors that hold
// its functions and, when possible, not on executors excluded after
// failures (see exclusions). With speculation on, copies of slow tasks
// take the slots left.
//
// An executor takes as many tasks as it has slots; for a stage whose tasks
// are known to be short (they end in under shortTask), it also takes
// QueuePerSlot more per slot, queued on the executor, so the next task is
// at hand when one ends rather than a round trip away.
//
// No message goes over maxLaunchMessage: the session's sender splits
// launches into messages under it (see fit), and a task whose launch
// alone is over it is not launched: its stage's jobs are aborted (see
// oversized).
func (l *leadership) launch(now time.Time) {
	l.refreshKey()
	queue := l.d.opts.QueuePerSlot
	rooms := map[string]*room{}
	for id, c := range l.conns {
		if c.ready && !l.losing[id] && c.unhealthy == "" {
			rooms[id] = &room{slots: c.cores, c: c}
		}
	}
	running := map[string]int{} // by pool
	for _, a := range l.attempts {
		if a.reported {
			continue
		}
		if r := rooms[a.exec]; r != nil {
			r.used++
		}
		running[a.pool]++
	}
	capacity := 0
	for _, r := range rooms {
		capacity += max(0, r.slots*(1+queueFor(0, queue, l.d.opts.QueuedWork))-r.used)
	}
	if capacity == 0 {
		return
	}
	p := &placer{l: l, now: now, rooms: rooms, queue: queue, capacity: capacity, batches: map[string][]*api.TaskLaunch{}, free: map[string]int{},
		aborting: l.abortingStages(false)}
	// What may run is copied under the state's read lock; placement
	// works on the copy, so Raft's apply never waits for it.
	var v *view
	l.d.state.Read(func(s *dag.State) { v = p.collect(s, running) })
	p.v = v
	if l.d.opts.SchedulingMode == ModeFair {
		p.fair(running)
	} else {
		p.fifo()
	}
	if l.d.opts.Speculation && p.capacity > 0 {
		p.speculate()
	}
	for exec, tasks := range p.batches {
		if !rooms[exec].c.send(&api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: &api.Launch{Tasks: tasks}}}) {
			// The session broke: forget the launches; the tasks run again.
			for _, t := range tasks {
				l.ended(t.Id.Task)
			}
		}
	}
}

// maxLaunchMessage is the largest message the driver sends an executor:
// the limit of gRPC messages between schedd and execd (a variable for
// tests). A send over it fails and ends the session (ResourceExhausted),
// and the executor, reconnecting, would be sent the same launch again.
var maxLaunchMessage = grpcdial.MaxMessageSize

// room is an executor's slots in a launch round.
type room struct {
	slots, used int
	c           *conn // the session the launches go to
}

// view is what a launch round needs of the state, copied under its read
// lock: the task sets with the candidates for launching (not running),
// in order, and what launches of their stages carry.
type view struct {
	sets   []*setView
	stages map[dag.StageID]*stageView
	jobs   map[dag.JobID]int64 // max result size
	// excluded are the executors excluded for every task (dag's
	// ExcludedExecutors).
	excluded map[string]bool
}

type setView struct {
	ts    dag.TaskSet
	tasks []dag.TaskSpec // not running, by index (from the set's cursor, then wrapping round)
	// from is where the candidates were looked for from (the cursor),
	// and end one past the index of the last task looked at from there;
	// looked says they were looked for (the set had room).
	from, end int
	looked    bool
	// slow are running tasks a copy may be launched of (speculation).
	slow      []dag.TaskSpec
	threshold time.Duration
}

type stageView struct {
	info       dag.StageInfo
	needs      []string // the functions its tasks need
	inputs     []*api.ShuffleInput
	shuffleKey string // a map stage's shuffle
	// cacheGens are the generations of the persisted datasets the
	// stage computes (its launches carry them).
	cacheGens map[string]uint64
	// The executors excluded for the current attempt's tasks: all of
	// them, and by partition (dag's StageExclusions).
	exclAll  map[string]bool
	exclPart map[int][]dag.ExecutorID
	// succeeded and medianMs are the current attempt's successful tasks
	// and their median duration (dag's TaskDurations).
	succeeded int
	medianMs  int64
	// inputsSize is what inputs add to a launch's size (sized: computed).
	inputsSize int
	sized      bool
}

// Bounds of a round's copy: each task set gives at most its share of
// the capacity plus setSlack candidates, and a round copies at most
// 4×capacity + roundSlack (candidates may wait for locality, be
// excluded or back off; the next round takes the rest).
const (
	setSlack   = 64
	roundSlack = 256
)

// placer places tasks on executors within one launch round.
type placer struct {
	l        *leadership
	v        *view
	now      time.Time
	rooms    map[string]*room
	queue    int
	capacity int // launches the rooms still take (at the queued level)
	batches  map[string][]*api.TaskLaunch
	// free is the room for the tasks of stage freeStage; byFree orders
	// it.
	free      map[string]int
	byFree    mostFreeHeap
	freeStage dag.StageID
	freeValid bool
	needs     []string // the functions freeStage's tasks need
	full      int      // task sets found without room
	// aborting are the stages whose jobs are being aborted for a launch
	// over the message limit (see oversized): none of their tasks is
	// offered.
	aborting map[dag.StageID]bool
}

// maxFullSets: a round gives up after this many task sets without room
// (their executors are full or lack their functions).
const maxFullSets = 64

// collect copies the candidates of a round from the state (read-locked).
func (p *placer) collect(s *dag.State, running map[string]int) *view {
	l := p.l
	v := &view{stages: map[dag.StageID]*stageView{}, jobs: map[dag.JobID]int64{}}
	for _, x := range s.ExcludedExecutors(p.now.UnixNano()) {
		if v.excluded == nil {
			v.excluded = map[string]bool{}
		}
		v.excluded[string(x.ID)] = true
	}
	sets := s.TaskSets()
	budget := 4*p.capacity + roundSlack
	stageOf := func(id dag.StageID, job dag.JobID) *stageView {
		if sv, ok := v.stages[id]; ok {
			return sv
		}
		st, ok := s.Stage(id)
		if !ok || st.Graph == nil {
			v.stages[id] = nil
			return nil
		}
		sv := &stageView{info: st, needs: l.funcsOf(st.Graph), inputs: stageInputs(s, st)}
		all, byPart := s.StageExclusions(id, st.Attempt)
		for _, e := range all {
			if sv.exclAll == nil {
				sv.exclAll = map[string]bool{}
			}
			sv.exclAll[string(e)] = true
		}
		sv.exclPart = byPart
		if l.d.opts.Speculation {
			sv.succeeded, sv.medianMs = s.TaskDurations(id, st.Attempt)
		}
		if st.Map {
			if sh, ok := s.Shuffle(st.Shuffle); ok {
				sv.shuffleKey = sh.Key
			}
		}
		for _, n := range st.Graph.NarrowClosure(st.Node) {
			if key := st.Graph.Nodes[n].Persist; key != "" {
				if gen, ok := s.CacheGeneration(key); ok {
					if sv.cacheGens == nil {
						sv.cacheGens = map[string]uint64{}
					}
					sv.cacheGens[key] = gen
				}
			}
		}
		v.stages[id] = sv
		if _, ok := v.jobs[job]; !ok {
			j, _ := s.Job(job)
			v.jobs[job] = j.MaxResultSize
		}
		return sv
	}
	notRunning := func(t dag.TaskSpec) bool {
		_, r := l.byPart[partKey{t.Stage, t.StageAttempt, t.Partition}]
		return !r
	}
	if l.d.opts.SchedulingMode == ModeFair {
		// A few candidates per pool: more than the round can launch, in
		// case some wait for locality or lack room.
		limit := 4*p.capacity + 16
		perPool := map[string]int{}
		for _, ts := range sets {
			if p.aborting[ts.Stage] {
				continue
			}
			sv := stageOf(ts.Stage, ts.Job)
			set := &setView{ts: ts}
			v.sets = append(v.sets, set)
			if sv == nil || perPool[ts.Pool] >= limit {
				continue
			}
			s.RunnableIn(ts, func(t dag.TaskSpec) bool {
				if notRunning(t) {
					set.tasks = append(set.tasks, t)
					perPool[ts.Pool]++
				}
				return perPool[ts.Pool] < limit
			})
		}
	} else {
		full := 0
		for _, ts := range sets {
			if budget <= 0 || full >= maxFullSets {
				break
			}
			if p.aborting[ts.Stage] {
				continue
			}
			set := &setView{ts: ts}
			v.sets = append(v.sets, set)
			sv := stageOf(ts.Stage, ts.Job)
			if sv == nil {
				continue
			}
			if len(p.roomFor(ts.Stage, sv)) == 0 {
				full++
				continue
			}
			// A few candidates more than the room, in case some wait for
			// locality or are excluded (never more than the room again).
			n := min(budget, p.capacity+min(setSlack, p.capacity))
			take := func(t dag.TaskSpec) bool {
				if notRunning(t) {
					set.tasks = append(set.tasks, t)
					n--
					budget--
				}
				return n > 0
			}
			set.from = l.cursor[stageKey{ts.Stage, ts.StageAttempt}]
			set.end, set.looked = set.from, true
			exhausted := s.RunnableFrom(ts, set.from, func(t dag.TaskSpec) bool {
				set.end = t.Index + 1
				return take(t)
			})
			if exhausted && set.from > 0 {
				// Short of candidates past the cursor: the ones before
				// it too (a cursor is a hint, never a filter).
				s.RunnableIn(ts, func(t dag.TaskSpec) bool { return t.Index < set.from && take(t) })
			}
		}
	}
	if len(l.launches) > len(sets)+64 {
		// Forget the launch counts of stages the state no longer has.
		for id := range l.launches {
			if _, ok := s.Stage(id); !ok {
				delete(l.launches, id)
			}
		}
	}
	if len(l.cursor) > len(sets)+64 {
		// Forget the cursors of sets that are gone.
		keep := make(map[stageKey]int, len(sets))
		for _, ts := range sets {
			if c, ok := l.cursor[stageKey{ts.Stage, ts.StageAttempt}]; ok {
				keep[stageKey{ts.Stage, ts.StageAttempt}] = c
			}
		}
		l.cursor = keep
	}
	if l.d.opts.Speculation {
		p.collectSlow(s, v, stageOf)
	}
	p.freeValid = false
	return v
}

// collectSlow finds, in each task set where enough tasks have succeeded,
// the running tasks slow enough for a copy (see speculate).
func (p *placer) collectSlow(s *dag.State, v *view, stageOf func(dag.StageID, dag.JobID) *stageView) {
	l := p.l
	o := &l.d.opts
	n := p.capacity
	for _, set := range v.sets {
		if n <= 0 {
			return
		}
		ts := set.ts
		sv := stageOf(ts.Stage, ts.Job)
		if sv == nil || sv.info.Attempt != ts.StageAttempt || sv.succeeded == 0 || float64(sv.succeeded) < o.SpeculationQuantile*float64(sv.info.Tasks) {
			continue
		}
		med := time.Duration(sv.medianMs) * time.Millisecond
		set.threshold = max(time.Duration(o.SpeculationMultiplier*float64(med)), o.SpeculationMinRuntime)
		s.RunnableIn(ts, func(t dag.TaskSpec) bool {
			key := partKey{t.Stage, t.StageAttempt, t.Partition}
			task, running := l.byPart[key]
			if !running {
				return true
			}
			if _, copied := l.spec[key]; copied {
				return true
			}
			a := l.attempts[task]
			if a == nil || a.reported || a.killing || p.now.Sub(a.started) <= set.threshold {
				return true
			}
			set.slow = append(set.slow, t)
			n--
			return n > 0
		})
	}
}

// fifo serves the task sets in order.
func (p *placer) fifo() {
	for _, set := range p.v.sets {
		if p.capacity <= 0 || p.full >= maxFullSets {
			return
		}
		p.fifoSet(set)
		if p.capacity <= 0 {
			return
		}
	}
}

// fifoSet offers a set's candidates in order until one finds no room or
// the round's capacity is used, and moves the set's cursor past the
// candidates launched from it on: to the first not launched, or past the
// last task looked at.
func (p *placer) fifoSet(set *setView) {
	if !set.looked {
		return
	}
	next := set.end // past the last task looked at, unless a candidate stays
	stay := func(t dag.TaskSpec) {
		if next == set.end && t.Index >= set.from {
			next = t.Index
		}
	}
	offered := 0
	for _, t := range set.tasks {
		launched, noRoom := p.offer(t, false)
		offered++
		if !launched {
			stay(t)
		}
		if noRoom {
			p.full++
			break
		}
		if p.capacity <= 0 {
			break
		}
	}
	if offered < len(set.tasks) {
		stay(set.tasks[offered])
	}
	p.l.cursor[stageKey{set.ts.Stage, set.ts.StageAttempt}] = next
}

// roomFor returns the executors with room for a stage's tasks, cached
// while consecutive tasks are the same stage's.
func (p *placer) roomFor(stage dag.StageID, sv *stageView) map[string]int {
	if p.freeValid && p.freeStage == stage {
		return p.free
	}
	clear(p.free)
	q := 0
	if d, ok := p.l.durations[stage]; ok && d < shortTask {
		q = queueFor(d, p.queue, p.l.d.opts.QueuedWork)
	}
	p.needs = sv.needs
	for id, r := range p.rooms {
		if n := r.slots*(1+q) - r.used; n > 0 && r.c.holds(p.needs) {
			p.free[id] = n
		}
	}
	p.byFree.reset(p.free)
	p.freeStage, p.freeValid = stage, true
	return p.free
}

// offer launches a task if there is a slot for it; noRoom says no
// executor has room for its stage's tasks at all. A speculative offer
// launches a copy of a running task on another executor.
func (p *placer) offer(t dag.TaskSpec, speculative bool) (launched, noRoom bool) {
	l := p.l
	key := partKey{t.Stage, t.StageAttempt, t.Partition}
	primary, running := l.byPart[key]
	if running != speculative {
		return false, false
	}
	if !speculative && l.backingOff(t.Stage, t.Partition, p.now) {
		return false, false
	}
	if p.aborting[t.Stage] {
		return false, false
	}
	sv := p.v.stages[t.Stage]
	if sv == nil {
		return false, false
	}
	free := p.roomFor(t.Stage, sv)
	if len(free) == 0 {
		return false, true
	}
	avoid := ""
	if speculative {
		avoid = l.attempts[primary].exec
	}
	eligible := p.eligible(key, free, avoid)
	if len(eligible) == 0 {
		return false, false
	}
	exec := pick(t.Preferred, eligible)
	if exec == "" {
		if len(t.Preferred) > 0 && !speculative {
			first, seen := l.waiting[key]
			if !seen {
				l.waiting[key] = p.now
				first = p.now
			}
			wait := l.d.opts.LocalityWait
			if t.Cached {
				wait = l.d.opts.CacheLocalityWait
			}
			if p.now.Sub(first) < wait {
				return false, false // wait for a preferred slot
			}
		}
		if len(eligible) == len(free) {
			exec = p.byFree.best() // eligible is free
		} else {
			exec = mostFree(eligible)
		}
	}
	tl := p.build(t, sv, exec, speculative)
	if tl == nil {
		return false, false
	}
	delete(l.waiting, key)
	a := &attempt{id: tl.Id, exec: exec, key: key, pool: t.Pool, started: p.now, speculative: speculative}
	l.attempts[tl.Id.Task] = a
	if speculative {
		l.spec[key] = tl.Id.Task
	} else {
		l.byPart[key] = tl.Id.Task
	}
	p.batches[exec] = append(p.batches[exec], tl)
	l.d.metrics.launched.Inc()
	p.rooms[exec].used++
	p.capacity--
	p.byFree.take(exec)
	if free[exec]--; free[exec] == 0 {
		delete(free, exec)
	}
	return true, false
}

// eligible returns the executors with room that the task may run on: not
// avoid, and not excluded for it. When every executor that could run the
// task is excluded, exclusion is ignored rather than the task starved.
func (p *placer) eligible(key partKey, free map[string]int, avoid string) map[string]int {
	sv := p.v.stages[key.stage]
	if sv != nil && sv.info.Attempt != key.attempt {
		sv = nil // what the state knows is of the current attempt
	}
	failing := p.l.failing[key.set()]
	if avoid == "" && len(p.v.excluded) == 0 && len(failing) == 0 && (sv == nil || len(sv.exclAll)+len(sv.exclPart) == 0) {
		return free
	}
	excluded := func(exec string) bool {
		if p.v.excluded[exec] || failing[exec] > 0 {
			return true
		}
		return sv != nil && (sv.exclAll[exec] || slices.Contains(sv.exclPart[key.part], dag.ExecutorID(exec)))
	}
	out := make(map[string]int, len(free))
	for id, n := range free {
		if id != avoid && !excluded(id) {
			out[id] = n
		}
	}
	if len(out) > 0 || avoid != "" {
		return out
	}
	for id, r := range p.rooms {
		if r.c.holds(p.needs) && !excluded(id) {
			return out // an allowed executor exists: wait for its room
		}
	}
	return free
}

// Scheduling modes (Options.SchedulingMode).
const (
	ModeFIFO = "FIFO"
	ModeFair = "FAIR"
)

// PoolConfig is a FAIR pool's share (Spark's fair scheduler pools).
type PoolConfig struct {
	// Weight is the pool's share of the slots relative to other pools
	// (default 1): a pool of weight 2 gets twice the slots of a pool of
	// weight 1 when both have work.
	Weight int
	// MinShare is a number of slots the pool gets before weights count
	// (default 0).
	MinShare int
}

// fairPool is a pool in a launch round.
type fairPool struct {
	name     string
	weight   float64
	minShare float64
	running  int
	cands    []dag.TaskSpec
}

// fair serves the task sets by pool: each slot goes to the pool Spark's
// FairSchedulingAlgorithm puts first (pools below their minimum share
// first, the neediest first; then the pool with the fewest running tasks
// per unit of weight); within a pool, task sets go in FIFO order.
func (p *placer) fair(running map[string]int) {
	byName := map[string]*fairPool{}
	var pools []*fairPool
	for _, set := range p.v.sets {
		fp := byName[set.ts.Pool]
		if fp == nil {
			cfg := p.l.d.opts.Pools[set.ts.Pool]
			fp = &fairPool{name: set.ts.Pool, weight: float64(max(cfg.Weight, 1)), minShare: float64(cfg.MinShare), running: running[set.ts.Pool]}
			byName[set.ts.Pool] = fp
			pools = append(pools, fp)
		}
		fp.cands = append(fp.cands, set.tasks...)
	}
	for p.capacity > 0 {
		var best *fairPool
		for _, fp := range pools {
			if len(fp.cands) > 0 && (best == nil || fairBefore(fp, best)) {
				best = fp
			}
		}
		if best == nil {
			return
		}
		t := best.cands[0]
		best.cands = best.cands[1:]
		launched, noRoom := p.offer(t, false)
		if launched {
			best.running++
		}
		if noRoom {
			// Nothing of this stage fits this round.
			for len(best.cands) > 0 && best.cands[0].Stage == t.Stage {
				best.cands = best.cands[1:]
			}
		}
	}
}

// fairBefore is Spark's FairSchedulingAlgorithm comparator.
func fairBefore(a, b *fairPool) bool {
	ra, rb := float64(a.running), float64(b.running)
	needyA, needyB := ra < a.minShare, rb < b.minShare
	switch {
	case needyA && !needyB:
		return true
	case !needyA && needyB:
		return false
	case needyA && needyB:
		x, y := ra/math.Max(a.minShare, 1), rb/math.Max(b.minShare, 1)
		if x != y {
			return x < y
		}
	default:
		x, y := ra/a.weight, rb/b.weight
		if x != y {
			return x < y
		}
	}
	return a.name < b.name
}

// speculate launches copies of slow tasks (Spark's speculation): in a
// task set where at least SpeculationQuantile of the tasks have
// succeeded, a task running longer than SpeculationMultiplier times their
// median duration (and at least SpeculationMinRuntime) gets one copy on
// another executor. Whichever ends first wins; the other is killed.
func (p *placer) speculate() {
	l := p.l
	for _, set := range p.v.sets {
		for _, t := range set.slow {
			if p.capacity <= 0 {
				return
			}
			key := partKey{t.Stage, t.StageAttempt, t.Partition}
			if _, copied := l.spec[key]; copied {
				continue
			}
			if t.Cached {
				// Its input is a kept partition only its executor reads:
				// a copy elsewhere would compute it from its lineage,
				// whose map stages may never have run.
				continue
			}
			a := l.attempts[l.byPart[key]]
			if a == nil {
				continue
			}
			if launched, _ := p.offer(t, true); launched {
				l.d.log.Info("driver: speculating", "stage", t.Stage, "partition", t.Partition, "running", p.now.Sub(a.started).Round(time.Millisecond), "threshold", set.threshold.Round(time.Millisecond))
			}
		}
	}
}

// funcsOf returns the functions a graph names (cached).
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
		if n.Op == "pipe" {
			if cmd := ops.PipeCommand(n.Params); cmd != "" {
				add(ops.PipePrefix + cmd) // only where the program is allowed
			}
		}
	}
	add(g.Action.Fn.Name)
	l.funcs[g] = fs
	return fs
}

// shortTask is the average duration under which a stage's tasks are
// queued on executors ahead of free slots.
const shortTask = 20 * time.Millisecond

// maxQueuePerSlot bounds what QueuedWork queues per slot, and
// minTaskTime is the duration queueFor assumes of tasks that report 0 ms
// (durations are whole milliseconds).
const (
	maxQueuePerSlot = 256
	minTaskTime     = 50 * time.Microsecond
)

// queueFor returns how many tasks each slot may have queued for a stage
// of short tasks that take avg on average: perSlot (QueuePerSlot), or as
// many as take about work (QueuedWork) if that is more, up to
// maxQueuePerSlot. None when perSlot is 0 (queueing is off).
func queueFor(avg time.Duration, perSlot int, work time.Duration) int {
	if perSlot <= 0 || work <= 0 {
		return perSlot
	}
	n := int(work / max(avg, minTaskTime))
	return min(max(perSlot, n), max(perSlot, maxQueuePerSlot))
}

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

// build makes a task's launch for an executor.
func (p *placer) build(t dag.TaskSpec, sv *stageView, exec string, speculative bool) *api.TaskLaunch {
	l := p.l
	st := sv.info
	ge := l.graphs[st.Graph]
	if ge == nil {
		var err error
		if ge, err = encodeGraph(st.Graph); err != nil {
			l.d.log.Error("driver: encode graph", "stage", t.Stage, "err", err)
			return nil
		}
		l.graphs[st.Graph] = ge
	}
	// Task ids are unique across leaderships: the term, then a sequence
	// the driver keeps (two leaderships of one term never share one).
	tid := l.term<<40 | l.d.seq.Add(1)&(1<<40-1)
	n := max(l.launches.get(t.Stage, t.Partition), t.Failures)
	l.launches.add(t.Stage, t.Partition, 1)
	tl := &api.TaskLaunch{
		Id: &api.TaskID{Task: tid, Job: uint64(t.Job), Stage: uint64(t.Stage), StageAttempt: int32(t.StageAttempt),
			Partition: int32(t.Partition), Attempt: int32(n), Epoch: t.Epoch, Speculative: speculative},
		Term:                l.term,
		GraphKey:            ge.key,
		Node:                int32(st.Node),
		Map:                 t.Map,
		Shuffle:             uint64(t.Shuffle),
		Inputs:              sv.inputs,
		MaxDirectResultSize: l.d.opts.MaxDirectResultSize,
		MaxResultSize:       p.v.jobs[t.Job],
		ShuffleKey:          sv.shuffleKey,
		ReduceStart:         int32(t.ReduceStart),
		ReduceEnd:           int32(t.ReduceEnd),
		CacheGenerations:    sv.cacheGens,
	}
	tl.Id.Ticket = ticket(l.ticketKey(), tl.Id, exec)
	if l.blockSigner() != nil {
		for _, in := range tl.Inputs {
			tl.InputGrants = append(tl.InputGrants, l.shuffleGrant(in.Shuffle, exec))
		}
	}
	// The launch is sent this round, in the session it was built for:
	// the graph goes with the first launch that needs it.
	c := p.rooms[exec].c
	var graph []byte
	if !c.graphs[ge.key] {
		graph = ge.data
	}
	if size := launchSize(p.taskSize(tl, sv, graph)); size > maxLaunchMessage {
		l.launches.add(t.Stage, t.Partition, -1)
		p.oversized(t, sv, size, len(graph))
		return nil
	}
	if graph != nil {
		tl.Graph = graph
		c.graphs[ge.key] = true
	}
	if !t.Map && st.Graph.Action.Op == "saveAsTextFile" {
		l.savingJobs[t.Job] = st.Graph.Action.Path
	}
	return tl
}

// stageInputs returns where the shuffles a stage reads live.
func stageInputs(s *dag.State, st dag.StageInfo) []*api.ShuffleInput {
	var out []*api.ShuffleInput
	addrs := map[dag.ExecutorID]string{}
	for _, d := range st.Graph.ShuffleDeps(st.Node) {
		sid, ok := s.ShuffleByKey(d.Shuffle.Key)
		if !ok {
			continue
		}
		sh, _ := s.Shuffle(sid)
		in := &api.ShuffleInput{Shuffle: uint64(sid), Key: sh.Key, Maps: int32(sh.Maps)}
		for _, o := range s.MapOutputs(sid) {
			addr, ok := addrs[o.Executor]
			if !ok {
				e, _ := s.Executor(o.Executor)
				addr = e.Addr
				addrs[o.Executor] = addr
			}
			in.Locations = append(in.Locations, &api.MapLocation{Map: int32(o.Map), Executor: string(o.Executor), Addr: addr})
		}
		out = append(out, in)
	}
	return out
}

// launchCounts counts the launches of each partition of each stage, for
// attempt numbers: a slice per stage indexed by partition (a map keyed by
// stage and partition was a tenth of the leader's CPU on a 200,000-task
// stage: a hash and a cache miss per launch).
type launchCounts map[dag.StageID][]int32

func (lc launchCounts) get(stage dag.StageID, part int) int {
	if c := lc[stage]; part >= 0 && part < len(c) {
		return int(c[part])
	}
	return 0
}

func (lc launchCounts) add(stage dag.StageID, part, d int) {
	if part < 0 {
		return
	}
	c := lc[stage]
	if part >= len(c) {
		c = append(c, make([]int32, part+1-len(c))...)
		lc[stage] = c
	}
	c[part] = max(c[part]+int32(d), 0)
}
