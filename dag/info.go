package dag

import (
	"slices"

	"github.com/baton-sched/baton/plan"
)

// JobInfo is a read-only view of a job.
type JobInfo struct {
	ID          JobID
	Name        string
	Key         string
	Pool        string
	Group       string
	Status      JobStatus
	Message     string
	Tasks       int // result partitions to compute
	Finished    int // result partitions finished
	ResultBytes int64
	Released    bool
	Submitted   int64
	Ended       int64
	FinalStage  StageID   // meaningless when Tasks is 0: such a job has no stage
	Stages      []StageID // the stages the job needs, while it holds them
	Graph       *plan.Graph
	Partitions  []int // nil: all partitions of the output node (it aliases the state: do not modify)
	// The job's effective limits.
	MaxTaskFailures int
	MaxResultSize   int64
	// Task ends logged for the job's stages (see job.successes).
	TaskSuccesses, TaskFailures int64
	// Accumulators of the partitions' registered successes, merged once
	// per partition, and of failed attempts, apart (copies; accum.go);
	// the updates dropped past MaxJobAccumulators, of each.
	Accumulators, FailedAccumulators    []Accumulator
	DroppedAccUpdates, DroppedFailedAcc int64
	// MapStage: a map-stage job (SubmitJob.MapStage), which has no
	// results; MapShuffle is the shuffle it runs, while the job holds it
	// (HasMapShuffle), for ShuffleStatistics.
	MapStage      bool
	MapShuffle    ShuffleID
	HasMapShuffle bool
	// Adaptive is the job's coalescing target (0: off).
	Adaptive int64
}

// StageState says where a stage is in the scheduler.
type StageState string

// Stage states.
const (
	StageWaiting StageState = "waiting"
	StageRunning StageState = "running"
	StageFailed  StageState = "failed" // waiting for ResubmitFailedStages
	StageIdle    StageState = "idle"   // none of the above: done, or not needed now
)

// StageInfo is a read-only view of a stage.
type StageInfo struct {
	ID       StageID
	Name     string
	Map      bool
	Shuffle  ShuffleID // map stages: the shuffle they write
	Job      JobID     // result stages: their job
	Jobs     []JobID
	FirstJob JobID
	Parents  []StageID
	State    StageState
	Tasks    int
	Pending  int // tasks of the latest attempt without a successful end
	// Available counts a map stage's registered outputs; a result stage's
	// finished results.
	Available      int
	Attempt        int // latest attempt, -1 before the first
	Epoch          uint64
	Zombie         bool
	FailedAttempts int // consecutive attempts ended by fetch failures
	Submitted      int64
	Completed      int64
	Graph          *plan.Graph
	Node           int
	// Coalesced, for a stage adaptive coalescing merged (adaptive.go),
	// lists the first reducer partition of each task; nil otherwise.
	Coalesced []int
}

// ExecutorInfo is a read-only view of an executor.
type ExecutorInfo struct {
	ID          ExecutorID
	Addr        string
	Cores       int
	Funcs       []string
	Alive       bool
	Registered  int64
	Lost        int64
	LostReason  string
	FailedEpoch uint64 // valid when HasFailed
	HasFailed   bool
}

// MapOutput is one registered map output of a shuffle.
type MapOutput struct {
	Map      int
	Executor ExecutorID
	Task     TaskID
	Bytes    uint64
	Sizes    []byte // compressed per-reducer sizes, or nil
}

// ShuffleInfo is a read-only view of a shuffle.
type ShuffleInfo struct {
	ID        ShuffleID
	Key       string
	Maps      int
	Reducers  int
	Stage     StageID
	Available int
}

// Job returns a job's view.
func (s *State) Job(id JobID) (JobInfo, bool) {
	j := s.jobs[id]
	if j == nil {
		return JobInfo{}, false
	}
	info := JobInfo{
		ID: j.id, Name: j.name, Key: j.key, Pool: j.pool, Group: j.group, Status: j.status, Message: j.msg,
		Tasks: j.nTasks, Finished: j.numFinished, ResultBytes: j.resultBytes, Released: j.released,
		Submitted: j.submitted, Ended: j.ended, FinalStage: j.final, Graph: j.graph,
		Partitions:         j.parts,
		MaxTaskFailures:    s.jobMaxTaskFailures(j),
		MaxResultSize:      s.jobMaxResultSize(j),
		TaskSuccesses:      j.successes,
		TaskFailures:       j.failures,
		Accumulators:       j.accs.info(),
		FailedAccumulators: j.failedAccs.info(),
		DroppedAccUpdates:  j.accs.dropped,
		DroppedFailedAcc:   j.failedAccs.dropped,
	}
	for _, sid := range j.stages {
		info.Stages = append(info.Stages, StageID(sid))
	}
	info.MapStage, info.Adaptive = j.mapStage, j.adaptive
	info.MapShuffle, info.HasMapShuffle = s.mapStageShuffle(j)
	return info, true
}

// Jobs returns every job's view, ascending by id.
func (s *State) Jobs() []JobInfo {
	out := make([]JobInfo, 0, len(s.jobOrder))
	for _, id := range s.jobOrder {
		info, _ := s.Job(id)
		out = append(out, info)
	}
	return out
}

// JobByKey returns the job submitted with an idempotency key.
func (s *State) JobByKey(key string) (JobID, bool) {
	id, ok := s.idem[key]
	return id, ok
}

// Results returns a job's finished results by output index; an entry of
// an unfinished partition has Size 0 and no location (Finished says
// which). Direct results alias the state: do not modify them.
func (s *State) Results(id JobID) (refs []ResultRef, finished []bool, ok bool) {
	j := s.jobs[id]
	if j == nil {
		return nil, nil, false
	}
	if j.results == nil {
		return nil, nil, true
	}
	return append([]ResultRef(nil), j.results...), append([]bool(nil), j.finished...), true
}

// EachResult calls fn with each finished result of a job, in output
// order, until fn returns false; it reports whether the job holds results.
// A result's Data aliases the state: do not modify it or keep it beyond the
// read.
func (s *State) EachResult(id JobID, fn func(r ResultRef) bool) bool {
	j := s.jobs[id]
	if j == nil || j.results == nil {
		return false
	}
	for i, done := range j.finished {
		if done && !fn(j.results[i]) {
			break
		}
	}
	return true
}

// Stage returns a stage's view.
func (s *State) Stage(id StageID) (StageInfo, bool) {
	st := s.stages[id]
	if st == nil {
		return StageInfo{}, false
	}
	info := StageInfo{
		ID: st.id, Name: s.stageName(st), Map: st.isMap, Shuffle: st.shuffle, Job: st.job,
		FirstJob: st.first, Parents: append([]StageID(nil), st.parents...), Tasks: st.nTasks,
		Pending: st.npend, Attempt: st.attempt, Epoch: st.epoch, Zombie: st.zombie,
		FailedAttempts: len(st.failedAttempts), Submitted: st.submitted, Completed: st.completed,
		Graph: st.graph, Node: st.node, State: StageIdle,
		Coalesced: slices.Clone(st.coalesced),
	}
	for _, j := range st.jobs {
		info.Jobs = append(info.Jobs, JobID(j))
	}
	switch id := uint64(st.id); {
	case s.waiting.has(id):
		info.State = StageWaiting
	case s.running.has(id):
		info.State = StageRunning
	case s.failed.has(id):
		info.State = StageFailed
	}
	if st.isMap {
		info.Available = s.shuffles[st.shuffle].avail
	} else {
		info.Available = s.jobs[st.job].numFinished
	}
	return info, true
}

// Stages returns every stage's view, ascending by id.
func (s *State) Stages() []StageInfo {
	ids := make([]StageID, 0, len(s.stages))
	for id := range s.stages {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]StageInfo, 0, len(ids))
	for _, id := range ids {
		info, _ := s.Stage(id)
		out = append(out, info)
	}
	return out
}

// StageActive reports whether tasks of this stage attempt may still
// usefully run: the stage exists, a running job needs it, and the attempt
// is its latest. A driver kills running attempts for which it is false.
func (s *State) StageActive(id StageID, attempt int) bool {
	st := s.stages[id]
	if st == nil {
		return false
	}
	if _, ok := s.activeJob(st); !ok {
		return false
	}
	return attempt == st.attempt
}

// Executor returns an executor's view.
func (s *State) Executor(id ExecutorID) (ExecutorInfo, bool) {
	e := s.executors[id]
	if e == nil {
		return ExecutorInfo{}, false
	}
	fe, failed := s.failedEpoch[id]
	return ExecutorInfo{
		ID: e.id, Addr: e.addr, Cores: e.cores, Funcs: append([]string(nil), e.funcs...), Alive: e.alive,
		Registered: e.registered, Lost: e.lost, LostReason: e.lostReason, FailedEpoch: fe, HasFailed: failed,
	}, true
}

// Executors returns every executor's view, ascending by id.
func (s *State) Executors() []ExecutorInfo {
	out := make([]ExecutorInfo, 0, len(s.execOrder))
	for _, id := range s.execOrder {
		info, _ := s.Executor(id)
		out = append(out, info)
	}
	return out
}

// Shuffle returns a shuffle's view.
func (s *State) Shuffle(id ShuffleID) (ShuffleInfo, bool) {
	sh := s.shuffles[id]
	if sh == nil {
		return ShuffleInfo{}, false
	}
	return ShuffleInfo{ID: sh.id, Key: sh.key, Maps: sh.maps, Reducers: sh.reducers, Stage: sh.stage, Available: sh.avail}, true
}

// ShuffleByKey returns the id of the live shuffle with a key.
func (s *State) ShuffleByKey(key string) (ShuffleID, bool) {
	id, ok := s.byKey[key]
	return id, ok
}

// MapOutputs returns a shuffle's registered outputs (the locations a
// reducer fetches from), ascending by map partition.
func (s *State) MapOutputs(id ShuffleID) []MapOutput {
	sh := s.shuffles[id]
	if sh == nil {
		return nil
	}
	out := make([]MapOutput, 0, sh.avail)
	for p, o := range sh.outputs {
		if o.exec != "" {
			out = append(out, MapOutput{Map: p, Executor: o.exec, Task: o.task, Bytes: o.bytes, Sizes: o.sizes})
		}
	}
	return out
}

// Waiting, RunningStages and Failed return the scheduling sets.
func (s *State) Waiting() []StageID       { return toStageIDs(s.waiting) }
func (s *State) RunningStages() []StageID { return toStageIDs(s.running) }
func (s *State) Failed() []StageID        { return toStageIDs(s.failed) }

func toStageIDs(set idSet) []StageID {
	out := make([]StageID, len(set))
	for i, id := range set {
		out[i] = StageID(id)
	}
	return out
}

// RunningJobs returns how many jobs are running.
func (s *State) RunningJobs() int { return s.runningJobs() }

// ShuffleStatistics is Spark's MapOutputStatistics of a shuffle: the bytes
// its registered map outputs hold for each reducer, estimated from the
// sizes they carry (within about 10%: each is compressed to a byte); a map
// output without per-reducer sizes (more than MaxSizedReducers reducers)
// counts its total spread evenly. Maps is how many outputs are registered
// (of Shuffle.Maps); nil, false for an unknown shuffle.
func (s *State) ShuffleStatistics(id ShuffleID) (bytesByReducer []uint64, maps int, ok bool) {
	sh := s.shuffles[id]
	if sh == nil {
		return nil, 0, false
	}
	out := make([]uint64, sh.reducers)
	var unsized uint64 // outputs without sizes: spread once, at the end
	for _, o := range sh.outputs {
		if o.exec == "" {
			continue
		}
		maps++
		if len(o.sizes) == sh.reducers {
			for r, b := range o.sizes {
				out[r] += DecompressSize(b)
			}
			continue
		}
		unsized += o.bytes
	}
	if unsized > 0 && sh.reducers > 0 {
		each := unsized / uint64(sh.reducers)
		for r := range out {
			out[r] += each
		}
	}
	return out, maps, true
}
