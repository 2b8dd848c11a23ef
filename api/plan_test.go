package api

import (
	"reflect"
	"testing"

	"github.com/baton-sched/baton/plan"
)

func TestPlanRoundTrip(t *testing.T) {
	p, err := plan.Parse([]byte(`{
		"name": "wc",
		"datasets": {
			"lines": {"op": "parallelize", "records": ["a b", ["k", "v"]], "partitions": 2},
			"words": {"op": "flatMap", "input": "lines", "fn": "words"},
			"f": {"op": "map", "input": "words", "fn": {"name": "field", "args": {"i": 1, "sep": ","}}, "persist": true},
			"counts": {"op": "reduceByKey", "input": "f", "fn": "sum", "partitions": 3}
		},
		"action": {"op": "take", "input": "counts", "n": 5}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	back, err := PlanFromProto(PlanToProto(p))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, back) {
		t.Fatalf("round trip changed the plan:\n%+v\n%+v", p, back)
	}
	if _, err := PlanFromProto(&Plan{Datasets: map[string]*Dataset{"a": {Op: "map", Fn: &Func{Name: "f", ArgsJson: "[1]"}}}}); err == nil {
		t.Fatal("array args accepted")
	}
	if _, err := PlanFromProto(nil); err == nil {
		t.Fatal("nil plan accepted")
	}
}
