package dag

import (
	"errors"
	"strings"
	"testing"

	"github.com/baton-sched/baton/plan"
)

// An executor reporting cached partitions it cannot have kept is refused
// before anything changes; a failure cannot keep partitions.
func TestImpossibleCachedPartitionsAreRefused(t *testing.T) {
	s := New(Config{})
	s.Apply(&RegisterExecutor{Time: 1, ID: "e1", Cores: 2})
	g := &plan.Graph{Action: plan.GraphAction{Op: "collect"}, Output: 1, Nodes: []plan.Node{
		{Name: "a", Op: "range", Partitions: 2},
		{Name: "b", Op: "map", Partitions: 2, Persist: "cb", Deps: []plan.Dep{{Kind: plan.OneToOne, Parent: 0}}},
	}}
	if r := s.Apply(&SubmitJob{Time: 2, Graph: g}); r.Err != nil {
		t.Fatal(r.Err)
	}
	end := func(cached ...CachedPartition) *TaskEnded {
		return &TaskEnded{Time: 3, Task: 9, Stage: 0, Partition: 0, Executor: "e1", Reason: Success, Result: []byte{}, Cached: cached}
	}
	for _, c := range []struct {
		cmd  *TaskEnded
		want string
	}{
		{end(CachedPartition{Key: "other", Partition: 0}), "does not persist"},
		{end(CachedPartition{Key: "cb", Partition: 2}), "out of range"},
		{end(CachedPartition{Key: "cb", Partition: 0, Bytes: -1}), "out of range"},
		{end(CachedPartition{Key: "cb"}, CachedPartition{Key: "cb", Partition: 1}), "cached twice"},
		{func() *TaskEnded { c := end(CachedPartition{Key: "cb"}); c.Reason = Exception; return c }(), "with a Exception end"},
	} {
		r := s.Apply(c.cmd)
		if !errors.Is(r.Err, ErrInvalidCommand) || !strings.Contains(r.Err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cmd.Cached, r.Err, c.want)
		}
	}
	if got := s.Cached(); len(got) != 1 || got[0].Cached != 0 {
		t.Fatalf("cached after refused reports: %+v", got)
	}
	if r := s.Apply(end(CachedPartition{Key: "cb", Partition: 0, Bytes: 5})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if e, ok := s.CachedLocation("cb", 0); !ok || e != "e1" {
		t.Fatalf("partition 0 of cb on %q %v", e, ok)
	}
}
