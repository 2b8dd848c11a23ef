package dagtest

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
)

// Options shape a simulation.
type Options struct {
	Seed      uint64
	Executors int // default 4
	// MaxJobs bounds the jobs running at once (default 3).
	MaxJobs int
	// Faults scales every failure probability; 0 means none, 1 the
	// defaults (a few percent each).
	Faults float64
	Config dag.Config
}

// Sim is a simulated driver: it keeps its own state to decide what to do
// and returns each command after applying it there.
type Sim struct {
	opts    Options
	rng     *rand.Rand
	s       *dag.State
	time    int64
	task    dag.TaskID
	running []runningTask
	execs   []dag.ExecutorID
	jobs    int
	ended   []dag.TaskEnded // finished reports, to replay as duplicates
	queue   []dag.Command
	doomed  map[dag.JobID]bool // jobs whose partition 0 always fails
	drain   bool
}

// Drain stops faults and submissions: from now on the simulation only
// finishes what is running. Every job must then end; a job that does not
// is a liveness bug in the scheduler.
func (sim *Sim) Drain() {
	sim.opts.Faults = 0
	sim.drain = true
	sim.doomed = map[dag.JobID]bool{}
	for _, e := range sim.execs {
		if info, _ := sim.s.Executor(e); !info.Alive {
			sim.queue = append(sim.queue, &dag.RegisterExecutor{ID: e, Addr: info.Addr, Cores: 4})
		}
	}
}

// Running returns the number of running jobs.
func (sim *Sim) Running() int {
	n := 0
	for _, j := range sim.s.Jobs() {
		if j.Status == dag.JobRunning {
			n++
		}
	}
	return n
}

type runningTask struct {
	spec dag.TaskSpec
	exec dag.ExecutorID
	id   dag.TaskID
}

// New returns a simulation.
func New(opts Options) *Sim {
	if opts.Executors <= 0 {
		opts.Executors = 4
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = 3
	}
	sim := &Sim{doomed: map[dag.JobID]bool{}, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)), s: dag.New(opts.Config)}
	for i := 0; i < opts.Executors; i++ {
		id := dag.ExecutorID(fmt.Sprintf("exec-%d", i))
		sim.execs = append(sim.execs, id)
		sim.queue = append(sim.queue, &dag.RegisterExecutor{ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", 7100+i), Cores: 4})
	}
	return sim
}

// State returns the simulation's own state (read it, do not apply to it).
func (sim *Sim) State() *dag.State { return sim.s }

// Next returns the next command, already applied to the simulation's state,
// and its result there.
func (sim *Sim) Next() (dag.Command, dag.Result) {
	for len(sim.queue) == 0 {
		sim.step()
	}
	c := sim.queue[0]
	sim.queue = sim.queue[1:]
	sim.time += 1000 + sim.rng.Int64N(1000)
	stamp(c, sim.time)
	r := sim.s.Apply(c)
	if te, ok := c.(*dag.TaskEnded); ok && te.Reason == dag.Success && len(sim.ended) < 256 {
		sim.ended = append(sim.ended, *te)
	}
	if _, ok := c.(*dag.SubmitJob); ok && r.Err == nil && sim.chance(0.05) {
		sim.doomed[r.Job] = true
	}
	return c, r
}

func stamp(c dag.Command, t int64) {
	switch c := c.(type) {
	case *dag.RegisterExecutor:
		c.Time = t
	case *dag.RemoveExecutor:
		c.Time = t
	case *dag.SubmitJob:
		c.Time = t
	case *dag.TaskEnded:
		c.Time = t
	case *dag.ResubmitFailedStages:
		c.Time = t
	case *dag.AuthorizeCommit:
		c.Time = t
	case *dag.CancelJob:
		c.Time = t
	case *dag.ReleaseJob:
		c.Time = t
	case *dag.Unpersist:
		c.Time = t
	}
}

func (sim *Sim) chance(p float64) bool { return sim.rng.Float64() < p*sim.opts.Faults }

// step decides what happens next and queues at least one command, or
// launches tasks (which logs nothing) and tries again.
func (sim *Sim) step() {
	s := sim.s
	running := 0
	for _, j := range s.Jobs() {
		if j.Status == dag.JobRunning {
			running++
		}
	}
	switch {
	case !sim.drain && (running < sim.opts.MaxJobs && sim.rng.IntN(8) == 0 || running == 0):
		sim.queue = append(sim.queue, sim.submit())
		return
	case s.ResubmitRequested() && sim.rng.IntN(4) == 0:
		sim.queue = append(sim.queue, &dag.ResubmitFailedStages{})
		return
	case sim.chance(0.004):
		e := sim.execs[sim.rng.IntN(len(sim.execs))]
		if info, _ := s.Executor(e); info.Alive {
			sim.queue = append(sim.queue, &dag.RemoveExecutor{ID: e, Reason: "simulated loss"})
			sim.dropRunningOn(e)
		} else {
			sim.queue = append(sim.queue, &dag.RegisterExecutor{ID: e, Addr: info.Addr, Cores: 4})
		}
		return
	case sim.chance(0.01):
		// Re-register any lost executor (a restart).
		for _, e := range s.Executors() {
			if !e.Alive {
				sim.queue = append(sim.queue, &dag.RegisterExecutor{ID: e.ID, Addr: e.Addr, Cores: 4})
				return
			}
		}
	case sim.chance(0.003):
		for _, j := range s.Jobs() {
			if j.Status == dag.JobRunning {
				sim.queue = append(sim.queue, &dag.CancelJob{Job: j.ID, Reason: "simulated cancel"})
				return
			}
		}
	case sim.chance(0.002):
		if cached := s.Cached(); len(cached) > 0 {
			sim.queue = append(sim.queue, &dag.Unpersist{Keys: []string{cached[sim.rng.IntN(len(cached))].Key}})
			return
		}
	case !sim.drain && sim.rng.Float64() < 0.01 && len(sim.ended) > 0:
		// A duplicate or late report.
		te := sim.ended[sim.rng.IntN(len(sim.ended))]
		sim.queue = append(sim.queue, &te)
		return
	}
	for _, j := range s.Jobs() {
		if j.Status != dag.JobRunning && !j.Released && sim.rng.IntN(3) == 0 {
			sim.queue = append(sim.queue, &dag.ReleaseJob{Job: j.ID})
			return
		}
	}
	sim.launch()
	if len(sim.running) == 0 {
		switch {
		case s.ResubmitRequested():
			sim.queue = append(sim.queue, &dag.ResubmitFailedStages{})
		case sim.drain:
			panic(fmt.Sprintf("dagtest: %d jobs running, nothing runnable, nothing to resubmit", running))
		default:
			sim.queue = append(sim.queue, sim.submit())
		}
		return
	}
	i := sim.rng.IntN(len(sim.running))
	rt := sim.running[i]
	sim.running = append(sim.running[:i], sim.running[i+1:]...)
	if sim.rng.IntN(10) == 0 {
		sim.queue = append(sim.queue, &dag.AuthorizeCommit{Stage: rt.spec.Stage, StageAttempt: rt.spec.StageAttempt, Partition: rt.spec.Partition, Task: rt.id, Executor: rt.exec})
	}
	sim.queue = append(sim.queue, sim.end(rt))
}

// launch starts runnable tasks on free slots of live executors.
func (sim *Sim) launch() {
	s := sim.s
	busy := map[[3]int]bool{}
	for _, rt := range sim.running {
		busy[[3]int{int(rt.spec.Stage), rt.spec.StageAttempt, rt.spec.Partition}] = true
	}
	var alive []dag.ExecutorID
	for _, e := range s.Executors() {
		if e.Alive {
			alive = append(alive, e.ID)
		}
	}
	if len(alive) == 0 {
		return
	}
	slots := len(alive)*4 - len(sim.running)
	s.Runnable(func(t dag.TaskSpec) bool {
		if slots <= 0 {
			return false
		}
		if busy[[3]int{int(t.Stage), t.StageAttempt, t.Partition}] {
			return true
		}
		exec := alive[sim.rng.IntN(len(alive))]
		if len(t.Preferred) > 0 && (sim.rng.IntN(2) == 0 || t.Cached && sim.rng.IntN(10) != 0) {
			// Cached partitions are waited for longer (the driver's
			// locality wait): most such tasks run where they are.
			exec = t.Preferred[0]
		}
		sim.task++
		sim.running = append(sim.running, runningTask{spec: t, exec: exec, id: sim.task})
		slots--
		return true
	})
}

func (sim *Sim) dropRunningOn(e dag.ExecutorID) {
	kept := sim.running[:0]
	for _, rt := range sim.running {
		if rt.exec == e {
			sim.queue = append(sim.queue, sim.report(rt, dag.ExecutorLost))
			continue
		}
		kept = append(kept, rt)
	}
	sim.running = kept
}

func (sim *Sim) report(rt runningTask, r dag.Reason) *dag.TaskEnded {
	return &dag.TaskEnded{
		Task: rt.id, Stage: rt.spec.Stage, StageAttempt: rt.spec.StageAttempt, Partition: rt.spec.Partition,
		Attempt: rt.spec.Failures, Executor: rt.exec, Epoch: rt.spec.Epoch, Reason: r,
		// Every attempt counts itself and the highest partition it saw,
		// so that snapshots carry accumulators of both tables.
		Accumulators: []dag.Accumulator{{Name: "attempts", Kind: dag.AccCount, Int: 1}, {Name: "partition", Kind: dag.AccMax, Int: int64(rt.spec.Partition)}},
	}
}

// end decides how a running task ends.
func (sim *Sim) end(rt runningTask) *dag.TaskEnded {
	s := sim.s
	te := sim.report(rt, dag.Success)
	info, ok := s.Stage(rt.spec.Stage)
	switch {
	case sim.doomed[rt.spec.Job] && rt.spec.Partition == 0 && !rt.spec.Map:
		te.Reason = dag.Exception
		te.Message = "java.lang.IllegalStateException: partition 0 is doomed"
		return te
	case sim.chance(0.03):
		te.Reason = dag.Exception
		te.Message = "java.lang.RuntimeException: simulated"
		return te
	case sim.chance(0.01):
		te.Reason = dag.Killed
		return te
	case sim.chance(0.005):
		te.Reason = dag.ResultLost
		return te
	case ok && len(info.Parents) > 0 && sim.chance(0.02):
		parent, _ := s.Stage(info.Parents[sim.rng.IntN(len(info.Parents))])
		outs := s.MapOutputs(parent.Shuffle)
		te.Reason = dag.FetchFailed
		te.FetchShuffle = parent.Shuffle
		te.FetchMap = -1
		te.FetchReduce = rt.spec.Partition
		if len(outs) > 0 {
			o := outs[sim.rng.IntN(len(outs))]
			te.FetchMap, te.FetchExecutor = o.Map, o.Executor
		}
	}
	if ok {
		// As an executor would: a task reads the persisted partitions
		// its own executor keeps and computes the rest, which reads the
		// shuffles below; a shuffle without all its outputs (a map stage
		// skipped because a persisted dataset was cached) fails to fetch.
		cached, computes := sim.persisted(info, rt.spec.Partition, rt.exec)
		if computes {
			for _, pid := range info.Parents {
				parent, _ := s.Stage(pid)
				if sh, _ := s.Shuffle(parent.Shuffle); sh.Available < sh.Maps {
					te.Reason = dag.FetchFailed
					te.FetchShuffle, te.FetchMap, te.FetchReduce = parent.Shuffle, -1, rt.spec.Partition
					return te
				}
			}
		}
		te.Cached = cached
	}
	if rt.spec.Map {
		sh, _ := s.Shuffle(rt.spec.Shuffle)
		te.MapBytes = uint64(sim.rng.IntN(1 << 20))
		if sh.Reducers <= dag.MaxSizedReducers {
			te.MapSizes = make([]byte, sh.Reducers)
			for i := range te.MapSizes {
				te.MapSizes[i] = dag.CompressSize(uint64(sim.rng.IntN(1 << 16)))
			}
		}
		return te
	}
	if sim.rng.IntN(5) == 0 {
		te.Indirect = true
		te.ResultSize = 100_000 + sim.rng.Int64N(100_000)
	} else {
		te.Result = []byte(fmt.Sprintf("result %d/%d", rt.spec.Stage, rt.spec.Partition))
		te.ResultSize = int64(len(te.Result))
	}
	return te
}

// persisted returns the persisted partitions a task of the stage computing
// partition p on exec keeps (those its executor does not keep already),
// and whether it computes anything below a persisted dataset or without
// one (it then reads the stage's shuffles).
func (sim *Sim) persisted(info dag.StageInfo, p int, exec dag.ExecutorID) (keep []dag.CachedPartition, computes bool) {
	g := info.Graph
	var walk func(node, p int)
	walk = func(node, p int) {
		n := &g.Nodes[node]
		if n.Persist != "" {
			if e, ok := sim.s.CachedLocation(n.Persist, p); ok && e == exec {
				return
			}
			gen, _ := sim.s.CacheGeneration(n.Persist)
			keep = append(keep, dag.CachedPartition{Key: n.Persist, Partition: p, Bytes: int64(100 + p), Gen: gen})
		}
		for _, d := range n.Deps {
			switch d.Kind {
			case plan.OneToOne:
				walk(d.Parent, p)
			case plan.Range:
				if p >= d.OutStart && p < d.OutStart+d.Length {
					walk(d.Parent, p-d.OutStart+d.InStart)
				}
			case plan.Shuffle:
				computes = true
			}
		}
	}
	if info.Coalesced == nil {
		walk(info.Node, p)
	} else {
		computes = true
	}
	return keep, computes
}

// submit builds a random job: a source, narrow steps, up to three
// shuffles (sometimes a two-input shuffle or a union), and sometimes a
// subset of partitions. Some jobs repeat an earlier lineage, sharing its
// shuffles.
func (sim *Sim) submit() dag.Command {
	sim.jobs++
	// The graph's shape comes from its lineage number alone, so jobs with
	// equal numbers have equal graphs and share their shuffles.
	lineage := sim.rng.IntN(12)
	r := rand.New(rand.NewPCG(uint64(lineage), 7))
	g := &plan.Graph{Name: fmt.Sprintf("job-%d", sim.jobs), Action: plan.GraphAction{Op: "collect"}}
	add := func(n plan.Node) int {
		g.Nodes = append(g.Nodes, n)
		return len(g.Nodes) - 1
	}
	src := add(plan.Node{Name: "src", Op: "range", Partitions: 1 + r.IntN(8)})
	cur := add(plan.Node{Name: "map", Op: "map", Partitions: g.Nodes[src].Partitions, Deps: []plan.Dep{{Kind: plan.OneToOne, Parent: src}}})
	persist := lineage%3 == 0 // some lineages persist the dataset after their first shuffle
	shuffles := r.IntN(4)
	for i := 0; i < shuffles; i++ {
		p := 1 + r.IntN(8)
		dep := func(parent int) plan.Dep {
			return plan.Dep{Kind: plan.Shuffle, Parent: parent, Shuffle: &plan.ShuffleDep{
				Key:         fmt.Sprintf("L%d-s%d-n%d-p%d", lineage, i, parent, p),
				Partitioner: plan.Partitioner{Kind: "hash", Partitions: p}}}
		}
		deps := []plan.Dep{dep(cur)}
		if r.IntN(4) == 0 {
			deps = append(deps, dep(src))
		}
		cur = add(plan.Node{Name: fmt.Sprintf("shuffle%d", i), Op: "cogroup", Partitions: p, Deps: deps})
		if persist && i == 0 {
			cur = add(plan.Node{Name: "kept", Op: "map", Partitions: p, Persist: fmt.Sprintf("L%d-kept", lineage),
				Deps: []plan.Dep{{Kind: plan.OneToOne, Parent: cur}}})
		}
		if r.IntN(5) == 0 {
			n := g.Nodes[cur].Partitions
			cur = add(plan.Node{Name: fmt.Sprintf("union%d", i), Op: "union", Partitions: 2 * n, Deps: []plan.Dep{
				{Kind: plan.Range, Parent: cur, OutStart: 0, Length: n},
				{Kind: plan.Range, Parent: cur, OutStart: n, Length: n}}})
		}
	}
	g.Output = cur
	c := &dag.SubmitJob{Graph: g}
	r = sim.rng
	if n := g.Nodes[cur].Partitions; n > 1 && r.IntN(5) == 0 {
		parts := r.Perm(n)[:1+r.IntN(n-1)]
		sort.Ints(parts)
		c.Partitions = parts
	}
	if r.IntN(20) == 0 {
		c.Partitions = []int{}
	}
	if r.IntN(4) == 0 {
		c.Key = fmt.Sprintf("key-%d", r.IntN(sim.jobs+1))
	}
	if r.IntN(3) == 0 {
		// Map sizes are up to 64 KiB a reducer: these targets coalesce
		// some stages, all or none.
		c.AdaptiveTarget = []int64{1 << 14, 1 << 17, 1 << 20}[r.IntN(3)]
	}
	if c.Partitions == nil && len(g.ShuffleDeps(g.Output)) == 1 && r.IntN(8) == 0 {
		c.MapStage = true
	}
	return c
}
