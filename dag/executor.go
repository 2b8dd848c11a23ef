package dag

import (
	"fmt"
	"sort"
)

// registerExecutor adds an executor or revives a lost one
// (handleExecutorAdded: a revived executor's failed epoch is cleared).
func (s *State) registerExecutor(c *RegisterExecutor) Result {
	if c.ID == "" {
		return Result{Err: fmt.Errorf("%w: executor without an id", ErrInvalidCommand)}
	}
	if c.Cores < 0 {
		return Result{Err: fmt.Errorf("%w: executor %s with %d cores", ErrInvalidCommand, c.ID, c.Cores)}
	}
	e := s.executors[c.ID]
	if e == nil {
		e = &executor{id: c.ID}
		s.executors[c.ID] = e
		i := sort.Search(len(s.execOrder), func(i int) bool { return s.execOrder[i] >= c.ID })
		s.execOrder = append(s.execOrder, "")
		copy(s.execOrder[i+1:], s.execOrder[i:])
		s.execOrder[i] = c.ID
	}
	e.addr = c.Addr
	e.cores = c.Cores
	e.funcs = append([]string(nil), c.Funcs...)
	sort.Strings(e.funcs)
	if !e.alive {
		// A new or revived executor (handleExecutorAdded): its earlier
		// failure no longer marks its new outputs as bogus. An executor
		// registering again while alive (after a leader change) keeps its
		// failed epoch.
		e.registered = c.Time
		delete(s.failedEpoch, c.ID)
	}
	e.alive = true
	e.lost = 0
	e.lostReason = ""
	return Result{}
}

// removeExecutor is handleExecutorLost for an executor whose process is
// gone: its map outputs and the indirect results it held are lost.
func (s *State) removeExecutor(c *RemoveExecutor) Result {
	e := s.executors[c.ID]
	if e == nil {
		return Result{Err: fmt.Errorf("%w: %s", ErrUnknownExecutor, c.ID)}
	}
	if !e.alive {
		return Result{Ignored: fmt.Sprintf("executor %s is already lost", c.ID)}
	}
	e.alive = false
	e.lost = c.Time
	e.lostReason = c.Reason
	s.executorOutputsLost(c.ID, s.epoch, true)
	s.committersLost(c.ID)
	s.cacheLost(c.ID)
	// Results of unreleased jobs that lived in the executor's block store
	// must be computed again.
	for _, id := range s.jobOrder {
		j := s.jobs[id]
		if j.released || j.status == JobFailed || j.status == JobCancelled {
			continue
		}
		var lost []int
		for i, done := range j.finished {
			if done && j.results[i].Indirect && j.results[i].Executor == c.ID {
				lost = append(lost, i)
			}
		}
		if len(lost) > 0 {
			s.unfinishResults(j, lost)
		}
	}
	return Result{}
}

// executorOutputsLost is removeExecutorAndUnregisterOutputs: record the
// executor's failed epoch, unregister its map outputs and bump the epoch,
// unless that was already done at this epoch or later. When repend is set
// (the executor itself is lost, TaskSetManager.executorLost), running map
// stages pend again the partitions whose outputs were lost.
func (s *State) executorOutputsLost(id ExecutorID, epoch uint64, repend bool) {
	if fe, ok := s.failedEpoch[id]; ok && fe >= epoch {
		return
	}
	s.failedEpoch[id] = epoch
	ids := make([]ShuffleID, 0, len(s.shuffles))
	for sid := range s.shuffles {
		ids = append(ids, sid)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	for _, sid := range ids {
		sh := s.shuffles[sid]
		st := s.stages[sh.stage]
		active := repend && s.running.has(uint64(st.id)) && !st.zombie
		for p := range sh.outputs {
			if sh.outputs[p].exec != id {
				continue
			}
			sh.outputs[p] = mapOutput{}
			sh.avail--
			if active && !st.pending.has(p) {
				st.pending.set(p)
				st.npend++
			}
		}
	}
	s.bumpEpoch()
}

// unfinishResults takes back finished results of a job (their block is
// lost): the partitions run again, and a succeeded job runs again.
func (s *State) unfinishResults(j *job, idxs []int) {
	st := s.stages[j.final]
	for _, i := range idxs {
		j.finished[i] = false
		j.numFinished--
		j.resultBytes -= j.results[i].Size
		j.resultCount--
		j.results[i] = ResultRef{}
		if s.running.has(uint64(st.id)) && !st.zombie && !st.pending.has(i) {
			st.pending.set(i)
			st.npend++
		}
	}
	if j.status == JobSucceeded {
		j.status = JobRunning
		j.ended = 0
		s.submitStage(st)
	}
}
