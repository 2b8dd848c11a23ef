package server

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SubmitJob compiles the plan on the leader and logs the job (a follower
// forwards it: see route.go). A plan that does not validate or compile is
// rejected here and never logged.
func (s *Server) SubmitJob(ctx context.Context, req *api.SubmitJobRequest) (*api.SubmitJobResponse, error) {
	return s.submit.Submit(ctx, req)
}

// submitter takes a submission from request to logged job in explicit
// steps, each of which may refuse it:
//
//  1. admit: the request's size and the running jobs, before decoding;
//  2. decode the plan;
//  3. a retry of a submission that made its job (same idempotency key)
//     gets that job, without compiling or sampling again;
//  4. check: the output directory, the pipes, then plan.Start (the plan's
//     validity, limits, functions and input files), then the partitions
//     asked for against the output's: every problem of the plan is found
//     before any job runs;
//  5. sample: each sortByKey's range bounds from a sampling job of its own
//     (plan.Compilation's Next and SetBounds), as Spark's RangePartitioner
//     samples before the sort's shuffle exists;
//  6. propose the SubmitJob; then release the sampling jobs.
//
// Only step 6 logs the job; steps 1 to 4 log nothing at all.
type submitter struct {
	opts  submitOptions
	state stateReader
	jobs  jobRunner
}

// submitOptions are the node's admission policy and its plan compiler's
// inputs.
type submitOptions struct {
	Limits    Limits
	Defaults  JobDefaults
	Resolver  plan.Resolver
	Functions plan.Functions
	Confine   *ops.Confinement
	// Outputs checks saveAsTextFile outputs (nil: only their form).
	Outputs OutputChecker
}

// stateReader reads the replicated state (fsm.FSM).
type stateReader interface {
	Read(fn func(st *dag.State))
	// Applied is the index (and term) of the last entry the state holds.
	Applied() (index, term uint64)
}

// jobRunner logs scheduler commands through the leader and reads jobs'
// results: what submitting needs of the rest of the node.
type jobRunner interface {
	// propose logs cmd and returns its result; a business error is a
	// gRPC status error.
	propose(ctx context.Context, cmd dag.Command) (dag.Result, uint64, error)
	// readResults calls fn with each partition's result of a job once
	// it has succeeded.
	readResults(ctx context.Context, id dag.JobID, fn func(partition int, data []byte) error) error
	// release drops an ended job's results.
	release(ctx context.Context, id dag.JobID) error
}

// nodeJobs is the node's jobRunner.
type nodeJobs struct{ s *Server }

func (n nodeJobs) propose(ctx context.Context, cmd dag.Command) (dag.Result, uint64, error) {
	return n.s.propose(ctx, cmd)
}

func (n nodeJobs) readResults(ctx context.Context, id dag.JobID, fn func(int, []byte) error) error {
	err := n.s.readResults(ctx, id, fn)
	if errors.Is(err, errStopping) {
		return status.Error(codes.Unavailable, "server: shutting down; retry")
	}
	return err
}

func (n nodeJobs) release(ctx context.Context, id dag.JobID) error {
	r, _, err := n.s.propose(ctx, &dag.ReleaseJob{Job: id})
	if err == nil {
		n.s.drv.Dropped(r.Dropped)
	}
	return err
}

// Submit runs the steps of a submission (see submitter).
func (sb *submitter) Submit(ctx context.Context, req *api.SubmitJobRequest) (*api.SubmitJobResponse, error) {
	if err := sb.admit(req); err != nil {
		return nil, err
	}
	p, err := api.PlanFromProto(req.Plan)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if req.IdempotencyKey != "" {
		var id dag.JobID
		var found bool
		sb.state.Read(func(st *dag.State) { id, found = st.JobByKey(req.IdempotencyKey) })
		if found {
			index, _ := sb.state.Applied()
			return &api.SubmitJobResponse{JobId: uint64(id), Index: index}, nil
		}
	}
	if err := checkOutput(ctx, p, sb.opts.Outputs); err != nil {
		return nil, err
	}
	if err := sb.checkPipes(p); err != nil {
		return nil, err
	}
	popts := plan.Options{Resolver: sb.opts.Resolver, Functions: sb.opts.Functions, Limits: sb.opts.Limits.planLimits()}
	c, err := plan.Start(p, popts)
	if err != nil {
		return nil, rpcError(limitError(err))
	}
	if req.SomePartitions {
		// Before any sampling job: the partitions are the output's,
		// which sampling does not change.
		g, err := unsampled(c, p, popts)
		if err != nil {
			return nil, rpcError(limitError(err))
		}
		if err := checkPartitions(req.Partitions, g); err != nil {
			return nil, err
		}
	}
	job := sb.job(req)
	smp := &sampling{jobs: sb.jobs, key: req.IdempotencyKey, like: job}
	defer smp.release()
	g, err := smp.compile(ctx, c)
	if err != nil {
		return nil, rpcError(limitError(err))
	}
	job.Graph = g
	if req.SomePartitions {
		// Again on the graph logged: its input files were listed again.
		if err := checkPartitions(req.Partitions, g); err != nil {
			return nil, err
		}
		job.Partitions = make([]int, len(req.Partitions))
		for i, x := range req.Partitions {
			job.Partitions[i] = int(x)
		}
	}
	if err := checkGraphSize(g, len(job.Partitions)); err != nil {
		return nil, err
	}
	if job.MapStage {
		if n := len(g.ShuffleDeps(g.Output)); n != 1 {
			return nil, invalid("server: a map-stage job runs the shuffle its output dataset reads, and %q reads %d shuffles; the output must read exactly one (its stage begins at one groupByKey, reduceByKey, repartition, distinct or sortByKey)",
				g.Nodes[g.Output].Name, n)
		}
	}
	r, index, err := sb.jobs.propose(ctx, job)
	if err != nil {
		return nil, err
	}
	resp := &api.SubmitJobResponse{JobId: uint64(r.Job), Index: index}
	for _, n := range g.Nodes {
		if n.Persist != "" {
			if resp.Persisted == nil {
				resp.Persisted = map[string]string{}
			}
			resp.Persisted[n.Name] = n.Persist
		}
	}
	return resp, nil
}

// unsampled returns the graph of c, compiled as far as Start took it: for
// a plan that sorts, whose graph needs sampled bounds, a compilation of
// its own with empty bounds (it lists the plan's input files once more),
// which has the same datasets and partitions as the sampled one.
func unsampled(c *plan.Compilation, p *plan.Plan, opts plan.Options) (*plan.Graph, error) {
	if g, err := c.Graph(); err == nil {
		return g, nil
	}
	dry, err := plan.Start(p, opts)
	if err != nil {
		return nil, err
	}
	for {
		s, err := dry.Next()
		if err != nil {
			return nil, err
		}
		if s == nil {
			return dry.Graph()
		}
		if err := dry.SetBounds(s, nil); err != nil {
			return nil, err
		}
	}
}

// checkPartitions refuses a partition subset the state would refuse in
// the log: a partition the job's output dataset does not have (negative,
// or at or past its count), one asked for twice, or partitions out of
// ascending order.
func checkPartitions(parts []int32, g *plan.Graph) error {
	out := g.Nodes[g.Output]
	n := out.Partitions
	seen := make(map[int32]bool, len(parts))
	for _, p := range parts {
		if p < 0 || int64(p) >= int64(n) {
			if n == 0 {
				return invalid("server: partition %d is out of range: the job's output dataset %q has no partitions", p, out.Name)
			}
			return invalid("server: partition %d is out of range: the job's output dataset %q has %d partitions, 0 to %d", p, out.Name, n, n-1)
		}
		if seen[p] {
			return invalid("server: partition %d is asked for twice", p)
		}
		seen[p] = true
	}
	for i := 1; i < len(parts); i++ {
		if parts[i] < parts[i-1] {
			return invalid("server: partitions must be ascending: %d comes after %d", parts[i], parts[i-1])
		}
	}
	return nil
}

// job is the SubmitJob for req without its graph: its key, pool and
// limits, the node's defaults where it sets none.
func (sb *submitter) job(req *api.SubmitJobRequest) *dag.SubmitJob {
	cmd := &dag.SubmitJob{Key: req.IdempotencyKey, Pool: req.Pool, Group: req.Group,
		MaxTaskFailures: int(req.MaxTaskFailures), MaxResultSize: req.MaxResultSize,
		MapStage: req.MapStage, AdaptiveTarget: req.AdaptiveTarget}
	if cmd.MaxTaskFailures == 0 {
		cmd.MaxTaskFailures = sb.opts.Defaults.MaxTaskFailures
	}
	if cmd.MaxResultSize == 0 {
		cmd.MaxResultSize = sb.opts.Defaults.MaxResultSize
	}
	return cmd
}

// checkOutput refuses a saveAsTextFile into a relative path, then has an
// executor refuse an output that already holds files (as Spark refuses an
// existing output directory: outputs are never mixed), one outside its
// data roots, or a missing bucket: the check runs where the data is
// reachable, never on this node's disk (driver.CheckOutput).
func checkOutput(ctx context.Context, p *plan.Plan, outputs OutputChecker) error {
	if p.Action.Op != "saveAsTextFile" {
		return nil
	}
	dir := p.Action.Path
	if !filepath.IsAbs(dir) && !ops.IsS3(dir) {
		return invalid("saveAsTextFile path %q must be absolute (executors write it on their own file system) or s3://bucket/prefix", dir)
	}
	if outputs == nil {
		return nil
	}
	return outputs.CheckOutput(ctx, dir)
}

// OutputChecker checks a saveAsTextFile output before its job is logged
// (driver.Driver, on the leader).
type OutputChecker interface {
	CheckOutput(ctx context.Context, path string) error
}
