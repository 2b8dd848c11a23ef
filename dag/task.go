package dag

import (
	"fmt"
	"strings"

	"github.com/baton-sched/baton/blocksize"
)

// MaxSizedReducers is the largest reducer count for which map outputs
// carry per-reducer sizes (Spark switches to HighlyCompressedMapStatus
// above 2000 partitions).
const MaxSizedReducers = blocksize.MaxSizedReducers

// taskIndex returns the task index of a partition in a stage, or -1.
func (s *State) taskIndex(st *stage, partition int) int {
	if st.isMap {
		if partition >= 0 && partition < st.nTasks {
			return partition
		}
		return -1
	}
	return s.jobs[st.job].outputIndex(partition)
}

// taskEnded is handleTaskCompletion together with the durable half of
// TaskSetManager.handleSuccessfulTask/handleFailedTask.
func (s *State) taskEnded(c *TaskEnded) Result {
	st := s.stages[c.Stage]
	if st == nil {
		// The stage ended and was cleaned up (a late or speculative task).
		return Result{Ignored: fmt.Sprintf("stage %d is gone", c.Stage)}
	}
	idx := s.taskIndex(st, c.Partition)
	if idx < 0 {
		return Result{Err: fmt.Errorf("%w: stage %d has no partition %d", ErrInvalidCommand, c.Stage, c.Partition)}
	}
	if err := s.checkTaskEnded(st, c); err != nil {
		return Result{Err: err}
	}
	if c.Reason != Success {
		// An executor sends a report again when the leader died before
		// acknowledging it: a failure counts once (Spark ignores the end
		// of a task already ended).
		if st.failedTask[c.Task] {
			return Result{Ignored: fmt.Sprintf("task %d has already ended: failure reported again", c.Task)}
		}
		s.commitAttemptFailed(st, idx, c.Task)
		s.mergeFailedAccs(st, c)
	}
	if c.Reason != Success || !s.sameReport(st, idx, c) {
		// Count executions, not reports: an executor resends a report a
		// leader died before acknowledging, and that is not a task that
		// ran again.
		for _, jid := range st.jobs {
			if j := s.jobs[JobID(jid)]; j != nil {
				if c.Reason == Success {
					j.successes++
				} else {
					j.failures++
				}
			}
		}
	}
	switch c.Reason {
	case Success:
		// A committed attempt's executor no longer matters to its
		// authorisation (see committersLost).
		delete(st.committers, c.Task)
		s.recordCached(c)
		var excluded []ExecutorID
		if c.StageAttempt == st.attempt && st.pending.has(idx) && s.running.has(uint64(st.id)) {
			// The first success of a task of the current attempt: its
			// duration (speculation) and the executors it failed on
			// (exclusion) count.
			st.durs.add(c.DurationMs)
			excluded = s.noteSuccess(st, idx, c.Time)
		}
		var r Result
		if st.isMap {
			r = s.mapTaskSucceeded(st, idx, c)
		} else {
			r = s.resultTaskSucceeded(st, idx, c)
		}
		r.Excluded = excluded
		return r
	case FetchFailed:
		return s.fetchFailed(st, c)
	case ResultLost:
		// A lost result is reported by whoever failed to read a
		// registered result; for a partition whose result is not
		// registered (already re-running, or a map stage) there is
		// nothing to take back.
		if r := s.finishedResultLost(st, idx, c); r != nil {
			return *r
		}
		return Result{Ignored: fmt.Sprintf("partition %d of stage %d has no registered result to lose", c.Partition, st.id)}
	}
	return s.taskFailed(st, idx, c)
}

// checkTaskEnded rejects a report that cannot be true, before anything
// changes: the executor that sends it may lie.
func (s *State) checkTaskEnded(st *stage, c *TaskEnded) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: task %d of stage %d: %s", ErrInvalidCommand, c.Task, c.Stage, fmt.Sprintf(format, args...))
	}
	if c.Task == 0 {
		// Task ids start at 1: a report of task 0 could not be told
		// from its own resending (a failure counts once by its id).
		return bad("task id 0")
	}
	switch c.Reason {
	case Success:
		if st.isMap {
			sh := s.shuffles[st.shuffle]
			if len(c.MapSizes) != 0 && len(c.MapSizes) != sh.reducers {
				return bad("%d map output sizes for %d reducers", len(c.MapSizes), sh.reducers)
			}
		} else {
			if c.ResultSize < 0 {
				return bad("negative result size")
			}
			if !c.Indirect && int64(len(c.Result)) != c.ResultSize && c.Result != nil {
				return bad("direct result of %d bytes reported as %d", len(c.Result), c.ResultSize)
			}
		}
		if c.Executor == "" {
			return bad("success without an executor")
		}
	case FetchFailed:
		sh := s.shuffles[c.FetchShuffle]
		if sh == nil {
			return bad("fetch failure on unknown shuffle %d", c.FetchShuffle)
		}
		if c.FetchMap < -1 || c.FetchMap >= sh.maps {
			return bad("fetch failure on map %d of shuffle %d with %d maps", c.FetchMap, sh.id, sh.maps)
		}
		reads := false
		for _, p := range st.parents {
			if p == sh.stage {
				reads = true
			}
		}
		if !reads {
			return bad("fetch failure on shuffle %d, which stage %d does not read", sh.id, st.id)
		}
		if c.FetchExecutor != "" && s.executors[c.FetchExecutor] == nil {
			return bad("fetch failure from executor %s, which was never registered", c.FetchExecutor)
		}
	case Exception, ResultLost, Killed, ExecutorLost, CommitDenied:
	default:
		return bad("unknown reason %d", c.Reason)
	}
	if err := CheckAccumulators(c.Accumulators); err != nil {
		return bad("%v", err)
	}
	if len(c.Cached) > 0 && c.Reason != Success {
		return bad("cached partitions with a %s end", c.Reason)
	}
	if err := checkCached(st, c.Partition, c.Cached); err != nil {
		return bad("%v", err)
	}
	// Tasks are launched with the epoch of their stage attempt, never one
	// the state has not reached.
	if c.Epoch > s.epoch {
		return bad("epoch %d is ahead of the current epoch %d", c.Epoch, s.epoch)
	}
	return nil
}

// sameReport reports whether a success repeats the report already
// registered for the partition (same task).
func (s *State) sameReport(st *stage, idx int, c *TaskEnded) bool {
	if st.isMap {
		o := s.shuffles[st.shuffle].outputs[idx]
		return o.exec != "" && o.task == c.Task
	}
	j := s.jobs[st.job]
	return j.results != nil && j.finished[idx] && j.results[idx].Task == c.Task
}

// mapTaskSucceeded registers a map output unless it is bogus, and
// completes the stage when no partition pends.
func (s *State) mapTaskSucceeded(st *stage, idx int, c *TaskEnded) Result {
	if st.pending.has(idx) {
		st.pending.clear(idx)
		st.npend--
	}
	sh := s.shuffles[st.shuffle]
	var ignored string
	e := s.executors[c.Executor]
	switch fe, lost := s.failedEpoch[c.Executor]; {
	case lost && c.Epoch <= fe:
		ignored = fmt.Sprintf("possibly bogus map output from executor %s (task epoch %d, executor failed at epoch %d)", c.Executor, c.Epoch, fe)
	case e == nil || !e.alive:
		ignored = fmt.Sprintf("map output from executor %s, which is not registered", c.Executor)
	case sh.outputs[idx].exec != "":
		ignored = fmt.Sprintf("duplicate map output for partition %d of shuffle %d", idx, sh.id)
	default:
		sh.outputs[idx] = mapOutput{exec: c.Executor, task: c.Task, bytes: c.MapBytes, sizes: c.MapSizes}
		sh.avail++
		s.mergeSuccessAccs(st, idx, c)
	}
	if s.running.has(uint64(st.id)) && st.npend == 0 {
		s.shuffleMapStageCompleted(st)
	}
	return Result{Ignored: ignored}
}

// shuffleMapStageCompleted is processShuffleMapStageCompletion.
func (s *State) shuffleMapStageCompleted(st *stage) {
	s.markStageFinished(st, "")
	s.bumpEpoch()
	if !s.available(st) {
		// Some tasks' outputs were lost or ignored: run them again.
		s.submitStage(st)
		return
	}
	s.mapStageJobsFinished(st)
	s.submitWaitingChildStages(st)
}

// resultTaskSucceeded stores a result and ends the job with its last one.
func (s *State) resultTaskSucceeded(st *stage, idx int, c *TaskEnded) Result {
	j := s.jobs[st.job]
	if j.status != JobRunning {
		return Result{Ignored: fmt.Sprintf("job %d has %s", j.id, j.status)}
	}
	if j.finished[idx] {
		return Result{Ignored: fmt.Sprintf("duplicate result for partition %d of job %d", c.Partition, j.id)}
	}
	size := c.ResultSize
	if !c.Indirect && c.Result != nil {
		size = int64(len(c.Result))
	}
	// canFetchMoreResults: the job's results must fit in MaxResultSize.
	if max := s.jobMaxResultSize(j); max > 0 && j.resultBytes+size > max {
		total, limit := bytesString(j.resultBytes+size), bytesString(max)
		if total == limit {
			// Rounded alike: show the bytes.
			total, limit = fmt.Sprintf("%d bytes", j.resultBytes+size), fmt.Sprintf("%d bytes", max)
		}
		msg := fmt.Sprintf("Total size of serialized results of %d tasks (%s) is bigger than maxResultSize (%s)",
			j.resultCount+1, total, limit)
		if st.pending.has(idx) {
			st.pending.clear(idx)
			st.npend--
		}
		s.abortStage(st, msg)
		return Result{}
	}
	if c.Indirect {
		if e := s.executors[c.Executor]; e == nil || !e.alive {
			// The block holding the result is gone with its executor.
			c2 := *c
			c2.Reason = ResultLost
			c2.Message = fmt.Sprintf("indirect result on executor %s, which is not registered", c.Executor)
			s.commitAttemptFailed(st, idx, c.Task)
			return s.taskFailed(st, idx, &c2)
		}
	}
	if st.pending.has(idx) {
		st.pending.clear(idx)
		st.npend--
	}
	j.finished[idx] = true
	j.numFinished++
	ref := ResultRef{Job: j.id, Partition: c.Partition, Size: size, Indirect: c.Indirect, Executor: c.Executor, Task: c.Task}
	if !c.Indirect {
		ref.Data = c.Result
	}
	j.results[idx] = ref
	j.resultBytes += size
	j.resultCount++
	s.mergeSuccessAccs(st, idx, c)
	if j.numFinished == j.nTasks {
		s.markStageFinished(st, "")
		s.jobSucceeded(j)
	}
	return Result{}
}

// taskFailed is handleFailedTask for a failure that is not a fetch
// failure: the partition pends again (the driver relaunches it) and, for
// a counting reason, the failure is counted toward MaxTaskFailures.
// maxLostNames bounds the executor losses an abort message names per task.
const maxLostNames = 8

func (s *State) taskFailed(st *stage, idx int, c *TaskEnded) Result {
	if c.StageAttempt != st.attempt || st.zombie || !s.running.has(uint64(st.id)) {
		return Result{Ignored: fmt.Sprintf("failure from stage %d attempt %d, which is no longer active", st.id, c.StageAttempt)}
	}
	if !st.pending.has(idx) {
		return Result{Ignored: fmt.Sprintf("partition %d of stage %d has already succeeded", c.Partition, st.id)}
	}
	if !c.Counts() {
		return Result{}
	}
	if st.fails[idx] < 0xffff {
		st.fails[idx]++
	}
	s.noteFailure(st, idx, c.Executor)
	if c.Reason == ExecutorLost && len(st.lostOn[idx]) < maxLostNames {
		if st.lostOn == nil {
			st.lostOn = map[int][]ExecutorID{}
		}
		st.lostOn[idx] = append(st.lostOn[idx], c.Executor)
	}
	var limitJob *job
	if jid, ok := s.activeJob(st); ok {
		limitJob = s.jobs[jid]
	}
	if int(st.fails[idx]) >= s.jobMaxTaskFailures(limitJob) {
		reason := c.Message
		if reason == "" {
			reason = c.Reason.String()
		}
		msg := fmt.Sprintf("Task %d in stage %d.%d failed %d times, most recent failure: Lost task %d.%d in stage %d.%d (TID %d) (executor %s): %s",
			c.Partition, st.id, st.attempt, st.fails[idx], c.Partition, c.Attempt, st.id, st.attempt, c.Task, c.Executor, reason)
		if lost := st.lostOn[idx]; len(lost) > 0 {
			names := make([]string, len(lost))
			for i, e := range lost {
				names[i] = string(e)
			}
			msg += fmt.Sprintf(" (%d of the %d failures were executor losses: %s)", len(lost), st.fails[idx], strings.Join(names, ", "))
		}
		s.abortStage(st, msg)
	}
	return Result{}
}

// finishedResultLost handles a ResultLost for a partition whose result was
// registered (the collect could not read it): the result is dropped and
// the partition runs again. It returns nil when the report is about a
// partition that has not finished, which taskFailed handles.
func (s *State) finishedResultLost(st *stage, idx int, c *TaskEnded) *Result {
	if st.isMap {
		return nil
	}
	j := s.jobs[st.job]
	if j.released || j.status == JobFailed || j.status == JobCancelled || !j.finished[idx] {
		return nil
	}
	if ref := j.results[idx]; !ref.Indirect || ref.Task != c.Task {
		return &Result{Ignored: fmt.Sprintf("result of partition %d of job %d is not task %d's", c.Partition, j.id, c.Task)}
	}
	s.unfinishResults(j, []int{idx})
	// A lost result counts as a failure of the task that runs it again
	// (Spark counts TaskResultLost), so a result that is lost again and
	// again ends the job instead of running forever.
	if s.running.has(uint64(st.id)) && !st.zombie && st.pending.has(idx) {
		c2 := *c
		c2.StageAttempt = st.attempt
		r := s.taskFailed(st, idx, &c2)
		return &r
	}
	return &Result{}
}

// fetchFailed is the FetchFailed branch of handleTaskCompletion.
func (s *State) fetchFailed(st *stage, c *TaskEnded) Result {
	if c.StageAttempt != st.attempt {
		return Result{Ignored: fmt.Sprintf("fetch failure from stage %d attempt %d; attempt %d is the latest", st.id, c.StageAttempt, st.attempt)}
	}
	if _, ok := s.activeJob(st); !ok {
		// The stage's jobs have ended (Spark has removed the stage by now).
		return Result{Ignored: fmt.Sprintf("fetch failure from stage %d, which no running job needs", st.id)}
	}
	sh := s.shuffles[c.FetchShuffle]
	mapStage := s.stages[sh.stage]
	st.failedAttempts.add(uint64(c.StageAttempt))
	abort := len(st.failedAttempts) >= s.cfg.MaxConsecutiveStageAttempts
	reason := fetchFailureMessage(c)
	if s.running.has(uint64(st.id)) {
		s.markStageFinished(st, reason)
	}
	// The task set is a zombie: it launches nothing more.
	st.zombie = true
	if c.FetchMap >= 0 {
		if o := &sh.outputs[c.FetchMap]; o.exec != "" && o.exec == c.FetchExecutor {
			*o = mapOutput{}
			sh.avail--
		}
	}
	if abort {
		s.abortStage(st, fmt.Sprintf("Stage %d (%s) has failed the maximum allowable number of times: %d. Most recent failure reason: %s",
			st.id, s.stageName(st), s.cfg.MaxConsecutiveStageAttempts, reason))
	} else {
		// Several tasks of one attempt may fail to fetch: ask for one
		// resubmission, not one per failure.
		for _, x := range []*stage{st, mapStage} {
			id := uint64(x.id)
			if !s.waiting.has(id) && !s.running.has(id) && !s.failed.has(id) {
				s.failed.add(id)
				s.resubmit = true
			}
		}
	}
	if c.FetchExecutor != "" {
		// The source executor's outputs are treated as lost (no external
		// shuffle service), at the failed task's epoch.
		s.executorOutputsLost(c.FetchExecutor, c.Epoch, false)
	}
	return Result{}
}

func fetchFailureMessage(c *TaskEnded) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FetchFailed(%s, shuffle=%d, map=%d, reduce=%d", c.FetchExecutor, c.FetchShuffle, c.FetchMap, c.FetchReduce)
	if c.Message != "" {
		fmt.Fprintf(&b, ", message=%s", c.Message)
	}
	b.WriteString(")")
	return b.String()
}

func (s *State) stageName(st *stage) string {
	name := st.graph.Nodes[st.node].Name
	if name == "" {
		name = st.graph.Nodes[st.node].Op
	}
	return name
}

// bytesString formats a byte count as Spark's Utils.bytesToString.
func bytesString(n int64) string {
	const (
		kib = 1 << 10
		mib = 1 << 20
		gib = 1 << 30
		tib = 1 << 40
	)
	switch {
	case n >= 2*tib:
		return fmt.Sprintf("%.1f TiB", float64(n)/tib)
	case n >= 2*gib:
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	case n >= 2*mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	case n >= 2*kib:
		return fmt.Sprintf("%.1f KiB", float64(n)/kib)
	}
	return fmt.Sprintf("%d.0 B", n)
}
