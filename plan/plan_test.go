package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const wordCount = `{
  "name": "wordcount",
  "datasets": {
    "lines":  {"op": "textFile", "path": "/data/*.txt", "partitions": 8},
    "words":  {"op": "flatMap", "input": "lines", "fn": "words"},
    "pairs":  {"op": "map", "input": "words", "fn": "pairWithOne"},
    "counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 4}
  },
  "action": {"op": "collect", "input": "counts"}
}`

// fakeResolver splits every glob into minPartitions splits of one file.
type fakeResolver struct{}

func (fakeResolver) TextFileSplits(glob string, minPartitions int) ([]Split, error) {
	var s []Split
	for i := 0; i < minPartitions; i++ {
		s = append(s, Split{Path: glob, Start: int64(i) * 100, Length: 100, Size: int64(minPartitions) * 100})
	}
	return s, nil
}

type funcSet map[string]bool

func (f funcSet) CheckFunc(op string, fn Func) error {
	if !f[fn.Name] {
		return fmt.Errorf("unknown function %q", fn.Name)
	}
	return nil
}

func TestParseAndCompileWordCount(t *testing.T) {
	p, err := Parse([]byte(wordCount))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Compile(p, Options{Resolver: fakeResolver{}, Functions: funcSet{"words": true, "pairWithOne": true, "sum": true}})
	if err != nil {
		t.Fatal(err)
	}
	want := `0 lines textFile p=8
1 words flatMap fn=words p=8 <-0
2 pairs map fn=pairWithOne p=8 <-1
3 counts reduceByKey fn=sum p=4 <-shuffle(2,hash,4)
action collect on 3
`
	if got := g.String(); got != want {
		t.Fatalf("graph:\n%s\nwant:\n%s", got, want)
	}
	if got := g.NarrowClosure(2); len(got) != 3 {
		t.Errorf("NarrowClosure(2) = %v, want [0 1 2]", got)
	}
	if deps := g.ShuffleDeps(3); len(deps) != 1 || deps[0].Shuffle.Combiner.Name != "sum" {
		t.Errorf("ShuffleDeps(3) = %+v", deps)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		plan string
		want []string
	}{
		{"unknown dataset reference", `{"datasets": {"a": {"op": "map", "input": "nope", "fn": "f"}}, "action": {"op": "collect", "input": "a"}}`,
			[]string{`dataset "a": unknown dataset reference "nope"`}},
		{"cycle", `{"datasets": {"a": {"op": "map", "input": "b", "fn": "f"}, "b": {"op": "map", "input": "a", "fn": "f"}}, "action": {"op": "collect", "input": "a"}}`,
			[]string{"cycle: a -> b -> a"}},
		{"partitions below one", `{"datasets": {"a": {"op": "range", "n": 10}}, "action": {"op": "count", "input": "a"}}`,
			[]string{"partitions must be >= 1, got 0"}},
		{"negative partitions on a shuffle", `{"datasets": {"a": {"op": "range", "n": 10, "partitions": 2}, "k": {"op": "map", "input": "a", "fn": "pairWithOne"}, "b": {"op": "groupByKey", "input": "k", "partitions": -1}}, "action": {"op": "count", "input": "b"}}`,
			[]string{"partitions must be >= 1, got -1"}},
		{"action on a missing dataset", `{"datasets": {"a": {"op": "range", "n": 10, "partitions": 2}}, "action": {"op": "collect", "input": "zz"}}`,
			[]string{`action on a missing dataset "zz"`}},
		{"unknown op", `{"datasets": {"a": {"op": "frobnicate"}}, "action": {"op": "collect", "input": "a"}}`,
			[]string{`unknown op "frobnicate"`}},
		{"unknown action", `{"datasets": {"a": {"op": "range", "n": 1, "partitions": 1}}, "action": {"op": "explode", "input": "a"}}`,
			[]string{`action: unknown op "explode"`}},
		{"missing fn", `{"datasets": {"a": {"op": "range", "n": 1, "partitions": 1}, "b": {"op": "map", "input": "a"}}, "action": {"op": "collect", "input": "b"}}`,
			[]string{"needs fn"}},
		{"narrow op with partitions", `{"datasets": {"a": {"op": "range", "n": 1, "partitions": 1}, "b": {"op": "map", "input": "a", "fn": "f", "partitions": 3}}, "action": {"op": "collect", "input": "b"}}`,
			[]string{"takes no partitions"}},
		{"every problem reported", `{"datasets": {"a": {"op": "map", "input": "x", "fn": "f"}, "b": {"op": "nope"}}, "action": {"op": "collect", "input": "c"}}`,
			[]string{`unknown dataset reference "x"`, `unknown op "nope"`, `action on a missing dataset "c"`}},
		{"unknown field", `{"datasets": {}, "action": {"op": "collect", "input": "a"}, "extra": 1}`,
			[]string{`unknown field "extra"`}},
		{"join with one input", `{"datasets": {"a": {"op": "range", "n": 1, "partitions": 1}, "j": {"op": "join", "inputs": ["a"]}}, "action": {"op": "collect", "input": "j"}}`,
			[]string{"needs exactly two inputs, got 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.plan))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "plan: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestGraphValidate(t *testing.T) {
	ok := func() *Graph {
		return &Graph{
			Nodes: []Node{
				{Name: "a", Op: "range", Partitions: 2},
				{Name: "b", Op: "groupByKey", Partitions: 3, Deps: []Dep{{Kind: Shuffle, Parent: 0, Shuffle: &ShuffleDep{Key: "k", Partitioner: Partitioner{Kind: "hash", Partitions: 3}}}}},
			},
			Output: 1,
			Action: GraphAction{Op: "collect"},
		}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid graph: %v", err)
	}
	tests := []struct {
		name   string
		change func(g *Graph)
		want   string
	}{
		{"shuffle without a key", func(g *Graph) { g.Nodes[1].Deps[0].Shuffle.Key = "" }, "without a key"},
		{"cycle", func(g *Graph) { g.Nodes[0].Deps = []Dep{{Kind: OneToOne, Parent: 1}} }, "cycle"},
		{"unknown dataset reference", func(g *Graph) { g.Nodes[1].Deps[0].Parent = 7 }, "unknown dataset reference 7"},
		{"partitions below one", func(g *Graph) { g.Nodes[0].Partitions = 0 }, "partitions must be >= 1"},
		{"reducer count mismatch", func(g *Graph) { g.Nodes[1].Deps[0].Shuffle.Partitioner.Partitions = 4 }, "has 4 reducers"},
		{"action on a missing dataset", func(g *Graph) { g.Output = 5 }, "action on a missing dataset"},
		{"bad range", func(g *Graph) { g.Nodes[1].Deps = []Dep{{Kind: Range, Parent: 0, Length: 5}} }, "out of bounds"},
		{"unknown partitioner", func(g *Graph) { g.Nodes[1].Deps[0].Shuffle.Partitioner.Kind = "zig" }, "unknown partitioner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := ok()
			tt.change(g)
			err := g.Validate()
			var pe *Error
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an *Error containing %q", err, tt.want)
			}
		})
	}
}

func TestShuffleKeysFollowLineage(t *testing.T) {
	compile := func(src string) *Graph {
		t.Helper()
		p, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		g, err := Compile(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	a := compile(`{"name": "one", "datasets": {"r": {"op": "range", "n": 100, "partitions": 4}, "k": {"op": "map", "input": "r", "fn": "pairWithOne"}, "g": {"op": "groupByKey", "input": "k", "partitions": 2}}, "action": {"op": "count", "input": "g"}}`)
	// Same lineage under other names and another action: same shuffle.
	b := compile(`{"name": "two", "datasets": {"x": {"op": "range", "n": 100, "partitions": 4}, "z": {"op": "map", "input": "x", "fn": "pairWithOne"}, "y": {"op": "groupByKey", "input": "z", "partitions": 2}}, "action": {"op": "collect", "input": "y"}}`)
	// Another count: another shuffle.
	c := compile(`{"datasets": {"r": {"op": "range", "n": 101, "partitions": 4}, "k": {"op": "map", "input": "r", "fn": "pairWithOne"}, "g": {"op": "groupByKey", "input": "k", "partitions": 2}}, "action": {"op": "count", "input": "g"}}`)
	key := func(g *Graph) string {
		for _, n := range g.Nodes {
			for _, d := range n.Deps {
				if d.Shuffle != nil {
					return d.Shuffle.Key
				}
			}
		}
		return ""
	}
	if key(a) != key(b) {
		t.Errorf("equal lineage, different keys: %s vs %s", key(a), key(b))
	}
	if key(a) == key(c) {
		t.Errorf("different lineage, same key %s", key(a))
	}
}

func TestCompileJoinAndUnion(t *testing.T) {
	p, err := Parse([]byte(`{"datasets": {
		"a": {"op": "parallelize", "records": [["k", 1], ["j", "2"]], "partitions": 2},
		"b": {"op": "range", "n": 10, "partitions": 3},
		"u": {"op": "union", "inputs": ["a", "b"]},
		"j": {"op": "join", "inputs": ["a", "u"], "partitions": 4, "how": "left"}},
		"action": {"op": "take", "input": "j", "n": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Compile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `0 a parallelize p=2
1 b range p=3
2 u union p=5 <-range(0,0,0,2) <-range(1,0,2,3)
3 j join p=4 <-shuffle(0,hash,4) <-shuffle(2,hash,4)
action take on 3
`
	if got := g.String(); got != want {
		t.Fatalf("graph:\n%s\nwant:\n%s", got, want)
	}
	if got := string(g.Nodes[0].Params); got != `{"records":[["k","1"],["j","2"]]}` {
		t.Errorf("parallelize params = %s", got)
	}
}

func TestUnknownFunction(t *testing.T) {
	p, err := Parse([]byte(`{"datasets": {"a": {"op": "range", "n": 1, "partitions": 1}, "b": {"op": "map", "input": "a", "fn": "nosuch"}}, "action": {"op": "collect", "input": "b"}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(p, Options{Functions: funcSet{"words": true}})
	if err == nil || !strings.Contains(err.Error(), `unknown function "nosuch"`) {
		t.Fatalf("Compile = %v, want unknown function", err)
	}
}

func TestFuncJSON(t *testing.T) {
	var f Func
	if err := json.Unmarshal([]byte(`{"name": "field", "args": {"sep": ",", "i": 1}}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.Name != "field" || string(f.Args) != `{"i":1,"sep":","}` {
		t.Fatalf("got %q %s", f.Name, f.Args)
	}
	out, _ := json.Marshal(f)
	if string(out) != `{"name":"field","args":{"i":1,"sep":","}}` {
		t.Fatalf("marshal: %s", out)
	}
	if err := json.Unmarshal([]byte(`{"name": "x", "args": [1]}`), &f); err == nil {
		t.Fatal("args as an array accepted")
	}
	if err := json.Unmarshal([]byte(`"words"`), &f); err != nil || f.Name != "words" || f.Args != nil {
		t.Fatalf("bare name: %v %+v", err, f)
	}
}

// noFiles matches nothing under /missing.
type noFiles struct{ fakeResolver }

func (r noFiles) TextFileSplits(glob string, minPartitions int) ([]Split, error) {
	if strings.HasPrefix(glob, "/missing") {
		return nil, nil
	}
	return r.fakeResolver.TextFileSplits(glob, minPartitions)
}

// compileSampled compiles p with Start and Next, answering each sample
// with sample (the caller's sampling job); it returns the samples asked.
func compileSampled(p *Plan, opts Options, sample func(*Sample) ([][]byte, error)) (*Graph, []*Sample, error) {
	c, err := Start(p, opts)
	if err != nil {
		return nil, nil, err
	}
	var asked []*Sample
	for {
		s, err := c.Next()
		if err != nil {
			return nil, asked, err
		}
		if s == nil {
			g, err := c.Graph()
			return g, asked, err
		}
		asked = append(asked, s)
		bounds, err := sample(s)
		if err != nil {
			return nil, asked, &SamplingError{Dataset: s.Dataset, Err: err}
		}
		if err := c.SetBounds(s, bounds); err != nil {
			return nil, asked, err
		}
	}
}

func emptyBounds(s *Sample) ([][]byte, error) { return nil, nil }

// TestFailedInputDoesNotCrashCompile: a dataset whose input failed to
// compile is skipped (its input's problem is reported once), and a plan
// with any problem runs no sampling job.
func TestFailedInputDoesNotCrashCompile(t *testing.T) {
	for _, src := range []string{
		// The first dataset compiled fails: nothing compiled yet.
		`{"datasets": {"t": {"op": "textFile", "path": "/missing/*"}, "m": {"op": "map", "input": "t", "fn": "words"},
			"s": {"op": "sortByKey", "input": "m", "partitions": 3}}, "action": {"op": "collect", "input": "s"}}`,
		// A sort elsewhere in a plan with a bad function.
		`{"datasets": {"r": {"op": "range", "n": 10, "partitions": 2}, "k": {"op": "map", "input": "r", "fn": "pairWithOne"},
			"s": {"op": "sortByKey", "input": "k", "partitions": 3}, "bad": {"op": "map", "input": "r", "fn": "nope"},
			"u": {"op": "union", "inputs": ["s", "bad"]}}, "action": {"op": "collect", "input": "u"}}`,
	} {
		p, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		_, asked, err := compileSampled(p, Options{Resolver: noFiles{}, Functions: funcSet{"words": true, "pairWithOne": true}}, emptyBounds)
		var perr *Error
		if !errors.As(err, &perr) || len(perr.Problems) != 1 {
			t.Errorf("plan %s: error %v, want one problem", src, err)
		}
		if len(asked) != 0 {
			t.Errorf("a bad plan asked for %d samples", len(asked))
		}
	}
	// A good plan samples once per sortByKey.
	p, _ := Parse([]byte(`{"datasets": {"r": {"op": "range", "n": 10, "partitions": 2}, "k": {"op": "map", "input": "r", "fn": "pairWithOne"},
		"s": {"op": "sortByKey", "input": "k", "partitions": 3}}, "action": {"op": "collect", "input": "s"}}`))
	if _, asked, err := compileSampled(p, Options{Functions: funcSet{"pairWithOne": true}}, emptyBounds); err != nil || len(asked) != 1 {
		t.Errorf("good plan: %v, %d samples", err, len(asked))
	}
}
