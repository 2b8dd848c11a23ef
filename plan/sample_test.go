package plan

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// twoSorts sorts twice: t's sort feeds u's, so u's sample runs over a
// graph that holds t's sort with the bounds t's sample gave.
const twoSorts = `{"datasets": {
	"r": {"op": "range", "n": 100, "partitions": 4},
	"k": {"op": "map", "input": "r", "fn": "pairWithOne"},
	"t": {"op": "sortByKey", "input": "k", "partitions": 3},
	"v": {"op": "map", "input": "t", "fn": "pairWithOne"},
	"u": {"op": "sortByKey", "input": "v", "partitions": 2}},
	"action": {"op": "collect", "input": "u"}}`

func mustParse(t *testing.T, src string) *Plan {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSamplingIsAStepBeforeCompiling: Next stops at each sortByKey in
// lineage order with the graph of its input (as Spark's RangePartitioner
// samples the parent RDD before the sort's shuffle exists), and the bounds
// handed back are the sort's partitioner.
func TestSamplingIsAStepBeforeCompiling(t *testing.T) {
	c, err := Start(mustParse(t, twoSorts), Options{Functions: funcSet{"pairWithOne": true}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Next()
	if err != nil || s == nil {
		t.Fatalf("first Next = %v, %v; want the sample of t", s, err)
	}
	if s.Dataset != "t" || s.Reducers != 3 || s.Graph.Action.Op != "sampleKeys" || !strings.HasSuffix(s.Graph.Name, "(sortByKey sample)") {
		t.Fatalf("sample = %+v", s)
	}
	if out := s.Graph.Nodes[s.Graph.Output]; out.Name != "k" || len(s.Graph.Nodes) != 2 || out.Partitions != 4 {
		t.Fatalf("t's sample computes %q (%d nodes, %d partitions), want k's 2 nodes and 4 partitions", out.Name, len(s.Graph.Nodes), out.Partitions)
	}
	if err := s.Graph.Validate(); err != nil {
		t.Fatalf("the sample's graph does not validate: %v", err)
	}
	if _, err := c.Graph(); err == nil {
		t.Fatal("Graph before the compilation finished")
	}
	if _, err := c.Next(); err == nil {
		t.Fatal("Next before SetBounds: no error")
	}
	tBounds := [][]byte{[]byte("3"), []byte("6")}
	if err := c.SetBounds(s, tBounds); err != nil {
		t.Fatal(err)
	}
	s2, err := c.Next()
	if err != nil || s2 == nil || s2.Dataset != "u" || s2.Reducers != 2 {
		t.Fatalf("second Next = %+v, %v; want the sample of u", s2, err)
	}
	var sorted *Node
	for i := range s2.Graph.Nodes {
		if s2.Graph.Nodes[i].Name == "t" {
			sorted = &s2.Graph.Nodes[i]
		}
	}
	if sorted == nil {
		t.Fatal("u's sample does not compute t")
	}
	if got := sorted.Deps[0].Shuffle.Partitioner.Bounds; len(got) != 2 || !bytes.Equal(got[0], tBounds[0]) || !bytes.Equal(got[1], tBounds[1]) {
		t.Fatalf("t's bounds in u's sample = %q, want %q", got, tBounds)
	}
	if err := c.SetBounds(s2, [][]byte{[]byte("m")}); err != nil {
		t.Fatal(err)
	}
	if s3, err := c.Next(); err != nil || s3 != nil {
		t.Fatalf("third Next = %+v, %v; want the end", s3, err)
	}
	g, err := c.Graph()
	if err != nil {
		t.Fatal(err)
	}
	out := g.Nodes[g.Output]
	if out.Name != "u" || string(out.Deps[0].Shuffle.Partitioner.Bounds[0]) != "m" || g.Action.Op != "collect" {
		t.Fatalf("graph output %q with bounds %q, action %q", out.Name, out.Deps[0].Shuffle.Partitioner.Bounds, g.Action.Op)
	}
}

// TestBoundsAreInTheShuffleKey: two samplings that give different bounds
// make different shuffles (a shuffle is reused only for equal lineage and
// partitioner), equal ones the same.
func TestBoundsAreInTheShuffleKey(t *testing.T) {
	key := func(bounds ...string) string {
		var b [][]byte
		for _, s := range bounds {
			b = append(b, []byte(s))
		}
		g, _, err := compileSampled(mustParse(t, `{"datasets": {"r": {"op": "parallelize", "partitions": 2, "records": [["b","1"],["a","2"]]},
			"s": {"op": "sortByKey", "input": "r", "partitions": 3}}, "action": {"op": "collect", "input": "s"}}`), Options{},
			func(*Sample) ([][]byte, error) { return b, nil })
		if err != nil {
			t.Fatal(err)
		}
		return g.Nodes[g.Output].Deps[0].Shuffle.Key
	}
	if key("a", "b") == key("a", "c") {
		t.Error("different bounds, same shuffle key")
	}
	if key("a", "b") != key("a", "b") {
		t.Error("equal bounds, different shuffle keys")
	}
	// Fewer distinct keys than reducers: the last bound repeats.
	if key("a") != key("a", "a") {
		t.Error("a short sample is not padded with its last bound")
	}
}

func TestSetBoundsRefusesWhatNoSortCanUse(t *testing.T) {
	src := `{"datasets": {"r": {"op": "parallelize", "partitions": 2, "records": [["b","1"]]},
		"s": {"op": "sortByKey", "input": "r", "partitions": 3}}, "action": {"op": "collect", "input": "s"}}`
	for _, tc := range []struct {
		name   string
		bounds []string
		want   string
	}{
		{"too many", []string{"a", "b", "c"}, "3 range bounds for 3 reducers"},
		{"descending", []string{"b", "a"}, "not ascending"},
	} {
		c, err := Start(mustParse(t, src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Next()
		if err != nil || s == nil {
			t.Fatal(s, err)
		}
		var b [][]byte
		for _, x := range tc.bounds {
			b = append(b, []byte(x))
		}
		if err := c.SetBounds(s, b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: SetBounds = %v, want %q", tc.name, err, tc.want)
		}
		if err := c.SetBounds(&Sample{Dataset: "s", Reducers: 3}, nil); err == nil {
			t.Errorf("%s: SetBounds of a sample Next did not give: no error", tc.name)
		}
	}
}

// TestCompileRefusesASortWithoutSampling: Compile, which samples nothing,
// says how to compile a plan that sorts; a one-partition sort needs no
// bounds and compiles.
func TestCompileRefusesASortWithoutSampling(t *testing.T) {
	_, err := Compile(mustParse(t, `{"datasets": {"r": {"op": "parallelize", "partitions": 2, "records": [["b","1"]]},
		"s": {"op": "sortByKey", "input": "r", "partitions": 3}}, "action": {"op": "collect", "input": "s"}}`), Options{})
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "plan.Start") {
		t.Fatalf("Compile of a sort = %v, want a plan error naming plan.Start", err)
	}
	if _, err := Compile(mustParse(t, `{"datasets": {"r": {"op": "parallelize", "partitions": 2, "records": [["b","1"]]},
		"s": {"op": "sortByKey", "input": "r", "partitions": 1}}, "action": {"op": "collect", "input": "s"}}`), Options{}); err != nil {
		t.Fatalf("a one-partition sort: %v", err)
	}
}

// countingResolver counts file listings.
type countingResolver struct {
	fakeResolver
	calls int
}

func (r *countingResolver) TextFileSplits(glob string, minPartitions int) ([]Split, error) {
	r.calls++
	return r.fakeResolver.TextFileSplits(glob, minPartitions)
}

// TestAPlanWithoutSortsIsCompiledOnce: Start's check is the compilation
// when nothing needs sampling (files are listed once).
func TestAPlanWithoutSortsIsCompiledOnce(t *testing.T) {
	r := &countingResolver{}
	p := mustParse(t, `{"datasets": {"t": {"op": "textFile", "path": "/in/*", "partitions": 2}}, "action": {"op": "count", "input": "t"}}`)
	if _, err := Compile(p, Options{Resolver: r}); err != nil {
		t.Fatal(err)
	}
	if r.calls != 1 {
		t.Fatalf("files listed %d times, want 1", r.calls)
	}
}
