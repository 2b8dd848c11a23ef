package server

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

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
	if err := s.readable(ctx, req.Linearizable); err != nil {
		return nil, err
	}
	if err := s.waitIndex(ctx, req.MinIndex); err != nil {
		return nil, err
	}
	offset, limit := int(max(req.ResultsOffset, 0)), int(min(max(req.ResultsLimit, 0), maxPage))
	var job *api.Job
	found, err := s.lookup(ctx, func() bool {
		s.fsm.Read(func(st *dag.State) { job = s.jobView(st, dag.JobID(req.JobId), offset, limit) })
		return job != nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "job %d not found", req.JobId)
	}
	return job, nil
}

// jobView is a job with its stages and a page of its results, or nil.
func (s *Server) jobView(st *dag.State, id dag.JobID, offset, limit int) *api.Job {
	info, ok := st.Job(id)
	if !ok {
		return nil
	}
	job := jobToProto(st, info)
	if limit == 0 {
		return job
	}
	i := 0
	st.EachResult(info.ID, func(r dag.ResultRef) bool {
		if i >= offset {
			job.Results = append(job.Results, &api.ResultInfo{Partition: int32(r.Partition), Size: r.Size, Indirect: r.Indirect, Executor: string(r.Executor), Task: uint64(r.Task)})
		}
		i++
		return len(job.Results) < limit
	})
	return job
}

// maxPage bounds the items of one page of a listing (a job's results, a
// stage's attempts): a reply stays far below the message size limit.
const maxPage = 10_000

// ListJobs returns every job the state retains, without stages.
func (s *Server) ListJobs(ctx context.Context, req *api.ListJobsRequest) (*api.ListJobsResponse, error) {
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

// CancelJobGroup cancels the running jobs of a group.
func (s *Server) CancelJobGroup(ctx context.Context, req *api.CancelJobGroupRequest) (*api.CancelJobsResponse, error) {
	if req.Group == "" {
		return nil, status.Error(codes.InvalidArgument, "server: cancelling a job group needs its name")
	}
	if err := dag.CheckJobGroup(req.Group); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "server: %v", err)
	}
	r, index, err := s.propose(ctx, &dag.CancelJobGroup{Group: req.Group, Reason: clipReason(req.Reason)})
	if err != nil {
		return nil, err
	}
	s.drv.Dropped(r.Dropped)
	s.log.Info("jobs cancelled", "jobs", r.Cancelled, "reason", req.Reason)
	return &api.CancelJobsResponse{Cancelled: jobIDs(r.Cancelled), Index: index}, nil
}

// CancelStage cancels the running jobs that need a stage.
func (s *Server) CancelStage(ctx context.Context, req *api.CancelStageRequest) (*api.CancelJobsResponse, error) {
	r, index, err := s.propose(ctx, &dag.CancelStage{Stage: dag.StageID(req.StageId), Reason: clipReason(req.Reason)})
	if err != nil {
		return nil, err
	}
	s.drv.Dropped(r.Dropped)
	s.log.Info("jobs cancelled", "jobs", r.Cancelled, "reason", req.Reason)
	return &api.CancelJobsResponse{Cancelled: jobIDs(r.Cancelled), Index: index}, nil
}

// ListCached lists the persisted datasets from this node's replica.
func (s *Server) ListCached(ctx context.Context, req *api.ListCachedRequest) (*api.ListCachedResponse, error) {
	out := &api.ListCachedResponse{}
	s.fsm.Read(func(st *dag.State) {
		for _, c := range st.Cached() {
			d := &api.CachedDataset{Key: c.Key, Name: c.Name, Partitions: int32(c.Partitions), Cached: int32(c.Cached),
				Bytes: c.Bytes, CreatedUnixNano: c.Created, Executors: map[string]int32{}}
			for e, n := range c.Executors {
				d.Executors[string(e)] = int32(n)
			}
			out.Datasets = append(out.Datasets, d)
		}
	})
	return out, nil
}

// Unpersist frees the persisted datasets whose key or name is the one
// asked for: every executor deletes their kept partitions.
func (s *Server) Unpersist(ctx context.Context, req *api.UnpersistRequest) (*api.UnpersistResponse, error) {
	if req.Dataset == "" {
		return nil, status.Error(codes.InvalidArgument, "server: unpersist needs a dataset's key or name")
	}
	var keys []string
	s.fsm.Read(func(st *dag.State) {
		for _, c := range st.Cached() {
			if c.Key == req.Dataset || c.Name == req.Dataset {
				keys = append(keys, c.Key)
			}
		}
	})
	if len(keys) == 0 {
		return nil, status.Errorf(codes.NotFound, "no persisted dataset has the key or name %q (batonctl cache lists them)", req.Dataset)
	}
	r, index, err := s.propose(ctx, &dag.Unpersist{Keys: keys})
	if err != nil {
		return nil, err
	}
	s.drv.Dropped(r.Dropped)
	s.log.Info("datasets unpersisted", "keys", keys)
	return &api.UnpersistResponse{Keys: keys, Index: index}, nil
}

// CancelAllJobs cancels every running job.
func (s *Server) CancelAllJobs(ctx context.Context, req *api.CancelAllJobsRequest) (*api.CancelJobsResponse, error) {
	r, index, err := s.propose(ctx, &dag.CancelAllJobs{Reason: clipReason(req.Reason)})
	if err != nil {
		return nil, err
	}
	s.drv.Dropped(r.Dropped)
	s.log.Info("jobs cancelled", "jobs", r.Cancelled, "reason", req.Reason)
	return &api.CancelJobsResponse{Cancelled: jobIDs(r.Cancelled), Index: index}, nil
}

// clipReason bounds a cancellation's reason: it is logged and kept in
// every cancelled job's message.
func clipReason(r string) string {
	const max = 1 << 10
	if len(r) <= max {
		return r
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(r[cut]) {
		cut--
	}
	return r[:cut] + "…"
}

func jobIDs(ids []dag.JobID) []uint64 {
	out := make([]uint64, len(ids))
	for i, id := range ids {
		out[i] = uint64(id)
	}
	return out
}

// CancelJob cancels a running job.
func (s *Server) CancelJob(ctx context.Context, req *api.CancelJobRequest) (*api.CancelJobResponse, error) {
	r, index, err := s.propose(ctx, &dag.CancelJob{Job: dag.JobID(req.JobId), Reason: req.Reason})
	if err != nil {
		return nil, err
	}
	s.drv.Dropped(r.Dropped)
	s.log.Info("job cancelled", "job", req.JobId, "reason", req.Reason)
	return &api.CancelJobResponse{Index: index}, nil
}

// ReleaseJob drops an ended job's results.
func (s *Server) ReleaseJob(ctx context.Context, req *api.ReleaseJobRequest) (*api.ReleaseJobResponse, error) {
	r, index, err := s.propose(ctx, &dag.ReleaseJob{Job: dag.JobID(req.JobId)})
	if err != nil {
		return nil, err
	}
	s.drv.Dropped(r.Dropped)
	return &api.ReleaseJobResponse{Index: index}, nil
}

// WatchJob streams the job from this node's replica: now, after every
// change, and a last time when it ends.
func (s *Server) WatchJob(req *api.WatchJobRequest, stream grpc.ServerStreamingServer[api.Job]) error {
	if err := s.waitIndex(stream.Context(), req.MinIndex); err != nil {
		return err
	}
	// A lagging replica catches up before it says the job does not exist.
	if _, err := s.lookup(stream.Context(), func() bool {
		found := false
		s.fsm.Read(func(st *dag.State) { _, found = st.Job(dag.JobID(req.JobId)) })
		return found
	}); err != nil {
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
		// A running job changes with every task: send progress at most
		// every watchInterval (the end is sent as soon as it happens).
		s.waitJobEnd(stream.Context(), dag.JobID(req.JobId), watchInterval)
	}
}

// watchInterval is the least time between two progress updates of a
// watch.
const watchInterval = 100 * time.Millisecond

// waitJobEnd waits up to d, returning early if the job ends.
func (s *Server) waitJobEnd(ctx context.Context, id dag.JobID, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		changed := s.fsm.Changed()
		ended := false
		s.fsm.Read(func(st *dag.State) {
			j, ok := st.Job(id)
			ended = !ok || j.Status != dag.JobRunning
		})
		if ended {
			return
		}
		select {
		case <-changed:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		}
	}
}

// ListExecutors lists the executors the state knows. Running tasks and
// heartbeats are the leader's knowledge: a follower asks it, and answers
// here from its replica only if it cannot (the leaderPreferred route).
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
	running, seen, sick := s.drv.Running(), s.drv.LastHeartbeat(), s.drv.Unhealthy()
	addrs := map[string]string{}
	for _, e := range resp.Executors {
		e.RunningTasks = int32(running[e.Id])
		e.Unhealthy = sick[e.Id]
		if t, ok := seen[e.Id]; ok {
			e.LastHeartbeatUnixNano = t.UnixNano()
		}
		e.BlockBytes, e.Shuffles = -1, -1
		if e.Alive {
			addrs[e.Id] = e.Addr
		}
	}
	if !s.node.IsLeader() {
		resp.Replica = s.cfg.ID
	}
	reports := s.executorReports(ctx, addrs)
	for _, e := range resp.Executors {
		if r, ok := reports[e.Id]; ok {
			e.BlockBytes, e.Shuffles = int64(r.BlockBytes), r.Shuffles
		}
	}
	return resp, nil
}

var jobStates = map[dag.JobStatus]api.JobState{
	dag.JobRunning:   api.JobState_JOB_STATE_RUNNING,
	dag.JobSucceeded: api.JobState_JOB_STATE_SUCCEEDED,
	dag.JobFailed:    api.JobState_JOB_STATE_FAILED,
	dag.JobCancelled: api.JobState_JOB_STATE_CANCELLED,
}

// accsToProto gives a job's accumulators (the kinds have the same
// numbers in the state and on the wire).
func accsToProto(as []dag.Accumulator) []*api.Accumulator {
	var out []*api.Accumulator
	for _, a := range as {
		out = append(out, &api.Accumulator{Name: a.Name, Kind: api.AccumulatorKind(a.Kind), IntValue: a.Int, FloatValue: a.Float, Tasks: a.Tasks})
	}
	return out
}

func jobToProto(st *dag.State, j dag.JobInfo) *api.Job {
	out := &api.Job{
		Id: uint64(j.ID), Name: j.Name, State: jobStates[j.Status], Message: j.Message, Tasks: int32(j.Tasks),
		Finished: int32(j.Finished), ResultBytes: j.ResultBytes, Released: j.Released,
		SubmittedUnixNano: j.Submitted, EndedUnixNano: j.Ended, Pool: j.Pool, IdempotencyKey: j.Key,
		TaskSuccesses: j.TaskSuccesses, TaskFailures: j.TaskFailures,
		Accumulators: accsToProto(j.Accumulators), FailedAccumulators: accsToProto(j.FailedAccumulators),
		DroppedAccumulatorUpdates: j.DroppedAccUpdates + j.DroppedFailedAcc, Group: j.Group,
		MapStage: j.MapStage, AdaptiveTarget: j.Adaptive,
	}
	if j.HasMapShuffle {
		out.MapStatistics = mapStatistics(st, j.MapShuffle)
	}
	if j.Graph != nil {
		a := j.Graph.Action
		out.Action = a.Op
		out.OutputPartitions = int32(j.Graph.Nodes[j.Graph.Output].Partitions)
		out.ActionSpec = &api.Action{Op: a.Op, N: a.N, Path: a.Path}
		if a.Fn.Name != "" {
			out.ActionSpec.Fn = &api.Func{Name: a.Fn.Name, ArgsJson: string(a.Fn.Args)}
		}
	}
	for _, id := range j.Stages {
		si, ok := st.Stage(id)
		if !ok {
			continue
		}
		out.Stages = append(out.Stages, stageToProto(si))
	}
	return out
}

// maxListedReducers bounds the reducers whose bytes a map-stage job's
// status lists (its total is always there).
const maxListedReducers = 100_000

// mapStatistics is a shuffle's MapOutputStatistics for a job's status.
func mapStatistics(st *dag.State, id dag.ShuffleID) *api.MapStageStatistics {
	sh, ok := st.Shuffle(id)
	if !ok {
		return nil
	}
	by, registered, _ := st.ShuffleStatistics(id)
	out := &api.MapStageStatistics{Shuffle: uint64(id), Maps: int32(sh.Maps), MapsRegistered: int32(registered), Reducers: int32(sh.Reducers)}
	for _, b := range by {
		out.TotalBytes += b
	}
	if len(by) <= maxListedReducers {
		out.ReducerBytes = by
	}
	return out
}
