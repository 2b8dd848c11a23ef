package dag

import (
	"fmt"

	"github.com/baton-sched/baton/plan"
)

// State is the scheduler's replicated state. The zero value is not usable:
// create one with New.
type State struct {
	cfg Config

	// epoch is the MapOutputTracker's epoch: bumped whenever map outputs
	// are lost and whenever a shuffle map stage completes.
	epoch uint64
	// now is the latest command time seen (never decreases).
	now int64

	nextJob     JobID
	nextStage   StageID
	nextShuffle ShuffleID

	jobs      map[JobID]*job
	jobOrder  []JobID // every job in the state, ascending
	stages    map[StageID]*stage
	shuffles  map[ShuffleID]*shuffle
	byKey     map[string]ShuffleID // shuffle key -> id
	executors map[ExecutorID]*executor
	execOrder []ExecutorID // ascending
	// failedEpoch is Spark's executorFailureEpoch: map outputs from tasks
	// with an epoch at or below it are bogus.
	failedEpoch map[ExecutorID]uint64
	idem        map[string]JobID // idempotency key -> job
	// Application-level exclusion (see exclude.go): failures of tasks
	// that then succeeded elsewhere, by executor, and the executors
	// excluded for every task until a time.
	appFailures   map[ExecutorID]int
	excludedUntil map[ExecutorID]int64

	// Spark's waitingStages, runningStages, failedStages. A stage is in at
	// most one of them.
	waiting, running, failed idSet
	// resubmit is set when a fetch failure asks for ResubmitFailedStages
	// and cleared when one is applied.
	resubmit bool

	// cache holds the persisted datasets by key (cache.go);
	// nextCacheGen is the generation the last one created took.
	cache        map[string]*cachedData
	nextCacheGen uint64

	// liveTasks is the sum of the tasks of s.stages and the partitions of
	// s.cache (bounded by cfg.MaxLiveTasks); derived, not in the
	// snapshot.
	liveTasks int

	// drop collects, during one Apply, the blocks that became obsolete.
	drop Dropped
	// events collects, during one Apply, the transitions it made.
	events []Event
}

type job struct {
	id     JobID
	name   string
	key    string
	pool   string
	graph  *plan.Graph
	parts  []int // output node partitions to compute; nil for all
	nTasks int
	final  StageID
	stages idSet // every stage the job needs (jobIdToStageIds)
	status JobStatus
	msg    string

	finished    []bool
	numFinished int
	results     []ResultRef // by output index, valid where finished
	resultBytes int64
	resultCount int // results counted toward MaxResultSize

	released  bool
	submitted int64
	ended     int64

	maxTaskFailures int   // 0: the state's
	maxResultSize   int64 // 0: the state's; < 0: no limit

	// Task ends logged for the job's stages: successes (duplicates
	// included: a success more than the tasks is a task that ran again)
	// and failures of any reason.
	successes, failures int64

	// Accumulators: of registered successes, once per partition, and of
	// failed attempts, apart (accum.go).
	accs, failedAccs accTable

	group string // the job group ("": none)

	// mapStage: the job runs its final stage, a map stage, alone
	// (submitMapStage); it has no results (nTasks 0).
	mapStage bool
	// adaptive is the job's AdaptiveTarget (0: off), given to the stages
	// it creates.
	adaptive int64
}

func (s *State) jobMaxTaskFailures(j *job) int {
	if j != nil && j.maxTaskFailures > 0 {
		return j.maxTaskFailures
	}
	return s.cfg.MaxTaskFailures
}

func (s *State) jobMaxResultSize(j *job) int64 {
	if j != nil && j.maxResultSize != 0 {
		return j.maxResultSize
	}
	return s.cfg.MaxResultSize
}

// partition returns the output node partition of output index i.
func (j *job) partition(i int) int {
	if j.parts == nil {
		return i
	}
	return j.parts[i]
}

// outputIndex returns the output index of partition p, or -1.
func (j *job) outputIndex(p int) int {
	if j.parts == nil {
		if p >= 0 && p < j.nTasks {
			return p
		}
		return -1
	}
	lo, hi := 0, len(j.parts)
	for lo < hi {
		m := (lo + hi) / 2
		if j.parts[m] < p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(j.parts) && j.parts[lo] == p {
		return lo
	}
	return -1
}

type stage struct {
	id      StageID
	graph   *plan.Graph
	node    int  // the graph node the stage computes
	isMap   bool // a shuffle map stage (else a result stage)
	shuffle ShuffleID
	job     JobID // result stages: their job
	nTasks  int   // map: partitions; result: the job's output count
	parents []StageID
	jobs    idSet // jobs that need this stage (stage.jobIds)
	first   JobID // firstJobId

	// The latest attempt (Spark's latestInfo and its TaskSetManager).
	attempt int // -1 before the first
	epoch   uint64
	zombie  bool   // no more launches for this attempt (fetch failure)
	pending bitset // tasks without a successful end (pendingPartitions)
	npend   int
	fails   []uint16 // counting failures per task in this attempt

	// failedAttempts: attempts that ended in a fetch failure since the
	// stage last completed (Spark's failedAttemptIds).
	failedAttempts idSet

	// commits is the OutputCommitCoordinator's state for this stage:
	// the authorised task per partition (0: none) and attempts known to
	// have failed, which may not commit.
	authorized []TaskID
	// committers are the executors of the authorised attempts.
	committers map[TaskID]ExecutorID
	failedTask map[TaskID]bool

	submitted int64 // latest attempt's submission time
	completed int64 // last completion time (0 while running)

	// Of the current attempt only (see exclude.go and durations.go):
	// the executors each task failed on, by task index; counted failures
	// per executor; successful tasks' durations.
	exclTask map[int][]ExecutorID
	exclExec map[ExecutorID]int
	durs     durations
	// lostOn names, by task index, executors lost while running the task
	// in a way that counted (at most maxLostNames), for the abort message.
	lostOn map[int][]ExecutorID
	// accMerged: the task indices whose accumulator updates were merged
	// (nil until the first); kept across attempts, so that a partition's
	// updates count once (accum.go).
	accMerged bitset

	// adaptive is the coalescing target of the job that created the
	// stage (0: off); coalesced, decided at the first submission, lists
	// the first reducer partition of each task (nil: one task a
	// partition). See adaptive.go.
	adaptive  int64
	coalesced []int
}

type shuffle struct {
	id       ShuffleID
	key      string
	maps     int
	reducers int
	stage    StageID
	outputs  []mapOutput
	avail    int
}

type mapOutput struct {
	exec  ExecutorID // "" when missing
	task  TaskID
	bytes uint64
	sizes []byte
}

type executor struct {
	id         ExecutorID
	addr       string
	cores      int
	funcs      []string
	alive      bool
	registered int64
	lost       int64
	lostReason string
}

// New returns an empty state with the given limits (zero fields take
// their defaults).
func New(cfg Config) *State {
	cfg.ensureDefaults()
	return &State{
		cfg:         cfg,
		jobs:        map[JobID]*job{},
		stages:      map[StageID]*stage{},
		shuffles:    map[ShuffleID]*shuffle{},
		byKey:       map[string]ShuffleID{},
		executors:   map[ExecutorID]*executor{},
		failedEpoch: map[ExecutorID]uint64{},
		idem:        map[string]JobID{},
		cache:       map[string]*cachedData{},
	}
}

// Config returns the state's limits.
func (s *State) Config() Config { return s.cfg }

// Epoch returns the map output epoch.
func (s *State) Epoch() uint64 { return s.epoch }

// Now returns the latest time seen in a command.
func (s *State) Now() int64 { return s.now }

// ResubmitRequested reports whether fetch failures have failed stages
// that wait for a ResubmitFailedStages.
func (s *State) ResubmitRequested() bool { return s.resubmit }

// Apply applies one command. It never panics on a command's content: a
// command that cannot be applied returns Result.Err and changes nothing.
func (s *State) Apply(cmd Command) Result {
	r := s.apply(cmd)
	if len(s.drop.Shuffles) > 0 || len(s.drop.Results) > 0 || len(s.drop.Cached) > 0 {
		d := s.drop
		r.Dropped = &d
		s.drop = Dropped{}
	}
	r.Events, s.events = s.events, nil
	return r
}

func (s *State) apply(cmd Command) Result {
	switch c := cmd.(type) {
	case *TaskEnded:
		s.tick(c.Time)
		return s.taskEnded(c)
	case *SubmitJob:
		s.tick(c.Time)
		return s.submitJob(c)
	case *RegisterExecutor:
		s.tick(c.Time)
		return s.registerExecutor(c)
	case *RemoveExecutor:
		s.tick(c.Time)
		return s.removeExecutor(c)
	case *ResubmitFailedStages:
		s.tick(c.Time)
		return s.resubmitFailedStages()
	case *AuthorizeCommit:
		s.tick(c.Time)
		return s.authorizeCommit(c)
	case *CancelJob:
		s.tick(c.Time)
		return s.cancelJob(c)
	case *CancelJobGroup:
		s.tick(c.Time)
		return s.cancelJobGroup(c)
	case *CancelStage:
		s.tick(c.Time)
		return s.cancelStage(c)
	case *CancelAllJobs:
		s.tick(c.Time)
		return s.cancelAllJobs(c)
	case *ReleaseJob:
		s.tick(c.Time)
		return s.releaseJob(c)
	case *Unpersist:
		s.tick(c.Time)
		return s.unpersist(c)
	case nil:
		return Result{Err: fmt.Errorf("%w: nil command", ErrInvalidCommand)}
	}
	return Result{Err: fmt.Errorf("%w %T", ErrUnknownCommand, cmd)}
}

func (s *State) tick(t int64) {
	if t > s.now {
		s.now = t
		if len(s.excludedUntil) > 0 {
			s.expireExclusions()
		}
	}
}

func (s *State) bumpEpoch() {
	s.epoch++
	s.events = append(s.events, Event{Kind: EpochBumped, Epoch: s.epoch})
}

// activeJob returns the lowest-numbered running job that needs the stage
// (activeJobForStage).
func (s *State) activeJob(st *stage) (JobID, bool) {
	for _, id := range st.jobs {
		if j := s.jobs[JobID(id)]; j != nil && j.status == JobRunning {
			return JobID(id), true
		}
	}
	return 0, false
}

// available reports whether every partition of a map stage's shuffle has
// a registered output (ShuffleMapStage.isAvailable).
func (s *State) available(st *stage) bool {
	sh := s.shuffles[st.shuffle]
	return sh != nil && sh.avail == sh.maps
}

// missingTasks returns the tasks of a stage that still need to run
// (findMissingPartitions): map partitions without an output, result
// outputs not finished.
func (s *State) missingTasks(st *stage) []int {
	var missing []int
	if st.isMap {
		sh := s.shuffles[st.shuffle]
		for p, o := range sh.outputs {
			if o.exec == "" {
				missing = append(missing, p)
			}
		}
		return missing
	}
	j := s.jobs[st.job]
	for i, done := range j.finished {
		if !done {
			missing = append(missing, i)
		}
	}
	return missing
}

func (s *State) addJobOrder(id JobID) { s.jobOrder = append(s.jobOrder, id) }
