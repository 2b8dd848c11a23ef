package driver

import (
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// This file is the driver's half of saveAsTextFile's output commit
// protocol (Spark's OutputCommitCoordinator and commitJob). An executor
// writes a partition under <out>/_temporary/<job>/attempt-<task>, asks the
// leader whether it may commit, and makes it <out>/part-NNNNN only if
// authorised (a rename; a server-side copy on S3); it reports success
// after that. The leader answers from the replicated state (the first
// attempt to ask wins), and has an executor write <out>/_SUCCESS before
// the job's last task ends are logged (outputops.go): the leader never
// touches the output itself.

// savedPart is a saveAsTextFile job's partition reported finished.
type savedPart struct {
	job  dag.JobID
	part int
}

// markSaved notes the saveAsTextFile partitions a batch of task ends
// finishes and, when they are a job's last unfinished ones, returns the
// job's output to finish before the batch is logged: a client that sees the job
// succeed finds _SUCCESS (Spark's commitJob runs before the job's caller
// returns). Every part file is in place by then, since a task reports
// success only after its commit. Batches are logged concurrently, so the
// partitions reported but not yet logged count as finished too. It returns
// what it noted, for unmarkSaved if the batch is not logged.
func (l *leadership) markSaved(cmds []dag.Command) ([]savedPart, []savedOutput) {
	type job struct {
		id       dag.JobID
		dir      string
		parts    []int // nil: all the output's partitions
		finished []bool
	}
	var noted []savedPart
	var jobs []job
	l.d.state.Read(func(s *dag.State) {
		stages := map[dag.StageID]*dag.JobInfo{}
		seen := map[dag.JobID]bool{}
		for _, c := range cmds {
			te, ok := c.(*dag.TaskEnded)
			if !ok || te.Reason != dag.Success {
				continue
			}
			j, known := stages[te.Stage]
			if !known {
				if st, ok := s.Stage(te.Stage); ok && !st.Map && st.Graph != nil && st.Graph.Action.Op == "saveAsTextFile" {
					if info, ok := s.Job(st.Job); ok && info.Status == dag.JobRunning {
						j = &info
					}
				}
				stages[te.Stage] = j
			}
			if j == nil {
				continue
			}
			noted = append(noted, savedPart{j.ID, te.Partition})
			if !seen[j.ID] {
				seen[j.ID] = true
				_, finished, _ := s.Results(j.ID)
				jobs = append(jobs, job{j.ID, j.Graph.Action.Path, j.Partitions, finished})
			}
		}
	})
	if len(noted) == 0 {
		return nil, nil
	}
	var done []savedOutput
	if l.saving == nil {
		l.saving = map[dag.JobID]map[int]bool{}
	}
	for _, n := range noted {
		if l.saving[n.job] == nil {
			l.saving[n.job] = map[int]bool{}
		}
		l.saving[n.job][n.part] = true
	}
	for _, j := range jobs {
		complete := true
		for i, f := range j.finished {
			p := i
			if j.parts != nil {
				p = j.parts[i]
			}
			if !f && !l.saving[j.id][p] {
				complete = false
				break
			}
		}
		if complete {
			delete(l.saving, j.id)
			done = append(done, savedOutput{j.id, j.dir})
		}
	}
	return noted, done
}

// savedOutput is a saveAsTextFile job's output directory.
type savedOutput struct {
	id  dag.JobID
	dir string
}

// unmarkSaved forgets partitions markSaved noted in a batch that was not
// logged: the executors report them again, to the next leader perhaps.
func (l *leadership) unmarkSaved(noted []savedPart) {
	for _, n := range noted {
		delete(l.saving[n.job], n.part)
	}
}

// finishSaved removes the temporary files of succeeded saveAsTextFile
// jobs (those of attempts that died or lost the commit) that a leader
// which died could not remove; a new leader runs it once, through the
// executors. The _SUCCESS marker is not written here: markSaved had it
// written before the job's last task ends were logged, and writing it now
// could mark a directory a user has since emptied and reused.
func (l *leadership) finishSaved() {
	var todo []savedOutput
	l.d.state.Read(func(s *dag.State) {
		for _, j := range s.Jobs() {
			if j.Status == dag.JobSucceeded && j.Graph != nil && j.Graph.Action.Op == "saveAsTextFile" {
				todo = append(todo, savedOutput{j.ID, j.Graph.Action.Path})
			}
		}
	})
	for _, o := range todo {
		l.removeTemporary(o.id, o.dir)
	}
}

// abortSaved is Spark's abortJob for saveAsTextFile jobs that failed or
// were cancelled: their attempts' temporary files go. Partitions already
// committed stay (the output has no _SUCCESS: it is incomplete). s is
// read-locked.
func (l *leadership) abortSaved(s *dag.State) {
	for id, dir := range l.savingJobs {
		j, ok := s.Job(id)
		if ok && j.Status == dag.JobRunning {
			continue
		}
		delete(l.savingJobs, id)
		delete(l.saving, id)
		if ok && j.Status != dag.JobSucceeded {
			// Off the loop: an executor does it.
			l.spawn(func() { l.removeTemporary(id, dir) })
			l.d.log.Info("driver: output aborted", "job", id, "dir", dir, "status", j.Status.String())
		}
	}
}

// removeTemporary has an executor remove a job's temporary output files,
// and the _temporary directory once empty (another job may write there
// too). The executor opens the output confined to its data roots.
func (l *leadership) removeTemporary(id dag.JobID, dir string) {
	if err := l.outputOp(l.ctx, api.OutputOpKind_OUTPUT_OP_ABORT, dir, id, "", 0); err != nil && l.ctx.Err() == nil {
		l.d.log.Warn("driver: could not remove temporary output", "job", id, "dir", dir, "err", err)
	}
}

// finishOutput is Spark's commitJob for a saveAsTextFile job whose part
// files are all in place: an executor (prefer, the one that reported the
// last ends, if it can) removes the job's temporary files and writes the
// _SUCCESS marker. Idempotent. It returns once it is done, or given up
// (an error logged: the job succeeds without _SUCCESS, as when every
// executor fails to write it), or the leadership ends (the next leader
// does it again).
func (l *leadership) finishOutput(id dag.JobID, dir, prefer string) {
	if err := l.outputOp(l.ctx, api.OutputOpKind_OUTPUT_OP_COMMIT, dir, id, prefer, 0); err != nil {
		if l.ctx.Err() == nil {
			l.d.log.Error("driver: could not commit the output: no _SUCCESS", "job", id, "dir", dir, "err", err)
		}
		return
	}
	l.d.log.Info("driver: output committed", "job", id, "dir", dir)
}

// denial is a partition's run of commit denials: its next attempt waits
// until the time given, longer after each denial.
type denial struct {
	n     int
	until time.Time
}

// Commit denial backoff: a partition denied its commit is launched again
// after denialBackoff, doubling with each denial up to maxDenialBackoff.
// An authorised attempt that still runs somewhere will commit or fail in
// its own time; new attempts asking meanwhile only fill the log.
const (
	denialBackoff    = 100 * time.Millisecond
	maxDenialBackoff = 5 * time.Second
)

// noteDenials arms the backoff of partitions denied their commit, and
// clears it for partitions that succeeded.
func (l *leadership) noteDenials(cmds []dag.Command) {
	now := l.d.clock.Now()
	for _, c := range cmds {
		te := c.(*dag.TaskEnded)
		k := [2]uint64{uint64(te.Stage), uint64(te.Partition)}
		switch te.Reason {
		case dag.CommitDenied:
			d := l.denied[k]
			wait := min(denialBackoff<<min(d.n, 16), maxDenialBackoff)
			l.denied[k] = denial{n: d.n + 1, until: now.Add(wait)}
		case dag.Success:
			delete(l.denied, k)
		}
	}
}

// backingOff reports whether a partition waits after commit denials.
func (l *leadership) backingOff(stage dag.StageID, part int, now time.Time) bool {
	d, ok := l.denied[[2]uint64{uint64(stage), uint64(part)}]
	return ok && now.Before(d.until)
}
