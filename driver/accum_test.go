package driver

import (
	"strings"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// TestAccumulatorKindsHaveOneNumbering: the wire's kinds are the state's.
func TestAccumulatorKindsHaveOneNumbering(t *testing.T) {
	for k, want := range map[api.AccumulatorKind]dag.AccKind{
		api.AccumulatorKind_ACCUMULATOR_KIND_SUM: dag.AccSum, api.AccumulatorKind_ACCUMULATOR_KIND_COUNT: dag.AccCount,
		api.AccumulatorKind_ACCUMULATOR_KIND_MIN: dag.AccMin, api.AccumulatorKind_ACCUMULATOR_KIND_MAX: dag.AccMax,
		api.AccumulatorKind_ACCUMULATOR_KIND_SUM_FLOAT: dag.AccSumFloat, api.AccumulatorKind_ACCUMULATOR_KIND_MIN_FLOAT: dag.AccMinFloat,
		api.AccumulatorKind_ACCUMULATOR_KIND_MAX_FLOAT: dag.AccMaxFloat,
	} {
		if dag.AccKind(k) != want {
			t.Errorf("%s is %d on the wire, %d in the state", k, k, want)
		}
	}
}

// TestBadAccumulatorUpdatesNeverReachTheLog: an executor reporting updates
// the state would refuse gets a failed attempt saying why, not a command
// the state refuses (which would lose the end).
func TestBadAccumulatorUpdatesNeverReachTheLog(t *testing.T) {
	id := &api.TaskID{Task: 9, Stage: 1, Partition: 2}
	good := []*api.Accumulator{{Name: "a", Kind: api.AccumulatorKind_ACCUMULATOR_KIND_COUNT, IntValue: 2}, {Name: "b", Kind: api.AccumulatorKind_ACCUMULATOR_KIND_MAX_FLOAT, FloatValue: 1.5}}
	te := toTaskEnded("e1", &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FINISHED, Result: []byte("x"), ResultSize: 1, Accumulators: good})
	if te.Reason != dag.Success || len(te.Accumulators) != 2 || te.Accumulators[1] != (dag.Accumulator{Name: "b", Kind: dag.AccMaxFloat, Float: 1.5}) {
		t.Fatalf("good updates: %+v", te)
	}
	for _, bad := range [][]*api.Accumulator{
		{{Name: "b", Kind: api.AccumulatorKind_ACCUMULATOR_KIND_COUNT}, {Name: "a", Kind: api.AccumulatorKind_ACCUMULATOR_KIND_COUNT}},
		{{Name: "a", Kind: 300}},
		{{Name: "a", Kind: api.AccumulatorKind_ACCUMULATOR_KIND_COUNT, IntValue: -1}},
		{{Name: "a", Kind: api.AccumulatorKind_ACCUMULATOR_KIND_SUM, Tasks: 4}},
		{nil},
	} {
		te := toTaskEnded("e1", &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FINISHED, Result: []byte("x"), ResultSize: 1, Accumulators: bad})
		if te.Reason != dag.Exception || te.Accumulators != nil || te.Result != nil || !strings.Contains(te.Message, "bad accumulator updates") {
			t.Errorf("bad updates %v: %+v", bad, te)
		}
		if err := dag.CheckAccumulators(te.Accumulators); err != nil {
			t.Errorf("bad updates %v reach the log: %v", bad, err)
		}
	}
}
