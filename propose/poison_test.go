package propose

import (
	"context"
	"errors"
	"testing"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
)

// TestPoisonCommandThroughRaftLeavesEveryReplicaAlive: a SubmitJob that
// skipped admission (proposed straight through Raft, as a buggy or hostile
// leader could) asks for a billion tasks. Every replica applies it as a
// business error, stays alive, and agrees; a restarted replica replays it
// the same way.
func TestPoisonCommandThroughRaftLeavesEveryReplicaAlive(t *testing.T) {
	c := newCluster(t, 3)
	_, leader := c.leader()
	p := New(leader, Options{})
	defer p.Close()
	huge := func(parts int) *plan.Graph {
		return &plan.Graph{Name: "poison", Nodes: []plan.Node{{Op: "range", Params: []byte(`{"n":1}`), Partitions: parts}}, Action: plan.GraphAction{Op: "count"}}
	}
	wide := &plan.Graph{Name: "wide", Nodes: []plan.Node{
		{Op: "range", Params: []byte(`{"n":1}`), Partitions: 1},
		{Op: "groupByKey", Partitions: 2_000_000_000, Deps: []plan.Dep{{Kind: plan.Shuffle, Parent: 0, Shuffle: &plan.ShuffleDep{Key: "k", Partitioner: plan.Partitioner{Kind: "hash", Partitions: 2_000_000_000}}}}},
	}, Output: 1, Action: plan.GraphAction{Op: "count"}}
	for _, g := range []*plan.Graph{huge(1_000_000_000), wide} {
		res, err := p.Propose(context.Background(), &dag.SubmitJob{Graph: g})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(res[0].Err, dag.ErrTooLarge) {
			t.Fatalf("job %s: result %v, want %v", g.Name, res[0].Err, dag.ErrTooLarge)
		}
	}
	// The quorum goes on: a sane job is accepted and replicated.
	res, idx, err := p.ProposeIndex(context.Background(), &dag.SubmitJob{Graph: huge(3)})
	if err != nil || res[0].Err != nil {
		t.Fatalf("a sane job after the poison: %v %v", err, res[0].Err)
	}
	for i := range c.nodes {
		c.waitApplied(i, idx)
		var jobs int
		c.fsms[i].Read(func(s *dag.State) { jobs = len(s.Jobs()) })
		if jobs != 1 {
			t.Fatalf("node %d holds %d jobs, want 1", i, jobs)
		}
	}
	// A replica restarted from its log replays the poison as the others
	// applied it.
	victim := (leaderIndex(c) + 1) % 3
	c.nodes[victim].Kill()
	c.start(victim, nil)
	c.waitApplied(victim, idx)
	want, _, _ := c.fsms[leaderIndex(c)].Backup()
	got, _, _ := c.fsms[victim].Backup()
	if string(want) != string(got) {
		t.Fatalf("restarted replica differs from the leader (%d vs %d bytes)", len(got), len(want))
	}
}

func leaderIndex(c *cluster) int {
	i, _ := c.leader()
	return i
}
