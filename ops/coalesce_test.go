package ops

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-sched/baton/plan"
)

// A task of a coalesced stage reads its reducers in order: the records of
// reducers [0,2) and [2,5) are those of the five reducers read one by one,
// for one shuffle and for a join of two.
func TestACoalescedTaskReadsItsReducersInOrder(t *testing.T) {
	for _, src := range []string{
		`{"datasets": {
			"nums": {"op": "range", "n": 200, "partitions": 4},
			"keyed": {"op": "map", "input": "nums", "fn": {"name": "field", "args": {"i": 0}}},
			"pairs": {"op": "map", "input": "keyed", "fn": "pairWithOne"},
			"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 5},
			"out": {"op": "mapValues", "input": "counts", "fn": "upper"}},
			"action": {"op": "collect", "input": "out"}}`,
		`{"datasets": {
			"a": {"op": "range", "n": 60, "partitions": 3},
			"ap": {"op": "map", "input": "a", "fn": "pairWithOne"},
			"b": {"op": "range", "n": 40, "partitions": 2},
			"bp": {"op": "map", "input": "b", "fn": "pairWithOne"},
			"j": {"op": "join", "inputs": ["ap", "bp"], "partitions": 5}},
			"action": {"op": "collect", "input": "j"}}`,
	} {
		g := compile(t, src)
		r, inputs := runMaps(t, g)
		var want []byte
		for p := 0; p < 5; p++ {
			res, err := r.RunResult(context.Background(), &Task{Graph: g, Node: g.Output, Partition: p, Inputs: inputs})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, res...)
		}
		var got []byte
		for i, rr := range []ReducerRange{{0, 2}, {2, 5}} {
			res, err := r.RunResult(context.Background(), &Task{Graph: g, Node: g.Output, Partition: i, Inputs: inputs, Reducers: rr})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, res...)
		}
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("coalesced tasks read %d bytes, the reducers one by one %d (or none)", len(got), len(want))
		}
	}
}

func TestABadReducerRangeIsRefused(t *testing.T) {
	g := compile(t, `{"datasets": {
		"nums": {"op": "range", "n": 20, "partitions": 2},
		"pairs": {"op": "map", "input": "nums", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 3},
		"more": {"op": "range", "n": 5, "partitions": 1},
		"both": {"op": "union", "inputs": ["counts", "more"]}},
		"action": {"op": "collect", "input": "both"}}`)
	r, inputs := runMaps(t, g)
	counts := -1
	for i, n := range g.Nodes {
		if n.Name == "counts" {
			counts = i
		}
	}
	for _, c := range []struct {
		node int
		rr   ReducerRange
		want string
	}{
		{counts, ReducerRange{2, 4}, "out of the 3 partitions"},
		{counts, ReducerRange{1, 1}, "out of the 3 partitions"},
		{g.Output, ReducerRange{0, 2}, "cannot be coalesced"},
	} {
		_, err := r.RunResult(context.Background(), &Task{Graph: g, Node: c.node, Partition: 0, Inputs: inputs, Reducers: c.rr})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("node %d range %v: %v, want %q", c.node, c.rr, err, c.want)
		}
	}
}

// runMaps runs every map stage of g in memory and returns a runner that
// reads their outputs, with the inputs a task of any stage needs.
func runMaps(t *testing.T, g *plan.Graph) (*Runner, map[string]ShuffleInput) {
	t.Helper()
	return runMapsWith(t, g, &Runner{Registry: NewRegistry()})
}

func runMapsWith(t *testing.T, g *plan.Graph, r *Runner) (*Runner, map[string]ShuffleInput) {
	t.Helper()
	f := &memFetcher{outs: map[string][]*MapOutput{}}
	r.Fetcher = f
	inputs := map[string]ShuffleInput{}
	for i := range g.Nodes {
		for _, d := range g.Nodes[i].Deps {
			if d.Kind != plan.Shuffle || f.outs[d.Shuffle.Key] != nil {
				continue
			}
			n := g.Nodes[d.Parent].Partitions
			outs := make([]*MapOutput, n)
			for p := 0; p < n; p++ {
				out, err := r.RunMap(context.Background(), &Task{Graph: g, Node: d.Parent, Partition: p, ShuffleKey: d.Shuffle.Key, Inputs: inputs})
				if err != nil {
					t.Fatalf("map %d of %s: %v", p, d.Shuffle.Key, err)
				}
				outs[p] = out
			}
			f.outs[d.Shuffle.Key] = outs
			inputs[d.Shuffle.Key] = ShuffleInput{Key: d.Shuffle.Key, Maps: n}
		}
	}
	return r, inputs
}

// memCache is a Cache in memory.
type memCache struct {
	kept map[string][]byte
	gets int
	bad  int
}

func (m *memCache) Get(key string, part int) ([]byte, bool) {
	b, ok := m.kept[fmt.Sprintf("%s/%d", key, part)]
	if ok {
		m.gets++
	}
	return b, ok
}

func (m *memCache) Keep(key string, part int, block []byte) {
	m.kept[fmt.Sprintf("%s/%d", key, part)] = block
}

func (m *memCache) Unreadable(key string, part int, err error) { m.bad++ }

// A persisted dataset's partition is kept when computed in full, read
// back instead of computed, and not kept when the task stops early (take).
func TestPersistedPartitionsAreKeptAndRead(t *testing.T) {
	g := compile(t, `{"datasets": {
		"nums": {"op": "range", "n": 40, "partitions": 2},
		"pairs": {"op": "map", "input": "nums", "fn": "pairWithOne", "persist": true},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 2}},
		"action": {"op": "collect", "input": "counts"}}`)
	pairs := -1
	for i, n := range g.Nodes {
		if n.Name == "pairs" {
			pairs = i
		}
	}
	if pairs < 0 || g.Nodes[pairs].Persist == "" {
		t.Fatalf("the persisted dataset has no key: %v", g)
	}
	r := &Runner{Registry: NewRegistry()}
	c := &memCache{kept: map[string][]byte{}}
	key := g.ShuffleDeps(g.Output)[0].Shuffle.Key
	run := func() *MapOutput {
		out, err := r.RunMap(context.Background(), &Task{Graph: g, Node: pairs, Partition: 1, ShuffleKey: key, Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := run()
	if len(c.kept) != 1 || c.gets != 0 {
		t.Fatalf("after the first run: kept %d, read %d", len(c.kept), c.gets)
	}
	second := run()
	if c.gets != 1 || !bytes.Equal(bytes.Join(first.Blocks, nil), bytes.Join(second.Blocks, nil)) {
		t.Fatalf("the second run read the cache %d times and gave other blocks", c.gets)
	}
	// A take stops after one record: partition 0 is not kept.
	tg := *g
	tg.Output, tg.Action = pairs, plan.GraphAction{Op: "take", N: 1}
	if _, err := r.RunResult(context.Background(), &Task{Graph: &tg, Node: pairs, Partition: 0, Cache: c}); err != nil {
		t.Fatal(err)
	}
	if len(c.kept) != 1 {
		t.Fatalf("a partition read in part was kept: %d kept", len(c.kept))
	}
	// A kept block that does not decode is computed instead (and kept
	// anew), nothing of it emitted.
	for k := range c.kept {
		c.kept[k] = []byte{0xff, 0xff, 0xff}
	}
	third := run()
	if c.bad != 1 || !bytes.Equal(bytes.Join(first.Blocks, nil), bytes.Join(third.Blocks, nil)) {
		t.Fatalf("a block that does not decode: told %d times, same blocks %v", c.bad, bytes.Equal(bytes.Join(first.Blocks, nil), bytes.Join(third.Blocks, nil)))
	}
}
