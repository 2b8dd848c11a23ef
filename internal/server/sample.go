package server

import (
	"context"
	"fmt"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// sampling is the sampling step of one submission: it compiles the plan,
// answering each sortByKey's sample (plan.Compilation.Next) with the
// bounds of a sampling job, as Spark's RangePartitioner does. The jobs are
// released after the main job is submitted, so shuffles they share with
// it (equal lineage) are computed once.
//
// A sampling job carries an idempotency key made from the submission's
// and its place in the plan, so a client's retry of a slow submission
// waits for the same sampling job rather than starting another; it runs
// in the submission's pool with its limits (like's).
type sampling struct {
	jobs jobRunner
	key  string
	like *dag.SubmitJob
	ran  []dag.JobID
}

// compile runs c to its end, sampling where it asks.
func (sp *sampling) compile(ctx context.Context, c *plan.Compilation) (*plan.Graph, error) {
	for {
		s, err := c.Next()
		if err != nil {
			return nil, err
		}
		if s == nil {
			return c.Graph()
		}
		bounds, err := sp.sample(ctx, s)
		if err != nil {
			return nil, &plan.SamplingError{Dataset: s.Dataset, Err: err}
		}
		if err := c.SetBounds(s, bounds); err != nil {
			return nil, err
		}
	}
}

// sample runs one sampling job and returns the bounds its sample gives.
func (sp *sampling) sample(ctx context.Context, s *plan.Sample) ([][]byte, error) {
	g := *s.Graph
	g.Action.N = int64(ops.SampleSizes(g.Nodes[g.Output].Partitions, s.Reducers))
	cmd := &dag.SubmitJob{Graph: &g, Pool: sp.like.Pool, Group: sp.like.Group, MaxTaskFailures: sp.like.MaxTaskFailures, MaxResultSize: sp.like.MaxResultSize}
	if sp.key != "" {
		cmd.Key = fmt.Sprintf("%s/sample/%d", sp.key, g.Output)
	}
	r, _, err := sp.jobs.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	sp.ran = append(sp.ran, r.Job)
	var samples []ops.PartitionSample
	if err := sp.jobs.readResults(ctx, r.Job, func(_ int, b []byte) error {
		ps, err := ops.ParseSample(b)
		if err != nil {
			return fmt.Errorf("server: sampling job %d: %w", r.Job, err)
		}
		samples = append(samples, ps)
		return nil
	}); err != nil {
		return nil, err
	}
	return ops.RangeBounds(samples, s.Reducers), nil
}

// release drops the sampling jobs (their shared shuffles stay while the
// main job uses them).
func (sp *sampling) release() {
	for _, id := range sp.ran {
		sp.jobs.release(context.Background(), id)
	}
}
