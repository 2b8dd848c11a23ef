package dag

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Job groups and stage cancellation (SparkContext.cancelJobGroup and
// cancelStage, DAGScheduler.handleJobGroupCancelled and
// handleStageCancellation). Both are logged commands: which jobs a group
// or a stage has is decided where the command applies, so every replica
// cancels the same jobs, and a job submitted in a group after the
// cancellation is not touched (as in Spark, a group is cancelled, not
// closed).

// MaxJobGroup bounds a job group's name, in bytes.
const MaxJobGroup = 256

// CancelJobGroup cancels every running job of a group.
type CancelJobGroup struct {
	Time   int64
	Group  string
	Reason string
}

// CancelStage cancels every running job that needs a stage.
type CancelStage struct {
	Time   int64
	Stage  StageID
	Reason string
}

// CancelAllJobs cancels every running job (SparkContext.cancelAllJobs).
type CancelAllJobs struct {
	Time   int64
	Reason string
}

// ErrUnknownStage: a CancelStage of a stage the state does not hold.
var ErrUnknownStage = fmt.Errorf("dag: unknown stage")

// CheckJobGroup reports why a job group's name cannot be logged.
func CheckJobGroup(g string) error { return checkGroup(g) }

func checkGroup(g string) error {
	switch {
	case len(g) > MaxJobGroup:
		return fmt.Errorf("%w: a job group of %d bytes, at most %d", ErrInvalidCommand, len(g), MaxJobGroup)
	case !utf8.ValidString(g) || strings.ContainsFunc(g, unicode.IsControl):
		return fmt.Errorf("%w: job group %q is not printable UTF-8 text", ErrInvalidCommand, g)
	}
	return nil
}

func (s *State) cancelJobGroup(c *CancelJobGroup) Result {
	if c.Group == "" {
		return Result{Err: fmt.Errorf("%w: cancelling a job group needs its name", ErrInvalidCommand)}
	}
	if err := checkGroup(c.Group); err != nil {
		return Result{Err: err}
	}
	var r Result
	// The jobs first, then their ends: an end may forget the oldest
	// released job (RetainedJobs), which changes jobOrder.
	var jobs []*job
	for _, id := range s.jobOrder {
		if j := s.jobs[id]; j.group == c.Group && j.status == JobRunning {
			jobs = append(jobs, j)
		}
	}
	for _, j := range jobs {
		msg := fmt.Sprintf("Job %d cancelled part of cancelled job group %s", j.id, c.Group)
		if c.Reason != "" {
			msg += ": " + c.Reason
		}
		s.failJob(j, JobCancelled, msg)
		r.Cancelled = append(r.Cancelled, j.id)
	}
	if len(r.Cancelled) == 0 {
		r.Ignored = fmt.Sprintf("no running job in group %q", c.Group)
	}
	return r
}

func (s *State) cancelStage(c *CancelStage) Result {
	st := s.stages[c.Stage]
	if st == nil {
		return Result{Err: fmt.Errorf("%w: %d", ErrUnknownStage, c.Stage)}
	}
	var r Result
	// The jobs that need the stage (stage.jobIds), in submission order;
	// all of them first (see cancelJobGroup).
	var jobs []*job
	for _, id := range s.jobOrder {
		if j := s.jobs[id]; j.status == JobRunning && st.jobs.has(uint64(j.id)) {
			jobs = append(jobs, j)
		}
	}
	for _, j := range jobs {
		msg := fmt.Sprintf("Job %d cancelled because Stage %d was cancelled", j.id, st.id)
		if c.Reason != "" {
			msg += ": " + c.Reason
		}
		s.failJob(j, JobCancelled, msg)
		r.Cancelled = append(r.Cancelled, j.id)
	}
	if len(r.Cancelled) == 0 {
		r.Ignored = fmt.Sprintf("no running job needs stage %d", st.id)
	}
	return r
}

func (s *State) cancelAllJobs(c *CancelAllJobs) Result {
	var r Result
	// All the jobs first (see cancelJobGroup).
	var jobs []*job
	for _, id := range s.jobOrder {
		if j := s.jobs[id]; j.status == JobRunning {
			jobs = append(jobs, j)
		}
	}
	for _, j := range jobs {
		msg := fmt.Sprintf("Job %d cancelled as part of cancellation of all jobs", j.id)
		if c.Reason != "" {
			msg += ": " + c.Reason
		}
		s.failJob(j, JobCancelled, msg)
		r.Cancelled = append(r.Cancelled, j.id)
	}
	if len(r.Cancelled) == 0 {
		r.Ignored = "no running job"
	}
	return r
}

func (*CancelJobGroup) isCommand() {}
func (*CancelStage) isCommand()    {}
func (*CancelAllJobs) isCommand()  {}
