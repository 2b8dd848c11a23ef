package dag

import (
	"fmt"
	"sort"
)

// authorizeCommit is the OutputCommitCoordinator's canCommit: the first
// attempt to ask for a (stage, partition) is authorised, later ones are
// denied, and an attempt already known to have failed is denied. Asking
// again with the authorised attempt answers yes again, so an executor may
// repeat its question after a leader change.
func (s *State) authorizeCommit(c *AuthorizeCommit) Result {
	if c.Task == 0 {
		return Result{Err: fmt.Errorf("%w: commit request without a task id", ErrInvalidCommand)}
	}
	st := s.stages[c.Stage]
	if st == nil {
		return Result{Ignored: fmt.Sprintf("stage %d is gone", c.Stage)}
	}
	idx := s.taskIndex(st, c.Partition)
	if idx < 0 {
		return Result{Err: fmt.Errorf("%w: stage %d has no partition %d", ErrInvalidCommand, c.Stage, c.Partition)}
	}
	if st.failedTask[c.Task] {
		return Result{Ignored: fmt.Sprintf("task %d has already failed", c.Task)}
	}
	switch st.authorized[idx] {
	case 0:
		st.authorized[idx] = c.Task
		if c.Executor != "" {
			if st.committers == nil {
				st.committers = map[TaskID]ExecutorID{}
			}
			st.committers[c.Task] = c.Executor
		}
		return Result{Authorized: true}
	case c.Task:
		return Result{Authorized: true}
	}
	return Result{Ignored: fmt.Sprintf("partition %d of stage %d is committed by task %d", c.Partition, c.Stage, st.authorized[idx])}
}

// commitAttemptFailed is the OutputCommitCoordinator's taskCompleted for
// a failed attempt: it may not commit any more, and if it held the
// authorisation, the partition's authorisation is freed.
func (s *State) commitAttemptFailed(st *stage, idx int, task TaskID) {
	if task == 0 {
		return
	}
	if st.failedTask == nil {
		st.failedTask = map[TaskID]bool{}
	}
	st.failedTask[task] = true
	if st.authorized[idx] == task {
		st.authorized[idx] = 0
		delete(st.committers, task)
	}
}

// committersLost fails the authorised attempts that ran on a lost
// executor: a leader that did not launch them (its predecessor did) never
// hears of their end, and their authorisation would otherwise be held
// forever. (Map iteration order does not matter: each attempt is failed
// on its own.)
func (s *State) committersLost(id ExecutorID) {
	for _, st := range s.stages {
		for task, e := range st.committers {
			if e != id {
				continue
			}
			for idx, t := range st.authorized {
				if t == task {
					s.commitAttemptFailed(st, idx, task)
					// This is the attempt's end (its own report, if one
					// comes, repeats it): count it.
					for _, jid := range st.jobs {
						if j := s.jobs[JobID(jid)]; j != nil {
							j.failures++
						}
					}
				}
			}
			delete(st.committers, task)
		}
	}
}

// HeldCommit is an output commit authorisation held by a task attempt.
type HeldCommit struct {
	Stage     StageID
	Partition int
	Task      TaskID
}

// CommitsHeldBy returns the commit authorisations held by attempts that
// ran on an executor, by stage then task. A leader that finds such an
// attempt neither running nor reported on the executor (it restarted)
// ends it, which frees the authorisation: otherwise every later attempt
// of the partition would be denied forever.
func (s *State) CommitsHeldBy(exec ExecutorID) []HeldCommit {
	var out []HeldCommit
	for _, st := range s.stages {
		for task, e := range st.committers {
			if e != exec {
				continue
			}
			for idx, t := range st.authorized {
				if t == task {
					p := idx
					if !st.isMap {
						p = s.jobs[st.job].partition(idx)
					}
					out = append(out, HeldCommit{Stage: st.id, Partition: p, Task: task})
				}
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Stage != out[b].Stage {
			return out[a].Stage < out[b].Stage
		}
		return out[a].Task < out[b].Task
	})
	return out
}
