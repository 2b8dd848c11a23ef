package server

import (
	"github.com/baton-sched/baton/dag"
)

// logEvents writes one info line per scheduler state transition the log
// applied (dag's Result.Events: a stage attempt submitted, completed or
// failed, a job ended, the epoch bumped), on the leader only: every member
// applies the same log, one of them speaks. It runs in the FSM's apply
// hook, so never per record or task, only per transition.
func (s *Server) logEvents(results []dag.Result) {
	// Before the driver exists (Raft replays the log as it opens) this
	// node does not drive, so it does not speak.
	if d := s.wired.Load(); d == nil || !d.Driving() {
		return
	}
	for _, r := range results {
		for _, e := range r.Events {
			switch e.Kind {
			case dag.StageSubmitted:
				s.log.Info("stage submitted", "stage", e.Stage, "attempt", e.Attempt, "job", e.Job, "tasks", e.Tasks)
			case dag.StageCompleted:
				s.log.Info("stage completed", "stage", e.Stage, "attempt", e.Attempt, "job", e.Job)
			case dag.StageAttemptFailed:
				s.log.Info("stage attempt failed; it will be resubmitted", "stage", e.Stage, "attempt", e.Attempt, "job", e.Job, "reason", e.Message)
			case dag.JobEnded:
				if e.Message != "" {
					s.log.Info("job ended", "job", e.Job, "state", e.Status.String(), "message", e.Message)
				} else {
					s.log.Info("job ended", "job", e.Job, "state", e.Status.String())
				}
			case dag.EpochBumped:
				s.log.Info("epoch bumped", "epoch", e.Epoch)
			case dag.JobSubmitted:
				s.log.Info("job submitted", "job", e.Job, "name", e.Name, "tasks", e.Tasks)
			}
		}
	}
}
