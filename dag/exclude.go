package dag

import (
	"slices"
	"sort"
)

// Exclusion (Spark's excludeOnFailure: TaskSetExcludelist and
// HealthTracker) follows from the log, so that every replica and every
// leader agrees on it: a leader taking over keeps a failed task off the
// executor it failed on exactly as the leader before it did. Failures
// that count toward MaxTaskFailures (see TaskEnded.Counts) feed it, at
// three levels:
//
//   - a task (a partition of the current stage attempt) does not run again
//     on an executor it failed on (Spark's
//     spark.excludeOnFailure.task.maxTaskAttemptsPerExecutor = 1);
//   - an executor on which MaxFailuresPerExecutor tasks of the current
//     stage attempt failed gets no more of its tasks (the stage level,
//     spark.excludeOnFailure.stage.maxFailedTasksPerExecutor);
//   - an executor on which MaxFailuresPerExecutor tasks failed that then
//     succeeded elsewhere (the failure was the executor's, not the task's)
//     gets no task for ExcludeTimeout, measured with the command times
//     (the application level, spark.excludeOnFailure.application.*).
//
// What a stage attempt learnt ends with it (a new attempt starts clean, as
// a new TaskSetManager does). The leader asks StageExclusions and
// ExcludedExecutors when it places tasks; a task all of whose possible
// executors are excluded runs anyway (the leader's choice, not the
// state's).

// exclusionOn reports whether exclusion is configured.
func (s *State) exclusionOn() bool { return s.cfg.MaxFailuresPerExecutor > 0 }

// noteFailure records a counted failure of a task of st's current attempt
// on an executor.
func (s *State) noteFailure(st *stage, idx int, exec ExecutorID) {
	if !s.exclusionOn() || exec == "" {
		return
	}
	// The maps are nil when empty, so that a restored state equals the
	// original (see the snapshot's round trip).
	if st.exclTask == nil {
		st.exclTask = map[int][]ExecutorID{}
	}
	if st.exclExec == nil {
		st.exclExec = map[ExecutorID]int{}
	}
	if !slices.Contains(st.exclTask[idx], exec) {
		st.exclTask[idx] = append(st.exclTask[idx], exec)
	}
	st.exclExec[exec]++
}

// noteSuccess records a success of a task of st's current attempt: the
// executors it failed on before count toward the application level. It
// returns the executors newly excluded for every task.
func (s *State) noteSuccess(st *stage, idx int, at int64) []ExecutorID {
	failed := st.exclTask[idx]
	if len(failed) == 0 {
		return nil
	}
	delete(st.exclTask, idx)
	if len(st.exclTask) == 0 {
		st.exclTask = nil
	}
	var newly []ExecutorID
	for _, exec := range failed {
		if s.appFailures == nil {
			s.appFailures = map[ExecutorID]int{}
		}
		s.appFailures[exec]++
		if s.appFailures[exec] >= s.cfg.MaxFailuresPerExecutor {
			delete(s.appFailures, exec)
			if s.excludedUntil == nil {
				s.excludedUntil = map[ExecutorID]int64{}
			}
			s.excludedUntil[exec] = at + s.cfg.ExcludeTimeout
			newly = append(newly, exec)
		}
	}
	if len(s.appFailures) == 0 {
		s.appFailures = nil
	}
	return newly
}

// resetExclusions forgets what a stage's previous attempt learnt.
func (st *stage) resetExclusions() { st.exclTask, st.exclExec = nil, nil }

// expireExclusions ends the application-level exclusions whose time has
// come (the state's time is that of the commands).
func (s *State) expireExclusions() {
	for exec, until := range s.excludedUntil {
		if until <= s.now {
			delete(s.excludedUntil, exec)
		}
	}
	if len(s.excludedUntil) == 0 {
		s.excludedUntil = nil
	}
}

// StageExclusions returns, for a stage attempt, the executors excluded
// for all its tasks and, by partition, those excluded for one task. Both
// are copies; they are empty for an attempt that is not the stage's
// current one.
func (s *State) StageExclusions(id StageID, attempt int) (all []ExecutorID, byPartition map[int][]ExecutorID) {
	st := s.stages[id]
	if st == nil || st.attempt != attempt || !s.exclusionOn() {
		return nil, nil
	}
	for exec, n := range st.exclExec {
		if n >= s.cfg.MaxFailuresPerExecutor {
			all = append(all, exec)
		}
	}
	slices.Sort(all)
	if len(st.exclTask) > 0 {
		byPartition = make(map[int][]ExecutorID, len(st.exclTask))
		for idx, execs := range st.exclTask {
			p := idx
			if j := s.jobs[st.job]; !st.isMap && j != nil && j.parts != nil {
				p = j.parts[idx]
			}
			byPartition[p] = slices.Clone(execs)
		}
	}
	return all, byPartition
}

// ExcludedExecutors returns the executors excluded for every task at time
// now (Unix nanoseconds), sorted, with the time each exclusion ends.
func (s *State) ExcludedExecutors(now int64) []ExcludedExecutor {
	var out []ExcludedExecutor
	for exec, until := range s.excludedUntil {
		if until > now {
			out = append(out, ExcludedExecutor{ID: exec, Until: until})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// ExcludedExecutor is an executor excluded for every task until a time
// (Unix nanoseconds).
type ExcludedExecutor struct {
	ID    ExecutorID
	Until int64
}

// encodeExclusions appends the application-level exclusion state.
func (e *encoder) exclusions(s *State) {
	for _, m := range []map[ExecutorID]int64{intMap(s.appFailures), s.excludedUntil} {
		ids := make([]ExecutorID, 0, len(m))
		for id := range m {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		e.uint(uint64(len(ids)))
		for _, id := range ids {
			e.str(string(id))
			e.int(m[id])
		}
	}
}

func intMap(m map[ExecutorID]int) map[ExecutorID]int64 {
	out := make(map[ExecutorID]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

// exclusions reads what encoder.exclusions wrote.
func (d *decoder) exclusions(s *State) {
	if n := d.count(); n > 0 {
		s.appFailures = make(map[ExecutorID]int, n)
		for ; n > 0 && d.err == nil; n-- {
			id := ExecutorID(d.str())
			s.appFailures[id] = int(d.int())
		}
	}
	if n := d.count(); n > 0 {
		s.excludedUntil = make(map[ExecutorID]int64, n)
		for ; n > 0 && d.err == nil; n-- {
			id := ExecutorID(d.str())
			s.excludedUntil[id] = d.int()
		}
	}
}

// stageExclusions appends a stage's exclusion state: by task index, the
// executors each task failed on (in the order of the failures), then the
// failures per executor.
func (e *encoder) stageExclusions(st *stage) {
	idxs := make([]int, 0, len(st.exclTask))
	for i := range st.exclTask {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	e.uint(uint64(len(idxs)))
	for _, i := range idxs {
		e.uint(uint64(i))
		e.uint(uint64(len(st.exclTask[i])))
		for _, id := range st.exclTask[i] {
			e.str(string(id))
		}
	}
	ids := make([]ExecutorID, 0, len(st.exclExec))
	for id := range st.exclExec {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	e.uint(uint64(len(ids)))
	for _, id := range ids {
		e.str(string(id))
		e.uint(uint64(st.exclExec[id]))
	}
}

// stageExclusions reads what encoder.stageExclusions wrote.
func (d *decoder) stageExclusions(st *stage) {
	if n := d.count(); n > 0 {
		st.exclTask = make(map[int][]ExecutorID, n)
		for ; n > 0 && d.err == nil; n-- {
			i := d.index(st.nTasks)
			for m := d.count(); m > 0 && d.err == nil; m-- {
				st.exclTask[i] = append(st.exclTask[i], ExecutorID(d.str()))
			}
		}
	}
	if n := d.count(); n > 0 {
		st.exclExec = make(map[ExecutorID]int, n)
		for ; n > 0 && d.err == nil; n-- {
			id := ExecutorID(d.str())
			st.exclExec[id] = d.int32()
		}
	}
}

// lostOn appends the executor losses a stage's tasks counted, by task
// index.
func (e *encoder) lostOn(st *stage) {
	idxs := make([]int, 0, len(st.lostOn))
	for i := range st.lostOn {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	e.uint(uint64(len(idxs)))
	for _, i := range idxs {
		e.uint(uint64(i))
		e.uint(uint64(len(st.lostOn[i])))
		for _, id := range st.lostOn[i] {
			e.str(string(id))
		}
	}
}

// lostOn reads what encoder.lostOn wrote.
func (d *decoder) lostOn(st *stage) {
	if n := d.count(); n > 0 {
		st.lostOn = make(map[int][]ExecutorID, n)
		for ; n > 0 && d.err == nil; n-- {
			i := d.index(st.nTasks)
			for m := d.count(); m > 0 && d.err == nil; m-- {
				st.lostOn[i] = append(st.lostOn[i], ExecutorID(d.str()))
			}
		}
	}
}
