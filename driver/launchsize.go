package driver

import (
	"fmt"
	"strings"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Launch sizes: a launch message never exceeds what the transport
// carries (grpcdial.MaxMessageSize).

// taskSize is the size of a task's launch (as proto.Size, with graph as
// its graph), a stage's inputs sized once: they are the same in each of
// its launches, and may list thousands of map outputs.
func (p *placer) taskSize(tl *api.TaskLaunch, sv *stageView, graph []byte) int {
	if !sv.sized {
		sv.inputsSize = proto.Size(&api.TaskLaunch{Inputs: sv.inputs})
		sv.sized = true
	}
	inputs := tl.Inputs
	tl.Inputs = nil
	n := proto.Size(tl)
	tl.Inputs = inputs
	if len(graph) > 0 {
		n += protowire.SizeTag(taskLaunchGraph) + protowire.SizeBytes(len(graph))
	}
	return n + sv.inputsSize
}

// Field numbers of what a launch message is made of (api/baton.proto).
const (
	driverMessageLaunch = 2 // DriverMessage.launch
	launchTasks         = 1 // Launch.tasks
	taskLaunchGraph     = 3 // TaskLaunch.graph
)

// launchSize is the size of a launch message (a DriverMessage) of tasks
// of these sizes.
func launchSize(tasks ...int) int {
	n := 0
	for _, t := range tasks {
		n += taskEntrySize(t)
	}
	return launchSizeOf(n)
}

// taskEntrySize is what a task's launch of size n adds to a Launch.
func taskEntrySize(n int) int { return protowire.SizeTag(launchTasks) + protowire.SizeBytes(n) }

// launchSizeOf is the size of a launch message whose Launch is n bytes.
func launchSizeOf(n int) int { return protowire.SizeTag(driverMessageLaunch) + protowire.SizeBytes(n) }

// fit returns msgs with each launch message over limit bytes split, in
// order, into messages of as many launches as stay under it (the session
// merges launches queued together: see coalesce). A launch over the limit
// alone is never built (see build).
func fit(msgs []*api.DriverMessage, limit int) []*api.DriverMessage {
	var out []*api.DriverMessage
	for i, m := range msgs {
		lm := m.GetLaunch()
		if lm == nil || proto.Size(m) <= limit {
			if out != nil {
				out = append(out, m)
			}
			continue
		}
		if out == nil {
			out = append(make([]*api.DriverMessage, 0, len(msgs)+1), msgs[:i]...)
		}
		var part []*api.TaskLaunch
		n := 0 // the Launch's size so far
		for _, t := range lm.Tasks {
			e := taskEntrySize(proto.Size(t))
			if len(part) > 0 && launchSizeOf(n+e) > limit {
				out = append(out, &api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: &api.Launch{Tasks: part}}})
				part, n = nil, 0
			}
			part = append(part, t)
			n += e
		}
		if len(part) > 0 {
			out = append(out, &api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: &api.Launch{Tasks: part}}})
		}
	}
	if out == nil {
		return msgs
	}
	return out
}

// oversized aborts the jobs of a stage whose task's launch is over the
// message limit on its own, as Spark's TaskSetManager aborts a task set
// whose serialized task is over spark.rpc.message.maxSize: running it
// again would only meet the same limit. No launch of the stage is offered
// until the abort is logged. The state has no command that fails a stage,
// so every running job that needs the stage is cancelled (CancelJob) with
// Spark's message as the reason; the job ends cancelled, its message
// "Job N cancelled: aborted due to stage failure: Serialized task ...".
func (p *placer) oversized(t dag.TaskSpec, sv *stageView, size, graph int) {
	l := p.l
	if p.aborting[t.Stage] {
		return
	}
	p.aborting = l.abortingStages(true)
	p.aborting[t.Stage] = true
	var jobs []dag.JobID
	l.d.state.Read(func(s *dag.State) {
		st, ok := s.Stage(t.Stage)
		if !ok {
			return
		}
		for _, id := range st.Jobs {
			if j, ok := s.Job(id); ok && j.Status == dag.JobRunning {
				jobs = append(jobs, id)
			}
		}
	})
	maps := 0
	for _, in := range sv.inputs {
		maps += len(in.Locations)
	}
	// What makes it large, and what to do about it.
	var parts []string
	if graph > 0 {
		parts = append(parts, fmt.Sprintf("the job's graph, %d bytes (its compiled plan: input file splits, sort bounds, inline records)", graph))
	}
	if maps > 0 {
		parts = append(parts, fmt.Sprintf("the locations of the %d map outputs its stage reads, %d bytes", maps, sv.inputsSize))
	}
	what := ""
	if len(parts) > 0 {
		advice := "use fewer map partitions"
		if graph >= sv.inputsSize {
			advice = "use fewer input splits (fewer textFile partitions, fewer input files) or a smaller plan"
		}
		what = " Its launch carries " + strings.Join(parts, " and ") + ": " + advice + "."
	}
	reason := fmt.Sprintf("aborted due to stage failure: Serialized task %d.%d:%d (partition %d) was %d bytes, which exceeds max allowed: the message limit between scheduler and executors (%d bytes).%s",
		t.Stage, t.StageAttempt, t.Index, t.Partition, size, maxLaunchMessage, what)
	l.d.log.Error("driver: a task's launch is over the message limit; aborting the jobs of its stage", "stage", t.Stage, "attempt", t.StageAttempt,
		"partition", t.Partition, "bytes", size, "limit", maxLaunchMessage, "graph_bytes", graph, "input_bytes", sv.inputsSize, "map_outputs", maps, "jobs", jobs)
	if len(jobs) == 0 {
		delete(p.aborting, t.Stage)
		return
	}
	cmds := make([]dag.Command, len(jobs))
	for i, id := range jobs {
		cmds[i] = &dag.CancelJob{Job: id, Reason: reason}
	}
	stage := t.Stage
	l.spawn(func() {
		res, err := l.d.prop.Propose(l.ctx, cmds...)
		if err != nil {
			l.d.log.Warn("driver: could not log the abort of a stage's jobs; it is tried again", "stage", stage, "err", err)
		}
		for i, r := range res {
			if r.Err != nil {
				l.d.log.Debug("driver: aborting a job", "job", jobs[i], "err", r.Err)
			}
		}
		// Logged (the stage is gone or runs for no job) or not (the next
		// round tries again).
		l.post(evFunc{func() { delete(l.abortingStages(false), stage) }})
	})
}

// abortingStages returns the stages whose jobs the leadership is aborting
// for a launch over the message limit (see oversized), nil when none and
// !create. Loop only.
func (l *leadership) abortingStages(create bool) map[dag.StageID]bool {
	if l.aborting == nil && create {
		l.aborting = map[dag.StageID]bool{}
	}
	return l.aborting
}
