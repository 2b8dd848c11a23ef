package server

import (
	"context"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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
	p, err := api.PlanFromProto(req.Plan)
	if err != nil {
		return nil, invalid("%v", err)
	}
	g, err := plan.Compile(p, plan.Options{Resolver: s.cfg.Resolver, Functions: s.cfg.Functions})
	if err != nil {
		return nil, rpcError(err)
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
	s.log.Info("job submitted", "job", r.Job, "name", g.Name)
	return &api.SubmitJobResponse{JobId: uint64(r.Job), Index: index}, nil
}

// readable prepares a read: with linearizable set, the read is served by
// the leader after confirming its leadership (forwarded from a follower);
// otherwise from this node's replica.
func (s *Server) readable(ctx context.Context, linearizable bool) error {
	if !linearizable {
		return nil
	}
	if err := s.node.ReadIndex(ctx); err != nil {
		return rpcError(err)
	}
	return nil
}

// GetJob returns a job with its stages.
func (s *Server) GetJob(ctx context.Context, req *api.GetJobRequest) (*api.Job, error) {
	if req.Linearizable {
		var resp *api.Job
		if handled, err := s.forward(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
			resp, err = api.NewSchedulerClient(cc).GetJob(ctx, req)
			return err
		}); handled {
			return resp, err
		}
	}
	if err := s.readable(ctx, req.Linearizable); err != nil {
		return nil, err
	}
	if err := s.waitIndex(ctx, req.MinIndex); err != nil {
		return nil, err
	}
	var job *api.Job
	s.fsm.Read(func(st *dag.State) {
		if info, ok := st.Job(dag.JobID(req.JobId)); ok {
			job = jobToProto(st, info)
		}
	})
	if job == nil {
		return nil, status.Errorf(codes.NotFound, "job %d not found", req.JobId)
	}
	return job, nil
}

// ListJobs returns every job the state retains, without stages.
func (s *Server) ListJobs(ctx context.Context, req *api.ListJobsRequest) (*api.ListJobsResponse, error) {
	if req.Linearizable {
		var resp *api.ListJobsResponse
		if handled, err := s.forward(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
			resp, err = api.NewSchedulerClient(cc).ListJobs(ctx, req)
			return err
		}); handled {
			return resp, err
		}
	}
	if err := s.readable(ctx, req.Linearizable); err != nil {
		return nil, err
	}
	if err := s.waitIndex(ctx, req.MinIndex); err != nil {
		return nil, err
	}
	resp := &api.ListJobsResponse{}
	s.fsm.Read(func(st *dag.State) {
		for _, info := range st.Jobs() {
			j := jobToProto(st, info)
			j.Stages = nil
			resp.Jobs = append(resp.Jobs, j)
		}
	})
	return resp, nil
}

// CancelJob cancels a running job.
func (s *Server) CancelJob(ctx context.Context, req *api.CancelJobRequest) (*api.CancelJobResponse, error) {
	var resp *api.CancelJobResponse
	if handled, err := s.forward(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).CancelJob(ctx, req)
		return err
	}); handled {
		return resp, err
	}
	_, index, err := s.propose(ctx, &dag.CancelJob{Job: dag.JobID(req.JobId), Reason: req.Reason})
	if err != nil {
		return nil, err
	}
	s.log.Info("job cancelled", "job", req.JobId, "reason", req.Reason)
	return &api.CancelJobResponse{Index: index}, nil
}

// ReleaseJob drops an ended job's results.
func (s *Server) ReleaseJob(ctx context.Context, req *api.ReleaseJobRequest) (*api.ReleaseJobResponse, error) {
	var resp *api.ReleaseJobResponse
	if handled, err := s.forward(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).ReleaseJob(ctx, req)
		return err
	}); handled {
		return resp, err
	}
	_, index, err := s.propose(ctx, &dag.ReleaseJob{Job: dag.JobID(req.JobId)})
	if err != nil {
		return nil, err
	}
	return &api.ReleaseJobResponse{Index: index}, nil
}

// WatchJob streams the job from this node's replica: now, after every
// change, and a last time when it ends.
func (s *Server) WatchJob(req *api.WatchJobRequest, stream grpc.ServerStreamingServer[api.Job]) error {
	if err := s.waitIndex(stream.Context(), req.MinIndex); err != nil {
		return err
	}
	var last *api.Job
	for {
		changed := s.fsm.Changed()
		var job *api.Job
		s.fsm.Read(func(st *dag.State) {
			if info, ok := st.Job(dag.JobID(req.JobId)); ok {
				job = jobToProto(st, info)
			}
		})
		if job == nil {
			return status.Errorf(codes.NotFound, "job %d not found", req.JobId)
		}
		if last == nil || !proto.Equal(last, job) {
			if err := stream.Send(job); err != nil {
				return err
			}
			last = job
		}
		if job.State != api.JobState_JOB_STATE_RUNNING {
			return nil
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.stop:
			return status.Error(codes.Unavailable, "node shutting down; watch again on another node")
		}
	}
}

// CollectResults streams a finished job's results, partition by
// partition. Direct results come from the replicated state.
func (s *Server) CollectResults(req *api.CollectResultsRequest, stream grpc.ServerStreamingServer[api.ResultChunk]) error {
	var refs []dag.ResultRef
	var finished []bool
	var info dag.JobInfo
	var found bool
	s.fsm.Read(func(st *dag.State) {
		if info, found = st.Job(dag.JobID(req.JobId)); found {
			refs, finished, _ = st.Results(info.ID)
			// Copy direct results out of the state before releasing the lock.
			for i := range refs {
				refs[i].Data = append([]byte(nil), refs[i].Data...)
			}
		}
	})
	switch {
	case !found:
		return status.Errorf(codes.NotFound, "job %d not found", req.JobId)
	case info.Status != dag.JobSucceeded:
		return status.Errorf(codes.FailedPrecondition, "job %d has %s; only a succeeded job has results", req.JobId, info.Status)
	case info.Released:
		return status.Errorf(codes.FailedPrecondition, "job %d was released: its results are gone", req.JobId)
	}
	for i, ref := range refs {
		if !finished[i] {
			return status.Errorf(codes.Internal, "job %d succeeded without a result for partition %d", req.JobId, ref.Partition)
		}
		if ref.Indirect {
			return status.Errorf(codes.Unimplemented, "partition %d's result is in executor %s's block store, which this build cannot read yet", ref.Partition, ref.Executor)
		}
		if err := stream.Send(&api.ResultChunk{Partition: int32(ref.Partition), Data: ref.Data, Last: true}); err != nil {
			return err
		}
	}
	return nil
}

// ListExecutors lists the executors the state knows.
func (s *Server) ListExecutors(ctx context.Context, req *api.ListExecutorsRequest) (*api.ListExecutorsResponse, error) {
	resp := &api.ListExecutorsResponse{}
	s.fsm.Read(func(st *dag.State) {
		for _, e := range st.Executors() {
			resp.Executors = append(resp.Executors, &api.Executor{
				Id: string(e.ID), Addr: e.Addr, Cores: int32(e.Cores), Alive: e.Alive, Funcs: e.Funcs,
				RegisteredUnixNano: e.Registered, LostUnixNano: e.Lost, LostReason: e.LostReason,
			})
		}
	})
	return resp, nil
}

var jobStates = map[dag.JobStatus]api.JobState{
	dag.JobRunning:   api.JobState_JOB_STATE_RUNNING,
	dag.JobSucceeded: api.JobState_JOB_STATE_SUCCEEDED,
	dag.JobFailed:    api.JobState_JOB_STATE_FAILED,
	dag.JobCancelled: api.JobState_JOB_STATE_CANCELLED,
}

func jobToProto(st *dag.State, j dag.JobInfo) *api.Job {
	out := &api.Job{
		Id: uint64(j.ID), Name: j.Name, State: jobStates[j.Status], Message: j.Message, Tasks: int32(j.Tasks),
		Finished: int32(j.Finished), ResultBytes: j.ResultBytes, Released: j.Released,
		SubmittedUnixNano: j.Submitted, EndedUnixNano: j.Ended, Pool: j.Pool, IdempotencyKey: j.Key,
	}
	for _, id := range j.Stages {
		si, ok := st.Stage(id)
		if !ok {
			continue
		}
		ps := &api.Stage{
			Id: uint64(si.ID), Name: si.Name, Map: si.Map, State: string(si.State), Tasks: int32(si.Tasks),
			Pending: int32(si.Pending), Available: int32(si.Available), Attempt: int32(si.Attempt),
			FailedAttempts: int32(si.FailedAttempts), Shuffle: uint64(si.Shuffle),
			SubmittedUnixNano: si.Submitted, CompletedUnixNano: si.Completed,
		}
		for _, p := range si.Parents {
			ps.Parents = append(ps.Parents, uint64(p))
		}
		out.Stages = append(out.Stages, ps)
	}
	return out
}
