package server

import (
	"context"
	"os"
	"path/filepath"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SubmitJob compiles the plan on the leader and logs the job. A plan that
// does not validate or compile is rejected here and never logged.
func (s *Server) SubmitJob(ctx context.Context, req *api.SubmitJobRequest) (*api.SubmitJobResponse, error) {
	var resp *api.SubmitJobResponse
	if handled, err := s.forward(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).SubmitJob(ctx, req)
		return err
	}); handled {
		return resp, err
	}
	if err := s.admit(req); err != nil {
		return nil, err
	}
	p, err := api.PlanFromProto(req.Plan)
	if err != nil {
		return nil, invalid("%v", err)
	}
	// A retry of a submission that made its job gets that job, without
	// compiling (or sampling) again.
	if req.IdempotencyKey != "" {
		var id dag.JobID
		var found bool
		s.fsm.Read(func(st *dag.State) { id, found = st.JobByKey(req.IdempotencyKey) })
		if found {
			return &api.SubmitJobResponse{JobId: uint64(id), Index: s.node.Status().AppliedIndex}, nil
		}
	}
	if err := checkOutput(p, s.cfg.Confine); err != nil {
		return nil, err
	}
	if err := s.checkPipes(p); err != nil {
		return nil, err
	}
	smp := &sampler{s: s, ctx: ctx, key: req.IdempotencyKey, pool: req.Pool,
		maxTaskFailures: int(req.MaxTaskFailures), maxResultSize: req.MaxResultSize}
	defer smp.release()
	g, err := plan.Compile(p, plan.Options{Resolver: s.cfg.Resolver, Functions: s.cfg.Functions, Sampler: smp, Limits: s.cfg.Limits.planLimits()})
	if err != nil {
		return nil, rpcError(limitError(err))
	}
	cmd := &dag.SubmitJob{Graph: g, Key: req.IdempotencyKey, Pool: req.Pool,
		MaxTaskFailures: int(req.MaxTaskFailures), MaxResultSize: req.MaxResultSize}
	if cmd.MaxTaskFailures == 0 {
		cmd.MaxTaskFailures = s.cfg.JobDefaults.MaxTaskFailures
	}
	if cmd.MaxResultSize == 0 {
		cmd.MaxResultSize = s.cfg.JobDefaults.MaxResultSize
	}
	if req.SomePartitions {
		cmd.Partitions = make([]int, len(req.Partitions))
		for i, x := range req.Partitions {
			cmd.Partitions[i] = int(x)
		}
	}
	r, index, err := s.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return &api.SubmitJobResponse{JobId: uint64(r.Job), Index: index}, nil
}

// checkOutput refuses a saveAsTextFile into a relative path or a directory
// that already holds files (as Spark refuses an existing output
// directory): outputs are never mixed.
func checkOutput(p *plan.Plan, cf *ops.Confinement) error {
	if p.Action.Op != "saveAsTextFile" {
		return nil
	}
	dir := p.Action.Path
	if !filepath.IsAbs(dir) {
		return invalid("saveAsTextFile path %q must be absolute (executors write it on their own file system)", dir)
	}
	if err := cf.CheckPath("saveAsTextFile", dir); err != nil {
		return status.Error(codes.PermissionDenied, "server: "+err.Error())
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return invalid("saveAsTextFile path %s exists and is not a directory", dir)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return status.Errorf(codes.AlreadyExists, "saveAsTextFile: output directory %s already exists and is not empty", dir)
	}
	return nil
}
