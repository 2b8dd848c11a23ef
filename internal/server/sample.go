package server

import (
	"context"
	"fmt"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sampler picks sortByKey bounds for one submission by running sampling
// jobs, as Spark's RangePartitioner does. The jobs are released after the
// main job is submitted, so shuffles they share with it (equal lineage)
// are computed once.
//
// A sampling job carries an idempotency key made from the submission's
// and its place in the plan, so a client's retry of a slow submission
// waits for the same sampling job rather than starting another; it runs
// in the submission's pool with its limits.
type sampler struct {
	s               *Server
	ctx             context.Context
	key, pool       string
	maxTaskFailures int
	maxResultSize   int64
	jobs            []dag.JobID
}

func (sp *sampler) SampleBounds(g *plan.Graph, input, reducers int) ([][]byte, error) {
	parts := g.Nodes[input].Partitions
	sg := &plan.Graph{
		Name:   g.Name + " (sortByKey sample)",
		Nodes:  append([]plan.Node(nil), g.Nodes[:input+1]...),
		Output: input,
		Action: plan.GraphAction{Op: "sampleKeys", N: int64(ops.SampleSizes(parts, reducers))},
	}
	cmd := &dag.SubmitJob{Graph: sg, Pool: sp.pool, MaxTaskFailures: sp.maxTaskFailures, MaxResultSize: sp.maxResultSize}
	if sp.key != "" {
		cmd.Key = fmt.Sprintf("%s/sample/%d", sp.key, input)
	}
	if cmd.MaxTaskFailures == 0 {
		cmd.MaxTaskFailures = sp.s.cfg.JobDefaults.MaxTaskFailures
	}
	if cmd.MaxResultSize == 0 {
		cmd.MaxResultSize = sp.s.cfg.JobDefaults.MaxResultSize
	}
	r, _, err := sp.s.propose(sp.ctx, cmd)
	if err != nil {
		return nil, err
	}
	sp.jobs = append(sp.jobs, r.Job)
	results, err := sp.s.waitResults(sp.ctx, r.Job)
	if err != nil {
		return nil, err
	}
	samples := make([]ops.PartitionSample, 0, len(results))
	for _, b := range results {
		ps, err := ops.ParseSample(b)
		if err != nil {
			return nil, err
		}
		samples = append(samples, ps)
	}
	return ops.RangeBounds(samples, reducers), nil
}

// release drops the sampling jobs.
func (sp *sampler) release() {
	for _, id := range sp.jobs {
		if r, _, err := sp.s.propose(context.Background(), &dag.ReleaseJob{Job: id}); err == nil {
			sp.s.drv.Dropped(r.Dropped)
		}
	}
}

// waitResults waits for a job to succeed and returns its partitions'
// results, reading indirect ones from the executors.
func (s *Server) waitResults(ctx context.Context, id dag.JobID) ([][]byte, error) {
	for {
		changed := s.fsm.Changed()
		var info dag.JobInfo
		var refs []dag.ResultRef
		addrs := map[dag.ExecutorID]string{}
		s.fsm.Read(func(st *dag.State) {
			info, _ = st.Job(id)
			if info.Status == dag.JobSucceeded {
				refs, _, _ = st.Results(id)
				for i := range refs {
					refs[i].Data = append([]byte(nil), refs[i].Data...)
					if e, ok := st.Executor(refs[i].Executor); ok {
						addrs[refs[i].Executor] = e.Addr
					}
				}
			}
		})
		switch info.Status {
		case dag.JobFailed, dag.JobCancelled:
			return nil, status.Errorf(codes.FailedPrecondition, "job %d %s: %s", id, info.Status, info.Message)
		case dag.JobSucceeded:
			out := make([][]byte, len(refs))
			for i, ref := range refs {
				if !ref.Indirect {
					out[i] = ref.Data
					continue
				}
				data, err := s.blocks.FetchResult(ctx, addrs[ref.Executor], uint64(ref.Job), uint64(ref.Task))
				if err != nil {
					return nil, fmt.Errorf("job %d: result of partition %d: %w", id, ref.Partition, err)
				}
				out[i] = data
			}
			return out, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stop:
			return nil, status.Error(codes.Unavailable, "server: shutting down; retry")
		}
	}
}
