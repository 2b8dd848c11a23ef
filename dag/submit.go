package dag

import (
	"fmt"
	"sort"

	"github.com/baton-sched/baton/plan"
)

// submitJob is Spark's handleJobSubmitted: create the result stage (and
// the missing ancestor shuffle map stages), register the job, submit the
// final stage.
func (s *State) submitJob(c *SubmitJob) Result {
	if c.Key != "" {
		if id, ok := s.idem[c.Key]; ok {
			return Result{Job: id}
		}
	}
	if err := s.checkSubmit(c); err != nil {
		return Result{Err: err}
	}
	g := c.Graph
	id := s.nextJob
	s.nextJob++
	j := &job{
		id:        id,
		name:      g.Name,
		key:       c.Key,
		pool:      c.Pool,
		group:     c.Group,
		graph:     g,
		status:    JobRunning,
		submitted: c.Time,

		maxTaskFailures: max(c.MaxTaskFailures, 0),
		maxResultSize:   c.MaxResultSize,
		mapStage:        c.MapStage,
		adaptive:        max(c.AdaptiveTarget, 0),
	}
	outParts := g.Nodes[g.Output].Partitions
	if c.MapStage {
		j.nTasks = 0 // no results: the job ends with its map stage
	} else if c.Partitions == nil || len(c.Partitions) == outParts {
		j.nTasks = outParts
	} else {
		j.parts = append([]int(nil), c.Partitions...)
		j.nTasks = len(j.parts)
	}
	j.finished = make([]bool, j.nTasks)
	j.results = make([]ResultRef, j.nTasks)
	s.jobs[id] = j
	s.addJobOrder(id)
	s.addPersisted(g)
	if c.Key != "" {
		s.idem[c.Key] = id
	}
	s.events = append(s.events, Event{Kind: JobSubmitted, Job: id, Name: j.name, Tasks: j.nTasks})
	if c.MapStage {
		s.submitMapStageJob(j)
		return Result{Job: id}
	}
	if j.nTasks == 0 {
		// A job on no partitions ends at once (runJob with no partitions).
		j.status = JobSucceeded
		j.ended = c.Time
		s.events = append(s.events, Event{Kind: JobEnded, Job: id, Status: JobSucceeded})
		return Result{Job: id}
	}
	final := s.createResultStage(g, j)
	j.final = final.id
	s.updateJobStages(id, final)
	s.submitStage(final)
	return Result{Job: id}
}

// checkSubmit validates a submission without changing anything.
func (s *State) checkSubmit(c *SubmitJob) error {
	g := c.Graph
	if g == nil {
		return fmt.Errorf("%w: no graph", ErrInvalidGraph)
	}
	if err := checkGroup(c.Group); err != nil {
		return err
	}
	// Bounds first: nothing below allocates in proportion to a count
	// that has not been checked.
	if len(g.Nodes) > s.cfg.MaxGraphNodes {
		return fmt.Errorf("%w: the graph has %d datasets, more than the limit of %d", ErrTooLarge, len(g.Nodes), s.cfg.MaxGraphNodes)
	}
	for i := range g.Nodes {
		if p := g.Nodes[i].Partitions; p > s.cfg.MaxJobTasks {
			return fmt.Errorf("%w: dataset %d has %d partitions, more than the limit of %d tasks per job", ErrTooLarge, i, p, s.cfg.MaxJobTasks)
		}
	}
	if err := g.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidGraph, err)
	}
	if n := s.runningJobs(); n >= s.cfg.MaxRunningJobs {
		return fmt.Errorf("%w: %d jobs are running, the limit", ErrTooManyJobs, n)
	}
	if c.AdaptiveTarget < 0 {
		return fmt.Errorf("%w: negative adaptive target %d", ErrInvalidGraph, c.AdaptiveTarget)
	}
	if c.MapStage {
		if c.Partitions != nil {
			return fmt.Errorf("%w: a map-stage job runs every map partition: it takes no partitions", ErrInvalidGraph)
		}
		if n := len(g.ShuffleDeps(g.Output)); n != 1 {
			return fmt.Errorf("%w: a map-stage job runs the shuffle its output dataset reads, and %q reads %d shuffles; the output must read exactly one",
				ErrInvalidGraph, g.Nodes[g.Output].Name, n)
		}
	}
	outParts := g.Nodes[g.Output].Partitions
	for i, p := range c.Partitions {
		if p < 0 || p >= outParts {
			return fmt.Errorf("%w: partition %d out of range [0, %d)", ErrInvalidGraph, p, outParts)
		}
		if i > 0 && p <= c.Partitions[i-1] {
			return fmt.Errorf("%w: partitions must be ascending and distinct", ErrInvalidGraph)
		}
	}
	// A shuffle key names one shuffle: every use of a key, in the graph
	// and in the live state, must agree on its shape.
	type shape struct{ maps, reducers int }
	shapes := map[string]shape{}
	for i := range g.Nodes {
		for _, d := range g.Nodes[i].Deps {
			if d.Kind != plan.Shuffle {
				continue
			}
			got := shape{g.Nodes[d.Parent].Partitions, d.Shuffle.Partitioner.Partitions}
			want, ok := shapes[d.Shuffle.Key]
			if !ok {
				if sid, live := s.byKey[d.Shuffle.Key]; live {
					// The partitions the graph gave the map side: a
					// coalesced map stage runs fewer tasks (adaptive.go).
					sh := s.shuffles[sid]
					st := s.stages[sh.stage]
					want, ok = shape{st.graph.Nodes[st.node].Partitions, sh.reducers}, true
				}
			}
			if ok && want != got {
				return fmt.Errorf("%w: shuffle %s has %d maps and %d reducers in one place and %d and %d in another",
					ErrInvalidGraph, d.Shuffle.Key, want.maps, want.reducers, got.maps, got.reducers)
			}
			shapes[d.Shuffle.Key] = got
		}
	}
	cached, err := s.checkPersisted(g)
	if err != nil {
		return err
	}
	tasks := s.newTasks(c)
	if tasks > int64(s.cfg.MaxJobTasks) {
		return fmt.Errorf("%w: the job has %d tasks, more than the limit of %d tasks per job", ErrTooLarge, tasks, s.cfg.MaxJobTasks)
	}
	if int64(s.liveTasks)+tasks+cached > int64(s.cfg.MaxLiveTasks) {
		return fmt.Errorf("%w: the job's %d tasks and the %d tasks of the stages and persisted partitions held would pass the limit of %d; submit again when jobs have been released or datasets unpersisted", ErrTooManyTasks, tasks, s.liveTasks, s.cfg.MaxLiveTasks)
	}
	return nil
}

// newTasks returns the tasks of the stages a submission would create: its
// result stage and the map stages of shuffles the state does not hold.
// The graph is valid (checked), so node counts are bounded.
func (s *State) newTasks(c *SubmitJob) int64 {
	g := c.Graph
	total := int64(g.Nodes[g.Output].Partitions)
	if c.Partitions != nil {
		total = int64(len(c.Partitions))
	}
	if c.MapStage {
		total = 0 // only the map stages
	}
	seen := map[string]bool{}
	visited := make([]bool, len(g.Nodes))
	todo := []int{g.Output}
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if visited[n] {
			continue
		}
		visited[n] = true
		for _, d := range g.Nodes[n].Deps {
			if d.Kind == plan.Shuffle && !seen[d.Shuffle.Key] {
				seen[d.Shuffle.Key] = true
				if _, live := s.byKey[d.Shuffle.Key]; !live {
					total += int64(g.Nodes[d.Parent].Partitions)
				}
			}
			todo = append(todo, d.Parent)
		}
	}
	return total
}

// runningJobs returns how many jobs run.
func (s *State) runningJobs() int {
	n := 0
	for _, j := range s.jobs {
		if j.status == JobRunning {
			n++
		}
	}
	return n
}

// createResultStage creates the job's final stage and its missing parents.
func (s *State) createResultStage(g *plan.Graph, j *job) *stage {
	parents := s.getOrCreateParentStages(g, g.ShuffleDeps(g.Output), j.id)
	st := s.newStage(g, g.Output, parents, j.id)
	st.job = j.id
	st.nTasks = j.nTasks
	s.initTasks(st)
	return st
}

func (s *State) newStage(g *plan.Graph, node int, parents []StageID, firstJob JobID) *stage {
	id := s.nextStage
	s.nextStage++
	sort.Slice(parents, func(a, b int) bool { return parents[a] < parents[b] })
	st := &stage{
		id:      id,
		graph:   g,
		node:    node,
		parents: parents,
		first:   firstJob,
		attempt: -1,
	}
	if j := s.jobs[firstJob]; j != nil {
		st.adaptive = j.adaptive
	}
	s.stages[id] = st
	return st
}

// initTasks sizes the per-task arrays once nTasks is known.
func (s *State) initTasks(st *stage) {
	s.liveTasks += st.nTasks
	st.initTasks()
}

func (st *stage) initTasks() {
	st.pending = newBitset(st.nTasks)
	st.fails = make([]uint16, st.nTasks)
	st.authorized = make([]TaskID, st.nTasks)
}

// getOrCreateParentStages returns the map stages of the given shuffle
// dependencies, creating missing ones, without duplicates.
func (s *State) getOrCreateParentStages(g *plan.Graph, deps []plan.Dep, firstJob JobID) []StageID {
	var parents []StageID
	seen := map[StageID]bool{}
	for _, d := range deps {
		st := s.getOrCreateShuffleMapStage(g, d, firstJob)
		if !seen[st.id] {
			seen[st.id] = true
			parents = append(parents, st.id)
		}
	}
	return parents
}

// getOrCreateShuffleMapStage returns the map stage of a shuffle, creating
// it and its missing ancestors (ancestors first, so parents get lower ids).
func (s *State) getOrCreateShuffleMapStage(g *plan.Graph, d plan.Dep, firstJob JobID) *stage {
	if st := s.mapStageFor(d.Shuffle.Key); st != nil {
		return st
	}
	for _, a := range s.missingAncestorShuffles(g, d.Parent) {
		// An earlier iteration may have created it (SPARK-13902).
		if s.mapStageFor(a.Shuffle.Key) == nil {
			s.createShuffleMapStage(g, a, firstJob)
		}
	}
	return s.createShuffleMapStage(g, d, firstJob)
}

func (s *State) mapStageFor(key string) *stage {
	if sid, ok := s.byKey[key]; ok {
		return s.stages[s.shuffles[sid].stage]
	}
	return nil
}

// missingAncestorShuffles finds ancestor shuffle dependencies of node that
// have no map stage yet (getMissingAncestorShuffleDependencies), deepest
// first.
func (s *State) missingAncestorShuffles(g *plan.Graph, node int) []plan.Dep {
	var ancestors []plan.Dep
	visited := map[int]bool{}
	waiting := []int{node}
	for len(waiting) > 0 {
		n := waiting[0]
		waiting = waiting[1:]
		if visited[n] {
			continue
		}
		visited[n] = true
		for _, d := range g.ShuffleDeps(n) {
			if _, ok := s.byKey[d.Shuffle.Key]; !ok {
				ancestors = append([]plan.Dep{d}, ancestors...)
				waiting = append([]int{d.Parent}, waiting...)
			}
		}
	}
	return ancestors
}

func (s *State) createShuffleMapStage(g *plan.Graph, d plan.Dep, firstJob JobID) *stage {
	parents := s.getOrCreateParentStages(g, g.ShuffleDeps(d.Parent), firstJob)
	st := s.newStage(g, d.Parent, parents, firstJob)
	st.isMap = true
	st.nTasks = g.Nodes[d.Parent].Partitions
	s.initTasks(st)
	sh := &shuffle{
		id:       s.nextShuffle,
		key:      d.Shuffle.Key,
		maps:     st.nTasks,
		reducers: d.Shuffle.Partitioner.Partitions,
		stage:    st.id,
		outputs:  make([]mapOutput, st.nTasks),
	}
	s.nextShuffle++
	s.shuffles[sh.id] = sh
	s.byKey[sh.key] = sh.id
	st.shuffle = sh.id
	return st
}

// updateJobStages records that job needs st and its ancestors
// (updateJobIdStageIdMaps).
func (s *State) updateJobStages(id JobID, st *stage) {
	j := s.jobs[id]
	todo := []*stage{st}
	for len(todo) > 0 {
		x := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		x.jobs.add(uint64(id))
		j.stages.add(uint64(x.id))
		for _, p := range x.parents {
			if ps := s.stages[p]; !ps.jobs.has(uint64(id)) {
				todo = append(todo, ps)
			}
		}
	}
}

// submitStage submits a stage, or its missing parents first and the stage
// to the waiting set (Spark's submitStage).
func (s *State) submitStage(st *stage) {
	jobID, ok := s.activeJob(st)
	if !ok {
		s.abortStage(st, fmt.Sprintf("No active job for stage %d", st.id))
		return
	}
	id := uint64(st.id)
	if s.waiting.has(id) || s.running.has(id) || s.failed.has(id) {
		return
	}
	var missing []*stage
	for _, p := range s.neededParents(st) {
		if ps := s.stages[p]; !s.available(ps) {
			missing = append(missing, ps)
		}
	}
	if len(missing) == 0 {
		s.submitMissingTasks(st, jobID)
		return
	}
	for _, p := range missing {
		s.submitStage(p)
	}
	s.waiting.add(id)
}

// submitMissingTasks starts a new attempt of a stage over its missing
// tasks: the durable half of creating a TaskSet.
func (s *State) submitMissingTasks(st *stage, job JobID) {
	var coalesced string
	if st.attempt < 0 && st.adaptive > 0 {
		coalesced = s.coalesce(st)
	}
	missing := s.missingTasks(st)
	s.running.add(uint64(st.id))
	st.attempt++
	st.epoch = s.epoch
	st.zombie = false
	clear(st.pending)
	clear(st.fails)
	st.resetExclusions()
	st.durs, st.lostOn = durations{}, nil
	for _, t := range missing {
		st.pending.set(t)
	}
	st.npend = len(missing)
	st.submitted = s.now
	st.completed = 0
	s.events = append(s.events, Event{Kind: StageSubmitted, Job: job, Stage: st.id, Attempt: st.attempt, Tasks: len(missing), Message: coalesced})
	if len(missing) > 0 {
		return
	}
	// Nothing to run: the stage is done already.
	s.markStageFinished(st, "")
	if !st.isMap {
		if j := s.jobs[st.job]; j.numFinished == j.nTasks {
			s.jobSucceeded(j)
		}
		return
	}
	s.mapStageJobsFinished(st)
	s.submitWaitingChildStages(st)
}

// markStageFinished ends a stage's run; a successful end clears its
// consecutive fetch-failure count.
func (s *State) markStageFinished(st *stage, errMsg string) {
	s.running.remove(uint64(st.id))
	job, _ := s.activeJob(st)
	if errMsg == "" {
		st.failedAttempts = nil
		s.events = append(s.events, Event{Kind: StageCompleted, Job: job, Stage: st.id, Attempt: st.attempt})
	} else {
		s.events = append(s.events, Event{Kind: StageAttemptFailed, Job: job, Stage: st.id, Attempt: st.attempt, Message: errMsg})
	}
	st.completed = s.now
}

// submitWaitingChildStages submits the waiting stages that read parent,
// in first-job order (ties by id).
func (s *State) submitWaitingChildStages(parent *stage) {
	var children []*stage
	for _, id := range s.waiting {
		c := s.stages[StageID(id)]
		for _, p := range c.parents {
			if p == parent.id {
				children = append(children, c)
				break
			}
		}
	}
	for _, c := range children {
		s.waiting.remove(uint64(c.id))
	}
	sort.Slice(children, func(a, b int) bool {
		if children[a].first != children[b].first {
			return children[a].first < children[b].first
		}
		return children[a].id < children[b].id
	})
	for _, c := range children {
		s.submitStage(c)
	}
}

// resubmitFailedStages resubmits the failed stages in first-job order.
func (s *State) resubmitFailedStages() Result {
	s.resubmit = false
	if len(s.failed) == 0 {
		return Result{Ignored: "no failed stages"}
	}
	failed := make([]*stage, 0, len(s.failed))
	for _, id := range s.failed {
		failed = append(failed, s.stages[StageID(id)])
	}
	s.failed = nil
	sort.Slice(failed, func(a, b int) bool {
		if failed[a].first != failed[b].first {
			return failed[a].first < failed[b].first
		}
		return failed[a].id < failed[b].id
	})
	for _, st := range failed {
		// An earlier resubmission in this loop may have ended the jobs
		// that needed it.
		if s.stages[st.id] == st {
			s.submitStage(st)
		}
	}
	return Result{}
}
