package dag

// Map-stage jobs (Spark's DAGScheduler.submitMapStage and
// handleMapStageSubmitted): a job whose final stage is the map stage of
// the shuffle its output node reads. It computes no results; it succeeds
// when the shuffle's every map output is registered
// (markMapStageJobsAsFinished), and its outcome is the shuffle's
// statistics (ShuffleStatistics, MapOutputStatistics). While the job is
// not released it holds the shuffle, so a later job reading the same
// shuffle (the same key) finds the outputs and skips the map stage, as the
// stages Spark's adaptive execution submits first are then read by the
// stages planned from their statistics.

// submitMapStageJob creates (or finds) the map stage of the shuffle the
// job's output reads and submits it. checkSubmit made sure there is
// exactly one.
func (s *State) submitMapStageJob(j *job) {
	g := j.graph
	d := g.ShuffleDeps(g.Output)[0]
	st := s.getOrCreateShuffleMapStage(g, d, j.id)
	j.final = st.id
	s.updateJobStages(j.id, st)
	s.submitStage(st)
	// An available stage may still be running (a copy of a task that
	// registered nothing is out), or done before this job came: the job
	// ends as soon as the outputs are all there, either way.
	if j.status == JobRunning && s.available(st) {
		s.jobSucceeded(j)
	}
}

// mapStageJobsFinished ends the running map-stage jobs of a map stage
// whose outputs are all registered.
func (s *State) mapStageJobsFinished(st *stage) {
	if !s.available(st) {
		return
	}
	for _, id := range st.jobs {
		j := s.jobs[JobID(id)]
		if j != nil && j.mapStage && j.final == st.id && j.status == JobRunning {
			s.jobSucceeded(j)
		}
	}
}

// mapStageShuffle returns the shuffle a map-stage job runs, while the job
// holds its stage.
func (s *State) mapStageShuffle(j *job) (ShuffleID, bool) {
	if !j.mapStage || j.stages == nil {
		return 0, false
	}
	st := s.stages[j.final]
	if st == nil || !st.isMap {
		return 0, false
	}
	return st.shuffle, true
}
