package client

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/baton-sched/baton/plan"
)

// TestDatasetPlans: a lineage becomes the plan a user would write: shared
// ancestors once, both inputs of a join, arguments as canonical JSON, and
// every plan valid.
func TestDatasetPlans(t *testing.T) {
	c := &Client{}
	words := c.TextFile("/data/*.txt", 4).FlatMap("words")
	left := words.Map("pairWithOne").ReduceByKey("sum", 8)
	right := words.Map("keyBy", Args{"sep": " ", "i": 0})
	p, err := left.Join(right, 2).Named("j").Plan()
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "j" || len(p.Datasets) != 6 || p.Action.Op != "collect" {
		t.Fatalf("plan %s: %d datasets, action %s", p.Name, len(p.Datasets), p.Action.Op)
	}
	join := p.Datasets[p.Action.Input]
	if join.Op != "join" || join.How != "inner" || len(join.Inputs) != 2 || join.Partitions != 2 {
		t.Fatalf("join node: %+v", join)
	}
	var keyBy *plan.Dataset
	for _, ds := range p.Datasets {
		if ds.Fn != nil && ds.Fn.Name == "keyBy" {
			keyBy = ds
		}
	}
	if keyBy == nil || string(keyBy.Fn.Args) != `{"i":0,"sep":" "}` {
		t.Fatalf("keyBy arguments: %+v", keyBy)
	}
	// The plan is valid (functions unchecked here).
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Parse(b); err != nil {
		t.Fatalf("the plan does not parse back: %v\n%s", err, b)
	}
	// Deriving twice from one dataset leaves it unchanged.
	a, b2 := words.Filter("nonEmpty"), words.Filter("even")
	pa, _ := a.Plan()
	pb, _ := b2.Plan()
	if len(pa.Datasets) != 3 || len(pb.Datasets) != 3 {
		t.Fatalf("siblings share nodes: %d and %d datasets", len(pa.Datasets), len(pb.Datasets))
	}
}

// TestDatasetErrors: bad arguments are reported by the action, with the
// function's name, and nothing is submitted.
func TestDatasetErrors(t *testing.T) {
	c := &Client{}
	d := c.Range(10, 2).Map("add", Args{"n": func() {}}).Filter("even")
	if _, err := d.Plan(); err == nil || !strings.Contains(err.Error(), "arguments of add") {
		t.Fatalf("bad arguments: %v", err)
	}
	if _, err := d.Count(context.Background()); err == nil {
		t.Fatal("an action ran with bad arguments")
	}
	other := (&Client{}).Range(3, 1)
	if _, err := c.Range(3, 1).Union(other).Plan(); err == nil || !strings.Contains(err.Error(), "different clients") {
		t.Fatalf("union across clients: %v", err)
	}
}
