package dag

import (
	"errors"
	"fmt"

	"github.com/baton-sched/baton/plan"
)

// Identifiers. Job, stage and shuffle ids are assigned by the state in
// order, from 0. Task ids are assigned by the leader's driver when it
// launches an attempt (they embed the leader's term, so two leaders never
// hand out the same id); the state only records them.
type (
	JobID      uint64
	StageID    uint64
	ShuffleID  uint64
	TaskID     uint64
	ExecutorID string
)

// Config holds the scheduler's limits. Every replica must use the same
// values: they are part of the snapshot.
type Config struct {
	// MaxTaskFailures is how many times one task may fail (counting
	// failures, see Reason.Counts) before its job is aborted
	// (spark.task.maxFailures). Default 4.
	MaxTaskFailures int
	// MaxFailuresPerExecutor is how many counted task failures on one
	// executor exclude it: for the rest of a stage attempt when they are
	// failures of that attempt's tasks, and for every task for
	// ExcludeTimeout when the failed tasks then succeeded elsewhere (see
	// exclude.go; Spark's spark.excludeOnFailure.*). Default 2; negative:
	// no exclusion.
	MaxFailuresPerExecutor int
	// ExcludeTimeout is how long, in nanoseconds of command time, an
	// executor stays excluded for every task. Default one hour.
	ExcludeTimeout int64
	// MaxConsecutiveStageAttempts is how many consecutive attempts of a
	// stage may end in a fetch failure before the stage's jobs are aborted
	// (spark.stage.maxConsecutiveAttempts). Default 4.
	MaxConsecutiveStageAttempts int
	// MaxResultSize bounds the total size of a job's serialized results
	// (spark.driver.maxResultSize); 0 means the default, 1 GiB, and a
	// negative value means no limit.
	MaxResultSize int64
	// RetainedJobs is how many ended, released jobs are kept for history
	// (spark.ui.retainedJobs). Default 1000.
	RetainedJobs int

	// The limits below bound what one command may make the state
	// allocate, so that a command too large for the state is a business
	// error on every replica, never a replica out of memory (schedd's
	// admission limits refuse such jobs before they are logged; these
	// catch what reaches the log by another path). They are limits of
	// this build, not part of the snapshot.

	// MaxGraphNodes bounds the datasets of one job's graph. Default
	// 10,000.
	MaxGraphNodes int
	// MaxJobTasks bounds the tasks one job may create (its result
	// partitions and the map partitions of the shuffles it adds), and
	// the partitions of any one dataset. Default 10,000,000.
	MaxJobTasks int
	// MaxLiveTasks bounds the tasks of all the stages the state holds.
	// Default 20,000,000.
	MaxLiveTasks int
	// MaxRunningJobs bounds the jobs running at once. Default 10,000.
	MaxRunningJobs int
}

// DefaultConfig returns the default limits.
func DefaultConfig() Config {
	c := Config{}
	c.ensureDefaults()
	return c
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.ensureDefaults()
	return c
}

func (c *Config) ensureDefaults() {
	if c.MaxTaskFailures <= 0 {
		c.MaxTaskFailures = 4
	}
	if c.MaxFailuresPerExecutor == 0 {
		c.MaxFailuresPerExecutor = 2
	} else if c.MaxFailuresPerExecutor < 0 {
		c.MaxFailuresPerExecutor = -1
	}
	if c.ExcludeTimeout <= 0 {
		c.ExcludeTimeout = 3600e9
	}
	if c.MaxConsecutiveStageAttempts <= 0 {
		c.MaxConsecutiveStageAttempts = 4
	}
	if c.MaxResultSize == 0 {
		c.MaxResultSize = 1 << 30
	}
	if c.RetainedJobs <= 0 {
		c.RetainedJobs = 1000
	}
	if c.MaxGraphNodes <= 0 {
		c.MaxGraphNodes = 10_000
	}
	if c.MaxJobTasks <= 0 {
		c.MaxJobTasks = 10_000_000
	}
	if c.MaxLiveTasks <= 0 {
		c.MaxLiveTasks = 20_000_000
	}
	if c.MaxRunningJobs <= 0 {
		c.MaxRunningJobs = 10_000
	}
}

// Command is a state transition. Every command carries the time at which
// the leader proposed it (Unix nanoseconds); the state never reads a clock.
type Command interface {
	isCommand()
}

// RegisterExecutor adds an executor, or revives one that was lost
// (Spark's executorAdded: it clears the executor's failed epoch).
type RegisterExecutor struct {
	Time  int64
	ID    ExecutorID
	Addr  string
	Cores int
	// Funcs are the function names the executor's registry holds.
	Funcs []string
}

// RemoveExecutor declares an executor lost (handleExecutorLost): its map
// outputs are unregistered, the epoch is bumped, running map stages
// re-pend the partitions they lost, and unreleased jobs re-pend the result
// partitions whose indirect results lived there.
type RemoveExecutor struct {
	Time   int64
	ID     ExecutorID
	Reason string
}

// SubmitJob submits a job: the compiled graph and the partitions of its
// output node to compute (nil for all).
type SubmitJob struct {
	Time       int64
	Graph      *plan.Graph
	Partitions []int
	// Key, when set, makes the submission idempotent: a second SubmitJob
	// with the same key returns the first job's id.
	Key string
	// Pool is the fair-scheduler pool (empty: the default pool).
	Pool string
	// MaxTaskFailures and MaxResultSize override the state's limits for
	// this job (Spark's per-application spark.task.maxFailures and
	// spark.driver.maxResultSize); zero keeps the state's. A negative
	// MaxResultSize means no limit.
	MaxTaskFailures int
	MaxResultSize   int64
	// Group is the job group (SparkContext.setJobGroup; empty: none):
	// CancelJobGroup cancels the group's running jobs.
	Group string
	// MapStage makes the job run only the map stage of the shuffle its
	// output node reads (SparkContext.submitMapStage): the job has no
	// results and succeeds when every map output of the shuffle is
	// registered; ShuffleStatistics then gives the shuffle's
	// MapOutputStatistics, and later jobs that read the shuffle use its
	// outputs while the job is not released. The output node's stage must
	// read exactly one shuffle, and Partitions must be nil.
	MapStage bool
	// AdaptiveTarget, when positive, turns on adaptive coalescing for the
	// stages the job creates (Spark's adaptive query execution,
	// CoalesceShufflePartitions with advisoryPartitionSizeInBytes): when
	// such a stage is first submitted, its parents' map output statistics
	// are known, and neighbouring reducer partitions are merged into
	// tasks of about AdaptiveTarget bytes of shuffle input (see
	// adaptive.go). Every replica decides alike, from the log.
	AdaptiveTarget int64
}

// TaskEnded records the end of a task attempt (a status update that is
// final: finished, failed, killed, or lost).
type TaskEnded struct {
	Time         int64
	Task         TaskID
	Stage        StageID
	StageAttempt int
	Partition    int
	// Attempt is the attempt number of this partition's task, for messages.
	Attempt  int
	Executor ExecutorID
	// Epoch is the epoch the task was launched with.
	Epoch  uint64
	Reason Reason
	// Message says why a task failed.
	Message string

	// Map tasks: the output's total bytes and, when the shuffle has at
	// most MaxSizedReducers reducers, each reducer's bytes compressed to a
	// byte (CompressSize).
	MapBytes uint64
	MapSizes []byte

	// Result tasks: the serialized result's size, and either the result
	// itself (a direct result) or nothing, when it was kept in the
	// executor's block store (an indirect result, found by Task).
	ResultSize int64
	Result     []byte
	Indirect   bool

	// Fetch failures: the block that could not be fetched. FetchMap is -1
	// when the map output's location was unknown (Spark's
	// MetadataFetchFailedException); FetchExecutor is empty then.
	FetchExecutor ExecutorID
	FetchShuffle  ShuffleID
	FetchMap      int
	FetchReduce   int

	// DurationMs is how long the attempt ran, as its executor measured
	// (for operators, and for speculation: see TaskDurations).
	DurationMs int64
	// ExitCausedByApp, for an ExecutorLost end, says that the loss may
	// have been the task's doing (the executor crashed, was killed by the
	// system or stopped answering while it ran the task), so it counts
	// toward MaxTaskFailures, as Spark's ExecutorLostFailure with
	// exitCausedByApp; false for losses that were not (an operator's
	// removal, a leader change).
	ExitCausedByApp bool
	// Speculative: the attempt was launched as a copy of a slow one.
	Speculative bool
	// Accumulators are the attempt's accumulator updates, ascending by
	// (name, kind) (see accum.go and CheckAccumulators).
	Accumulators []Accumulator
	// Cached lists, for a success, the partitions of persisted datasets
	// the attempt kept in its executor's block store (cache.go).
	Cached []CachedPartition
	// SpilledBytes is what the attempt spilled to disk past its memory
	// budget, as its executor measured (for operators; the state keeps
	// nothing of it).
	SpilledBytes int64
}

// Counts reports whether the end counts toward MaxTaskFailures.
func (c *TaskEnded) Counts() bool {
	return c.Reason.Counts() || (c.Reason == ExecutorLost && c.ExitCausedByApp)
}

// ResubmitFailedStages resubmits the stages failed by fetch failures. The
// leader proposes it about 200 ms after the state asks for it
// (State.ResubmitRequested), as Spark's RESUBMIT_TIMEOUT.
type ResubmitFailedStages struct {
	Time int64
}

// AuthorizeCommit asks whether a task attempt may commit its output for a
// partition (the OutputCommitCoordinator's canCommit): the first attempt to
// ask wins; later ones are denied until the winner fails.
type AuthorizeCommit struct {
	Time         int64
	Stage        StageID
	StageAttempt int
	Partition    int
	Task         TaskID
	// Executor runs the attempt: its loss frees the authorisation.
	Executor ExecutorID
}

// CancelJob cancels a running job and the stages only it needs.
type CancelJob struct {
	Time   int64
	Job    JobID
	Reason string
}

// ReleaseJob drops an ended job's results and the stages and shuffles no
// other job needs; the blocks to delete are returned.
type ReleaseJob struct {
	Time int64
	Job  JobID
}

func (*RegisterExecutor) isCommand()     {}
func (*RemoveExecutor) isCommand()       {}
func (*SubmitJob) isCommand()            {}
func (*TaskEnded) isCommand()            {}
func (*ResubmitFailedStages) isCommand() {}
func (*AuthorizeCommit) isCommand()      {}
func (*CancelJob) isCommand()            {}
func (*ReleaseJob) isCommand()           {}

// Reason is why a task attempt ended.
type Reason uint8

// Task end reasons (Spark's TaskEndReason).
const (
	Success Reason = iota + 1
	// Exception: the task's code failed. Counts toward MaxTaskFailures.
	Exception
	// FetchFailed: a shuffle block could not be fetched.
	FetchFailed
	// ResultLost: the task's indirect result could not be fetched
	// (TaskResultLost). Counts toward MaxTaskFailures.
	ResultLost
	// Killed: the task was killed on request. Does not count.
	Killed
	// ExecutorLost: the task's executor was lost. Counts only when the
	// loss may have been the task's doing (TaskEnded.ExitCausedByApp).
	ExecutorLost
	// CommitDenied: the task was not authorised to commit. Does not count.
	CommitDenied
)

var reasonNames = [...]string{
	Success:      "Success",
	Exception:    "Exception",
	FetchFailed:  "FetchFailed",
	ResultLost:   "ResultLost",
	Killed:       "Killed",
	ExecutorLost: "ExecutorLost",
	CommitDenied: "CommitDenied",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Reasons lists every reason, in order.
var Reasons = []Reason{Success, Exception, FetchFailed, ResultLost, Killed, ExecutorLost, CommitDenied}

var reasonLabels = [...]string{
	Success:      "success",
	Exception:    "exception",
	FetchFailed:  "fetch_failed",
	ResultLost:   "result_lost",
	Killed:       "killed",
	ExecutorLost: "executor_lost",
	CommitDenied: "commit_denied",
}

// Label is the reason as metrics and the API name it ("fetch_failed");
// "unknown" for a value that is no reason.
func (r Reason) Label() string {
	if int(r) < len(reasonLabels) && reasonLabels[r] != "" {
		return reasonLabels[r]
	}
	return "unknown"
}

// Counts reports whether a failure for this reason counts toward
// MaxTaskFailures (Spark's countTowardsTaskFailures).
func (r Reason) Counts() bool { return r == Exception || r == ResultLost }

// Result is what applying a command produced. Err is a business failure
// (unknown job, job not running, ...): the command changed nothing. The
// other fields are set by the commands they name.
type Result struct {
	Err error
	// Ignored says that a TaskEnded was valid but had no effect (a stale
	// attempt, a duplicate, a bogus map output), and why.
	Ignored string
	// Job is the job a SubmitJob created (or found, for a repeated key).
	Job JobID
	// Authorized answers an AuthorizeCommit.
	Authorized bool
	// Dropped lists what a ReleaseJob or a failed or cancelled job made
	// obsolete: blocks executors may delete.
	Dropped *Dropped
	// Excluded lists the executors a TaskEnded's success excluded for
	// every task (see StageExclusions and ExcludedExecutors).
	Excluded []ExecutorID
	// Cancelled lists the jobs a CancelJobGroup or CancelStage cancelled.
	Cancelled []JobID
	// Events are the transitions the command made, in order (for logs
	// and operators; the state does not keep them).
	Events []Event
}

// Event is a scheduler state transition.
type Event struct {
	Kind    EventKind
	Job     JobID
	Stage   StageID
	Attempt int       // StageSubmitted, StageCompleted, StageAttemptFailed
	Tasks   int       // StageSubmitted: the tasks the attempt runs
	Status  JobStatus // JobEnded
	Message string    // StageAttemptFailed, JobEnded: why
	Epoch   uint64    // EpochBumped
	Name    string    // JobSubmitted: the job's name
}

// EventKind says what an Event is.
type EventKind uint8

// Event kinds.
const (
	StageSubmitted     EventKind = iota + 1 // a stage attempt began
	StageCompleted                          // a stage attempt ran all its tasks
	StageAttemptFailed                      // a fetch failure ended a stage attempt (it is resubmitted)
	JobEnded                                // a job succeeded, failed or was cancelled
	EpochBumped                             // map outputs were registered or lost
	JobSubmitted                            // a job was submitted (Tasks: its result partitions)
)

var eventNames = map[EventKind]string{StageSubmitted: "stage submitted", StageCompleted: "stage completed",
	StageAttemptFailed: "stage attempt failed", JobEnded: "job ended", EpochBumped: "epoch bumped", JobSubmitted: "job submitted"}

func (k EventKind) String() string { return eventNames[k] }

// Dropped lists blocks that no live job needs any more.
type Dropped struct {
	Shuffles []ShuffleID
	Results  []ResultRef
	// Cached are persisted datasets unpersisted: every executor deletes
	// the blocks it keeps of them.
	Cached []string
}

// Business errors returned in Result.Err.
var (
	ErrUnknownJob      = errors.New("dag: unknown job")
	ErrUnknownExecutor = errors.New("dag: unknown executor")
	ErrJobNotRunning   = errors.New("dag: job is not running")
	ErrJobNotEnded     = errors.New("dag: job has not ended")
	ErrInvalidGraph    = errors.New("dag: invalid graph")
	ErrInvalidCommand  = errors.New("dag: invalid command")
	// ErrUnknownCommand: a command of a type the state does not apply (it
	// wraps ErrInvalidCommand).
	ErrUnknownCommand = fmt.Errorf("%w: unknown command type", ErrInvalidCommand)
	// ErrTooLarge: a job larger than the state's limits (Config).
	ErrTooLarge = errors.New("dag: over the scheduler's limits")
	// ErrTooManyJobs: MaxRunningJobs jobs are running already.
	ErrTooManyJobs = errors.New("dag: too many running jobs")
	// ErrTooManyTasks: the stages the state holds have MaxLiveTasks tasks
	// between them, with the job's: a condition of the moment (it passes
	// as jobs are released), not a job too large.
	ErrTooManyTasks = errors.New("dag: too many tasks held")
)

// JobStatus is a job's state.
type JobStatus uint8

// Job states.
const (
	JobRunning JobStatus = iota + 1
	JobSucceeded
	JobFailed
	JobCancelled
)

var jobStatusNames = [...]string{
	JobRunning:   "running",
	JobSucceeded: "succeeded",
	JobFailed:    "failed",
	JobCancelled: "cancelled",
}

func (s JobStatus) String() string {
	if int(s) < len(jobStatusNames) && jobStatusNames[s] != "" {
		return jobStatusNames[s]
	}
	return fmt.Sprintf("JobStatus(%d)", uint8(s))
}

// Ended reports whether the job will run no more tasks (unless an
// executor loss takes back results of a succeeded, unreleased job).
func (s JobStatus) Ended() bool { return s != JobRunning }

// ResultRef locates one partition's result: inline (Data) or in an
// executor's block store under the task that produced it.
type ResultRef struct {
	Job       JobID
	Partition int
	Size      int64
	Indirect  bool
	Executor  ExecutorID
	Task      TaskID
	// Data is a direct result. It aliases the state's copy: do not modify.
	Data []byte
}
