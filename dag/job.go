package dag

import "fmt"

// jobSucceeded ends a job whose results are all in. Its stages stay (they
// hold its lineage while its results may still be needed: an executor
// lost before the release takes results back), but leave the scheduling
// sets when no running job needs them.
func (s *State) jobSucceeded(j *job) {
	j.status = JobSucceeded
	j.ended = s.now
	s.events = append(s.events, Event{Kind: JobEnded, Job: j.id, Status: JobSucceeded})
	s.settleStages(j)
}

// settleStages removes the job's stages that no running job needs from
// the waiting, running and failed sets (cancelRunningIndependentStages).
func (s *State) settleStages(j *job) {
	for _, id := range j.stages {
		st := s.stages[StageID(id)]
		if _, ok := s.activeJob(st); !ok {
			s.waiting.remove(id)
			s.running.remove(id)
			s.failed.remove(id)
			if st.completed == 0 {
				st.completed = s.now
			}
		}
	}
}

// abortStage fails every running job that depends on the stage.
func (s *State) abortStage(st *stage, reason string) {
	if s.stages[st.id] != st {
		return
	}
	st.completed = s.now
	var dependent []*job
	for _, id := range s.jobOrder {
		j := s.jobs[id]
		if j.status == JobRunning && s.stageDependsOn(s.stages[j.final], st.id) {
			dependent = append(dependent, j)
		}
	}
	for _, j := range dependent {
		s.failJob(j, JobFailed, "Job aborted due to stage failure: "+reason)
	}
}

// stageDependsOn reports whether target is st or one of its ancestors.
func (s *State) stageDependsOn(st *stage, target StageID) bool {
	todo := []*stage{st}
	seen := map[StageID]bool{}
	for len(todo) > 0 {
		x := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if x.id == target {
			return true
		}
		for _, p := range x.parents {
			if !seen[p] {
				seen[p] = true
				todo = append(todo, s.stages[p])
			}
		}
	}
	return false
}

// failJob is failJobAndIndependentStages: the job ends, its results are
// dropped, and the stages only it needed are removed.
func (s *State) failJob(j *job, status JobStatus, msg string) {
	j.status = status
	j.msg = msg
	j.ended = s.now
	s.events = append(s.events, Event{Kind: JobEnded, Job: j.id, Status: status, Message: msg})
	s.dropResults(j, &s.drop)
	s.detachStages(j, &s.drop)
	// Nothing is left to collect: the job counts as released.
	j.released = true
	s.retainJobs()
}

// dropResults forgets a job's results, listing indirect ones in d.
func (s *State) dropResults(j *job, d *Dropped) {
	for i, done := range j.finished {
		if done && j.results[i].Indirect {
			d.Results = append(d.Results, j.results[i])
		}
	}
	j.results = nil
	j.resultBytes = 0
}

// detachStages removes the job from its stages; a stage no job needs is
// removed with its shuffle (cleanupStateForJobAndIndependentStages).
func (s *State) detachStages(j *job, d *Dropped) {
	for _, id := range j.stages {
		st := s.stages[StageID(id)]
		st.jobs.remove(uint64(j.id))
		if len(st.jobs) == 0 {
			s.waiting.remove(id)
			s.running.remove(id)
			s.failed.remove(id)
			delete(s.stages, st.id)
			s.liveTasks -= st.nTasks
			if st.isMap {
				sh := s.shuffles[st.shuffle]
				delete(s.byKey, sh.key)
				delete(s.shuffles, sh.id)
				d.Shuffles = append(d.Shuffles, sh.id)
			}
		} else if _, ok := s.activeJob(st); !ok {
			s.waiting.remove(id)
			s.running.remove(id)
			s.failed.remove(id)
		}
	}
	j.stages = nil
}

// cancelJob cancels a running job (handleJobCancellation).
func (s *State) cancelJob(c *CancelJob) Result {
	j := s.jobs[c.Job]
	if j == nil {
		return Result{Err: fmt.Errorf("%w: %d", ErrUnknownJob, c.Job)}
	}
	if j.status != JobRunning {
		return Result{Err: fmt.Errorf("%w: job %d has %s", ErrJobNotRunning, c.Job, j.status)}
	}
	msg := fmt.Sprintf("Job %d cancelled", j.id)
	if c.Reason != "" {
		msg += ": " + c.Reason
	}
	s.failJob(j, JobCancelled, msg)
	return Result{}
}

// releaseJob drops an ended job's results and the stages and shuffles no
// other job needs.
func (s *State) releaseJob(c *ReleaseJob) Result {
	j := s.jobs[c.Job]
	if j == nil {
		return Result{Err: fmt.Errorf("%w: %d", ErrUnknownJob, c.Job)}
	}
	if j.status == JobRunning {
		return Result{Err: fmt.Errorf("%w: job %d is running", ErrJobNotEnded, c.Job)}
	}
	if j.released {
		return Result{Ignored: fmt.Sprintf("job %d is already released", j.id)}
	}
	s.dropResults(j, &s.drop)
	s.detachStages(j, &s.drop)
	j.released = true
	s.retainJobs()
	return Result{}
}

// retainJobs forgets the oldest released jobs beyond RetainedJobs.
func (s *State) retainJobs() {
	released := 0
	for _, id := range s.jobOrder {
		if s.jobs[id].released {
			released++
		}
	}
	for i := 0; released > s.cfg.RetainedJobs && i < len(s.jobOrder); {
		id := s.jobOrder[i]
		j := s.jobs[id]
		if !j.released {
			i++
			continue
		}
		delete(s.jobs, id)
		if j.key != "" && s.idem[j.key] == id {
			delete(s.idem, j.key)
		}
		s.jobOrder = append(s.jobOrder[:i], s.jobOrder[i+1:]...)
		released--
	}
}
