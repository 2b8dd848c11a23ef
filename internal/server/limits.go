package server

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/propose"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Limits bound what a submission may ask for. They are checked on the
// leader before anything is logged; each refusal names the limit and the
// schedd flag that raises it. They are this node's admission policy (they
// need not agree across members); the replicated state has its own,
// larger bounds (dag.Config) for what reaches the log by another path.
type Limits struct {
	// MaxJobTasks bounds a job's tasks: its result partitions plus the
	// map partitions of the shuffles it reads. Default 1,000,000.
	MaxJobTasks int64
	// MaxPlanDatasets bounds the datasets of a plan. Default 1,000.
	MaxPlanDatasets int
	// MaxPlanBytes bounds a plan's size on the wire. Default 4 MiB.
	MaxPlanBytes int
	// MaxInlineRecords bounds a plan's inline (parallelize) records.
	// Default 100,000.
	MaxInlineRecords int
	// MaxFnArgBytes bounds one function's arguments, and one pipe's
	// command line and environment. Default 64 KiB.
	MaxFnArgBytes int
	// MaxPendingJobs bounds the jobs running (or waiting for slots) at
	// once; a submission past it is refused until some end. Default 1,000.
	MaxPendingJobs int
}

// MaxDirectResultSize is the largest -max-direct-result-size
// (driver.Options.MaxDirectResultSize) a node accepts: a direct result
// travels to the log in a TaskEnded command, which with its other fields
// (a failure message alone may be 4 KiB) and the entry's framing must fit
// one entry of propose.MaxEntryBytes. Larger results stay in the
// executors' block stores (indirect), so a smaller setting loses nothing.
const MaxDirectResultSize = propose.MaxEntryBytes - 64<<10

// MaxGraphBytes bounds a compiled job (its graph's JSON, as the log
// carries it in the SubmitJob command) to what one log entry of
// propose.MaxEntryBytes holds with the command's other fields. The plan's
// own bound (-max-plan-bytes) does not bound the graph: a textFile's
// splits and a sort's bounds are added at compilation.
const MaxGraphBytes = propose.MaxEntryBytes - 64<<10

// checkGraphSize refuses a compiled job too large for one log entry: its
// graph and the partitions it names (each at most 5 bytes in the log).
func checkGraphSize(g *plan.Graph, partitions int) error {
	b, err := json.Marshal(g)
	if err != nil {
		return status.Errorf(codes.Internal, "server: encode the job's graph: %v", err)
	}
	if len(b)+5*partitions > MaxGraphBytes {
		big, bigBytes := 0, 0
		for i := range g.Nodes {
			if nb, err := json.Marshal(&g.Nodes[i]); err == nil && len(nb) > bigBytes {
				big, bigBytes = i, len(nb)
			}
		}
		n := &g.Nodes[big]
		return status.Errorf(codes.InvalidArgument, "plan: the compiled job is %d bytes (with %d partitions named), over the %d bytes one log entry carries; its dataset %q (%s, %d partitions) alone takes %d bytes (a textFile's splits, a sort's bounds): read fewer or larger files, or use fewer partitions", len(b)+5*partitions, partitions, MaxGraphBytes, n.Name, n.Op, n.Partitions, bigBytes)
	}
	return nil
}

// DefaultLimits returns the default admission limits.
func DefaultLimits() Limits {
	l := Limits{}
	l.ensureDefaults()
	return l
}

func (l *Limits) ensureDefaults() {
	if l.MaxJobTasks <= 0 {
		l.MaxJobTasks = 1_000_000
	}
	if l.MaxPlanDatasets <= 0 {
		l.MaxPlanDatasets = 1_000
	}
	if l.MaxPlanBytes <= 0 {
		l.MaxPlanBytes = 4 << 20
	}
	if l.MaxInlineRecords <= 0 {
		l.MaxInlineRecords = 100_000
	}
	if l.MaxFnArgBytes <= 0 {
		l.MaxFnArgBytes = 64 << 10
	}
	if l.MaxPendingJobs <= 0 {
		l.MaxPendingJobs = 1_000
	}
}

// check reports a limit that is above what the replicated state accepts
// (a job admitted here would then be refused by every replica).
func (l *Limits) check(c dag.Config) error {
	var errs []error
	if l.MaxJobTasks > int64(c.MaxJobTasks) {
		errs = append(errs, fmt.Errorf("-max-job-tasks %d is above the scheduler state's limit of %d", l.MaxJobTasks, c.MaxJobTasks))
	}
	if l.MaxPlanDatasets > c.MaxGraphNodes {
		errs = append(errs, fmt.Errorf("-max-plan-datasets %d is above the scheduler state's limit of %d", l.MaxPlanDatasets, c.MaxGraphNodes))
	}
	if l.MaxPendingJobs > c.MaxRunningJobs {
		errs = append(errs, fmt.Errorf("-max-pending-jobs %d is above the scheduler state's limit of %d", l.MaxPendingJobs, c.MaxRunningJobs))
	}
	return errors.Join(errs...)
}

// planLimits is the part of l the plan compiler checks.
func (l *Limits) planLimits() plan.Limits {
	return plan.Limits{Tasks: l.MaxJobTasks, Datasets: l.MaxPlanDatasets, Records: l.MaxInlineRecords, ArgBytes: l.MaxFnArgBytes}
}

// limitFlags names the schedd flag of each plan limit.
var limitFlags = map[string]string{
	plan.LimitTasks:    "-max-job-tasks",
	plan.LimitDatasets: "-max-plan-datasets",
	plan.LimitRecords:  "-max-inline-records",
	plan.LimitArgBytes: "-max-fn-arg-bytes",
}

// admit checks a submission's size before it is even decoded, and the
// number of running jobs.
func (sb *submitter) admit(req *api.SubmitJobRequest) error {
	l := sb.opts.Limits
	if n := proto.Size(req.Plan); n > l.MaxPlanBytes {
		return status.Errorf(codes.InvalidArgument, "plan: %d bytes is over the limit of %d plan bytes (schedd -max-plan-bytes)", n, l.MaxPlanBytes)
	}
	if req.SomePartitions && len(req.Partitions) > int(min(l.MaxJobTasks, 1<<31)) {
		return status.Errorf(codes.InvalidArgument, "plan: %d partitions asked for, over the limit of %d tasks per job (schedd -max-job-tasks)", len(req.Partitions), l.MaxJobTasks)
	}
	if err := dag.CheckJobGroup(req.Group); err != nil {
		return status.Errorf(codes.InvalidArgument, "server: %v", err)
	}
	if req.AdaptiveTarget < 0 {
		return status.Errorf(codes.InvalidArgument, "server: adaptive target %d bytes is negative", req.AdaptiveTarget)
	}
	if req.MapStage && req.SomePartitions {
		return status.Errorf(codes.InvalidArgument, "server: a map-stage job runs every map partition of its shuffle: it takes no partitions")
	}
	running := 0
	sb.state.Read(func(st *dag.State) { running = st.RunningJobs() })
	if running >= l.MaxPendingJobs {
		return status.Errorf(codes.ResourceExhausted, "%d jobs are running, the limit of pending jobs (schedd -max-pending-jobs); submit again when some have ended", running)
	}
	return nil
}

// limitError names the flag of a plan limit in the error.
func limitError(err error) error {
	var le *plan.LimitError
	if errors.As(err, &le) {
		le.Flag = limitFlags[le.Limit]
		return status.Error(codes.InvalidArgument, le.Error())
	}
	return err
}
