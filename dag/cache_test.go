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
		{end(CachedPartition{Key: "other", Partition: 0}), "does not read"},
		{end(CachedPartition{Key: "cb", Partition: 1}), "reads 0"}, // another task's partition
		{end(CachedPartition{Key: "cb", Partition: 0, Bytes: -1}), "of -1 bytes"},
		{end(CachedPartition{Key: "cb", Partition: 0, Bytes: MaxCachedBytes + 1}), "bytes"},
		{end(CachedPartition{Key: "cb"}, CachedPartition{Key: "cb"}), "reads 1 persisted"},
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
	// A report of another generation (the dataset unpersisted and
	// persisted again since the task was launched) is not recorded.
	gen, _ := s.CacheGeneration("cb")
	if r := s.Apply(end(CachedPartition{Key: "cb", Partition: 0, Bytes: 5, Gen: gen + 1})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, ok := s.CachedLocation("cb", 0); ok {
		t.Fatal("a partition of another generation was recorded")
	}
	c := end(CachedPartition{Key: "cb", Partition: 1, Bytes: 5, Gen: gen})
	c.Task, c.Partition = 10, 1
	if r := s.Apply(c); r.Err != nil {
		t.Fatal(r.Err)
	}
	if e, ok := s.CachedLocation("cb", 1); !ok || e != "e1" {
		t.Fatalf("partition 1 of cb on %q %v", e, ok)
	}
}

// A task of an entry persisted anew with fewer partitions (unpersisted
// meanwhile) cannot index past the new entry (review finding: it did).
func TestACachedReportOfAnOldShapeIsIgnored(t *testing.T) {
	s := New(Config{})
	s.Apply(&RegisterExecutor{Time: 1, ID: "e1", Cores: 2})
	graph := func(parts int) *plan.Graph {
		return &plan.Graph{Action: plan.GraphAction{Op: "collect"}, Output: 1, Nodes: []plan.Node{
			{Name: "a", Op: "range", Partitions: parts},
			{Name: "b", Op: "map", Partitions: parts, Persist: "cb", Deps: []plan.Dep{{Kind: plan.OneToOne, Parent: 0}}},
		}}
	}
	s.Apply(&SubmitJob{Time: 2, Graph: graph(8)})
	gen, _ := s.CacheGeneration("cb")
	if r := s.Apply(&Unpersist{Time: 3, Keys: []string{"cb"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := s.Apply(&SubmitJob{Time: 4, Graph: graph(2)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	r := s.Apply(&TaskEnded{Time: 5, Task: 9, Stage: 0, Partition: 6, Executor: "e1", Reason: Success, Result: []byte{},
		Cached: []CachedPartition{{Key: "cb", Partition: 6, Gen: gen}}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
