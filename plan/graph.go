package plan

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Graph is a compiled plan: the form the scheduler consumes and the log
// records. Nodes are in topological order (every dependency points to a
// lower index), each with its partition count and dependencies; shuffle
// dependencies carry the shuffle's key, partitioner and reducer count.
//
// A Graph is immutable once built: the scheduler shares it between stages
// and jobs.
type Graph struct {
	Name  string `json:"name,omitempty"`
	Nodes []Node `json:"nodes"`
	// Output is the node the action reads.
	Output int         `json:"output"`
	Action GraphAction `json:"action"`
}

// Node is one dataset of a compiled plan.
type Node struct {
	// Name is the dataset's name in the plan.
	Name string `json:"name,omitempty"`
	// Op is the operator that computes a partition of this node from its
	// dependencies' partitions (or from nothing, for a source).
	Op string `json:"op"`
	// Fn is the function the operator applies, if any.
	Fn Func `json:"fn,omitzero"`
	// Params holds the operator's other parameters as canonical JSON
	// (a textFile's splits, a range's count, a parallelize's records).
	Params     json.RawMessage `json:"params,omitempty"`
	Partitions int             `json:"partitions"`
	Deps       []Dep           `json:"deps,omitempty"`
	// Persist, when set, is the key of a persisted dataset (the plan's
	// "persist": true), derived from its lineage like a shuffle's: tasks
	// keep its computed partitions in their executors' block stores, and
	// jobs over the same lineage read them there.
	Persist string `json:"persist,omitempty"`
}

// MaxPersistKey bounds a persisted dataset's key.
const MaxPersistKey = 64

// DepKind says how a child partition depends on its parent's partitions.
type DepKind uint8

// Dependency kinds. The narrow kinds (OneToOne, Range) are pipelined into
// one stage; a Shuffle dependency is a stage boundary.
const (
	// OneToOne: child partition i reads parent partition i.
	OneToOne DepKind = iota + 1
	// Range: child partitions [OutStart, OutStart+Length) read parent
	// partitions [InStart, InStart+Length) one to one; a union is a Range
	// dependency on each input.
	Range
	// Shuffle: child partition r reads bucket r of every parent
	// partition's output, partitioned by the shuffle's partitioner.
	Shuffle
)

func (k DepKind) String() string {
	switch k {
	case OneToOne:
		return "one-to-one"
	case Range:
		return "range"
	case Shuffle:
		return "shuffle"
	}
	return fmt.Sprintf("DepKind(%d)", uint8(k))
}

// Narrow reports whether the dependency is pipelined (not a shuffle).
func (k DepKind) Narrow() bool { return k == OneToOne || k == Range }

// Dep is a dependency of a node on a parent node.
type Dep struct {
	Kind   DepKind `json:"kind"`
	Parent int     `json:"parent"`
	// Range dependencies only.
	InStart  int `json:"inStart,omitempty"`
	OutStart int `json:"outStart,omitempty"`
	Length   int `json:"length,omitempty"`
	// Shuffle dependencies only.
	Shuffle *ShuffleDep `json:"shuffle,omitempty"`
}

// ShuffleDep describes a shuffle: the map side (the parent node) writes its
// records into Partitioner.Partitions buckets, combined by Combiner when set.
type ShuffleDep struct {
	// Key identifies the shuffle. The compiler derives it from the map
	// side's lineage, so two jobs that shuffle the same data the same way
	// share one shuffle and its map outputs.
	Key         string      `json:"key"`
	Partitioner Partitioner `json:"partitioner"`
	// Combiner, when set, combines values of one key on the map side
	// (reduceByKey's map-side combine).
	Combiner Func `json:"combiner,omitzero"`
}

// Partitioner assigns a record's key to a reducer.
type Partitioner struct {
	// Kind is "hash" or "range".
	Kind string `json:"kind"`
	// Partitions is the number of reducers.
	Partitions int `json:"partitions"`
	// Bounds are a range partitioner's upper bounds, one less than
	// Partitions, ascending.
	Bounds [][]byte `json:"bounds,omitempty"`
	// Descending reverses a range partitioner's order.
	Descending bool `json:"descending,omitempty"`
}

// GraphAction is the action of a compiled plan.
type GraphAction struct {
	Op   string `json:"op"`
	Fn   Func   `json:"fn,omitzero"`
	N    int64  `json:"n,omitempty"`
	Path string `json:"path,omitempty"`
}

// Validate checks the graph's structure: dependencies point to earlier
// nodes (so there is no cycle), partitions >= 1, narrow dependencies within
// their parents' partitions, and shuffles with a key, a known partitioner
// and a reducer count matching the child. It is the check the scheduler
// applies to a graph from the log's clients before accepting a job.
func (g *Graph) Validate() error {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(g.Nodes) == 0 {
		fail("graph has no nodes")
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		name := fmt.Sprintf("node %d (%s)", i, n.Name)
		if n.Op == "" {
			fail("%s: no op", name)
		}
		if n.Partitions < 1 {
			fail("%s: partitions must be >= 1, got %d", name, n.Partitions)
		}
		if len(n.Persist) > MaxPersistKey {
			fail("%s: persist key of %d bytes, more than %d", name, len(n.Persist), MaxPersistKey)
		}
		for j, d := range n.Deps {
			if d.Parent < 0 || d.Parent >= len(g.Nodes) {
				fail("%s: dependency %d: unknown dataset reference %d", name, j, d.Parent)
				continue
			}
			if d.Parent >= i {
				fail("%s: dependency %d on node %d: cycle (dependencies must point to earlier nodes)", name, j, d.Parent)
				continue
			}
			parent := &g.Nodes[d.Parent]
			switch d.Kind {
			case OneToOne:
				if parent.Partitions != n.Partitions {
					fail("%s: one-to-one dependency on node %d with %d partitions, want %d", name, d.Parent, parent.Partitions, n.Partitions)
				}
			case Range:
				if d.Length < 1 || d.InStart < 0 || d.OutStart < 0 ||
					d.InStart+d.Length > parent.Partitions || d.OutStart+d.Length > n.Partitions {
					fail("%s: range dependency on node %d out of bounds (in %d, out %d, length %d)", name, d.Parent, d.InStart, d.OutStart, d.Length)
				}
			case Shuffle:
				s := d.Shuffle
				if s == nil || s.Key == "" {
					fail("%s: shuffle dependency on node %d without a key", name, d.Parent)
					continue
				}
				switch s.Partitioner.Kind {
				case "hash":
				case "range":
					if len(s.Partitioner.Bounds) != s.Partitioner.Partitions-1 {
						fail("%s: range partitioner with %d bounds for %d partitions", name, len(s.Partitioner.Bounds), s.Partitioner.Partitions)
					}
				default:
					fail("%s: shuffle %s: unknown partitioner %q", name, s.Key, s.Partitioner.Kind)
				}
				if s.Partitioner.Partitions != n.Partitions {
					fail("%s: shuffle %s has %d reducers, node has %d partitions", name, s.Key, s.Partitioner.Partitions, n.Partitions)
				}
			default:
				fail("%s: dependency %d: unknown kind %d", name, j, d.Kind)
			}
		}
	}
	if g.Output < 0 || g.Output >= len(g.Nodes) {
		fail("action on a missing dataset (node %d)", g.Output)
	}
	if g.Action.Op == "" {
		fail("no action")
	}
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}

// NarrowClosure returns the nodes computed in the stage that ends at node
// out: out and every node reachable from it through narrow dependencies,
// in ascending order. These are the nodes a task of that stage runs.
func (g *Graph) NarrowClosure(out int) []int {
	seen := make([]bool, len(g.Nodes))
	seen[out] = true
	queue := []int{out}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, d := range g.Nodes[i].Deps {
			if d.Kind.Narrow() && !seen[d.Parent] {
				seen[d.Parent] = true
				queue = append(queue, d.Parent)
			}
		}
	}
	var nodes []int
	for i, ok := range seen {
		if ok {
			nodes = append(nodes, i)
		}
	}
	return nodes
}

// ShuffleDeps returns the shuffle dependencies read by the stage that ends
// at node out (breadth-first through narrow dependencies, as Spark's
// getShuffleDependencies), each once, in the order found.
func (g *Graph) ShuffleDeps(out int) []Dep {
	var deps []Dep
	seenKey := map[string]bool{}
	for _, i := range g.NarrowClosure(out) {
		for _, d := range g.Nodes[i].Deps {
			if d.Kind == Shuffle && !seenKey[d.Shuffle.Key] {
				seenKey[d.Shuffle.Key] = true
				deps = append(deps, d)
			}
		}
	}
	return deps
}

// String renders the graph one node a line, for tests and debugging.
func (g *Graph) String() string {
	var b strings.Builder
	for i, n := range g.Nodes {
		fmt.Fprintf(&b, "%d %s %s", i, n.Name, n.Op)
		if n.Fn.Name != "" {
			fmt.Fprintf(&b, " fn=%s", n.Fn.String())
		}
		fmt.Fprintf(&b, " p=%d", n.Partitions)
		for _, d := range n.Deps {
			switch d.Kind {
			case Shuffle:
				fmt.Fprintf(&b, " <-shuffle(%d,%s,%d)", d.Parent, d.Shuffle.Partitioner.Kind, d.Shuffle.Partitioner.Partitions)
			case Range:
				fmt.Fprintf(&b, " <-range(%d,%d,%d,%d)", d.Parent, d.InStart, d.OutStart, d.Length)
			default:
				fmt.Fprintf(&b, " <-%d", d.Parent)
			}
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "action %s on %d\n", g.Action.Op, g.Output)
	return b.String()
}
