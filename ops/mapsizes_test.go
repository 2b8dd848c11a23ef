package ops

import (
	"context"
	"fmt"
	"testing"

	"github.com/baton-sched/baton/blocksize"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
)

// TestMapOutputSizesAreTheSchedulersEncoding: the block sizes a map task
// reports (encoded here, on the executor) are dag.CompressSize of its
// blocks' lengths (decoded by the scheduler), for map outputs of a few
// reducer counts on either side of dag.MaxSizedReducers, above which no
// sizes are sent; and the encodings agree over a range of sizes.
func TestMapOutputSizesAreTheSchedulersEncoding(t *testing.T) {
	for _, reducers := range []int{1, 7, 300, dag.MaxSizedReducers, dag.MaxSizedReducers + 1} {
		g := compile(t, fmt.Sprintf(`{"datasets": {"r": {"op": "range", "n": 20000, "partitions": 1},
			"p": {"op": "repartition", "input": "r", "partitions": %d}},
			"action": {"op": "count", "input": "p"}}`, reducers))
		var dep *plan.Dep
		for i := range g.Nodes[g.Output].Deps {
			if d := &g.Nodes[g.Output].Deps[i]; d.Kind == plan.Shuffle {
				dep = d
			}
		}
		if dep == nil {
			t.Fatal("no shuffle in the plan")
		}
		r := &Runner{Registry: NewRegistry()}
		out, err := r.RunMap(context.Background(), &Task{Graph: g, Node: dep.Parent, Partition: 0, ShuffleKey: dep.Shuffle.Key})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Blocks) != reducers {
			t.Fatalf("%d reducers: %d blocks", reducers, len(out.Blocks))
		}
		if reducers > dag.MaxSizedReducers {
			if out.Sizes != nil {
				t.Fatalf("%d reducers: sizes sent above dag.MaxSizedReducers", reducers)
			}
			continue
		}
		if len(out.Sizes) != reducers {
			t.Fatalf("%d reducers: %d sizes", reducers, len(out.Sizes))
		}
		for i, b := range out.Blocks {
			if want := dag.CompressSize(uint64(len(b))); out.Sizes[i] != want {
				t.Fatalf("%d reducers, block %d of %d bytes: size %d, dag.CompressSize %d", reducers, i, len(b), out.Sizes[i], want)
			}
		}
	}
	// ops encodes with blocksize.Compress: the same bytes as dag's for
	// sizes no test allocates.
	for size := uint64(0); size < 1<<40; size = size*5/4 + 1 {
		if got, want := blocksize.Compress(size), dag.CompressSize(size); got != want {
			t.Fatalf("size %d: ops encodes %d, dag.CompressSize %d", size, got, want)
		}
	}
}
