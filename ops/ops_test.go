package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/baton-sched/baton/plan"
)

func TestRecordEncoding(t *testing.T) {
	recs := []Record{{Value: []byte("v")}, {Key: []byte("k"), Value: []byte(""), HasKey: true}, {Key: []byte{}, HasKey: true}, {Value: bytes.Repeat([]byte("x"), 300)}}
	var b []byte
	for _, r := range recs {
		b = AppendRecord(b, r)
	}
	var got []Record
	if err := DecodeRecords(b, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i].Key, recs[i].Key) || !bytes.Equal(got[i].Value, recs[i].Value) || got[i].HasKey != recs[i].HasKey {
			t.Errorf("record %d: %+v, want %+v", i, got[i], recs[i])
		}
	}
	for _, bad := range [][]byte{{0x80}, {0x05, 'a'}, {0x00, 0x09, 'a'}} {
		if err := DecodeRecords(bad, func(Record) error { return nil }); err != ErrCorruptRecords {
			t.Errorf("DecodeRecords(%v) = %v", bad, err)
		}
	}
	if FormatRecord(Record{Key: []byte("k"), Value: []byte("v"), HasKey: true}) != "k\tv" || FormatRecord(Record{Value: []byte("v")}) != "v" {
		t.Error("FormatRecord")
	}
}

func TestWords(t *testing.T) {
	var got []string
	words(nil, Record{Value: []byte("  the\tquick  brown\u00a0fox\u3000jumps\n")}, func(r Record) error {
		got = append(got, string(r.Value))
		return nil
	})
	if strings.Join(got, "|") != "the|quick|brown|fox|jumps" {
		t.Fatalf("words = %q", got)
	}
}

// writeLines writes a file of lines of random lengths (some longer than
// the reader's buffer) and returns them.
func writeLines(t *testing.T, path string, n int, rng *rand.Rand) []string {
	t.Helper()
	var lines []string
	var b strings.Builder
	for i := 0; i < n; i++ {
		l := rng.IntN(80)
		if rng.IntN(200) == 0 {
			l = 300 << 10
		}
		line := fmt.Sprintf("%d:%s", i, strings.Repeat("w", l))
		lines = append(lines, line)
		b.WriteString(line)
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestTextSplitsCoverEveryLineOnce: whatever the split boundaries, each
// line is read by exactly one split (the one where it starts).
func TestTextSplitsCoverEveryLineOnce(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	want := writeLines(t, filepath.Join(dir, "a.txt"), 3000, rng)
	want = append(want, writeLines(t, filepath.Join(dir, "b.txt"), 10, rng)...)
	os.WriteFile(filepath.Join(dir, "empty.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("no newline at the end"), 0o644)
	want = append(want, "no newline at the end")
	sort.Strings(want)
	for _, minParts := range []int{1, 2, 7, 64, 500} {
		splits, err := FileResolver{BlockSize: 1 << 20}.TextFileSplits(filepath.Join(dir, "*.txt"), minParts)
		if err != nil {
			t.Fatal(err)
		}
		ps := &textParams{Splits: splits}
		var got []string
		for p := range splits {
			err := readTextSplit(context.Background(), nil, ps, p, func(r Record) error {
				got = append(got, string(r.Value))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("minPartitions %d (%d splits): %d lines read, want %d", minParts, len(splits), len(got), len(want))
		}
		if minParts > 1 && len(splits) < minParts/2 {
			t.Errorf("minPartitions %d gave only %d splits", minParts, len(splits))
		}
	}
	if _, err := (FileResolver{}).TextFileSplits("relative/*.txt", 1); err == nil {
		t.Error("a relative path was accepted")
	}
	if _, err := (FileResolver{}).TextFileSplits(filepath.Join(dir, "*.nothing"), 1); err == nil {
		t.Error("a glob matching nothing was accepted")
	}
	// A directory for a glob says so, and what to give instead.
	if _, err := (FileResolver{}).TextFileSplits(dir, 1); err == nil || !strings.Contains(err.Error(), "is a directory") || !strings.Contains(err.Error(), filepath.Join(dir, "*")) {
		t.Errorf("a directory as a textFile path: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memFetcher serves map outputs from memory.
type memFetcher struct {
	blocks map[string][][]byte // shuffle key -> map -> encoded per-reducer blocks
	outs   map[string][]*MapOutput
}

func (m *memFetcher) Fetch(ctx context.Context, in ShuffleInput, reduce int, fn func(int, []byte) error) error {
	outs := m.outs[in.Key]
	for i, o := range outs {
		if o == nil {
			return &FetchFailedError{Shuffle: in.ID, Map: i, Reduce: reduce, Err: fmt.Errorf("missing")}
		}
		if err := fn(i, o.Blocks[reduce]); err != nil {
			return err
		}
	}
	return nil
}

// runJob runs every stage of a compiled graph in memory, in dependency
// order, and returns the result tasks' outputs.
func runJob(t *testing.T, g *plan.Graph) [][]byte {
	t.Helper()
	r := &Runner{Registry: NewRegistry()}
	f := &memFetcher{outs: map[string][]*MapOutput{}}
	r.Fetcher = f
	inputs := func(node int) map[string]ShuffleInput {
		m := map[string]ShuffleInput{}
		for _, d := range g.ShuffleDeps(node) {
			m[d.Shuffle.Key] = ShuffleInput{Key: d.Shuffle.Key, Maps: g.Nodes[d.Parent].Partitions}
		}
		return m
	}
	// Map stages in node order: parents come first.
	for i := range g.Nodes {
		for _, d := range g.Nodes[i].Deps {
			if d.Kind != plan.Shuffle || f.outs[d.Shuffle.Key] != nil {
				continue
			}
			n := g.Nodes[d.Parent].Partitions
			outs := make([]*MapOutput, n)
			for p := 0; p < n; p++ {
				out, err := r.RunMap(context.Background(), &Task{Graph: g, Node: d.Parent, Partition: p, ShuffleKey: d.Shuffle.Key, Inputs: inputs(d.Parent)})
				if err != nil {
					t.Fatalf("map %d of %s: %v", p, d.Shuffle.Key, err)
				}
				outs[p] = out
			}
			f.outs[d.Shuffle.Key] = outs
		}
	}
	var results [][]byte
	for p := 0; p < g.Nodes[g.Output].Partitions; p++ {
		res, err := r.RunResult(context.Background(), &Task{Graph: g, Node: g.Output, Partition: p, Inputs: inputs(g.Output)})
		if err != nil {
			t.Fatalf("result %d: %v", p, err)
		}
		results = append(results, res)
	}
	return results
}

func compile(t *testing.T, src string) *plan.Graph {
	t.Helper()
	p, err := plan.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	g, err := plan.Compile(p, plan.Options{Resolver: FileResolver{BlockSize: 64 << 10}, Functions: NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestWordCountInMemory(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	vocab := []string{"the", "quick", "brown", "fox", "Jumps", "over", "lazy", "dog", "été", "日本"}
	want := map[string]int{}
	for f := 0; f < 3; f++ {
		var b strings.Builder
		for l := 0; l < 2000; l++ {
			for w := 0; w < rng.IntN(12); w++ {
				word := vocab[rng.IntN(len(vocab))]
				want[strings.ToLower(word)]++
				b.WriteString(word + " ")
			}
			b.WriteString("\n")
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.txt", f)), []byte(b.String()), 0o644)
	}
	g := compile(t, fmt.Sprintf(`{"datasets": {
		"lines": {"op": "textFile", "path": %q, "partitions": 5},
		"words": {"op": "flatMap", "input": "lines", "fn": "words"},
		"lower": {"op": "map", "input": "words", "fn": "lower"},
		"pairs": {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 3}},
		"action": {"op": "collect", "input": "counts"}}`, filepath.Join(dir, "*.txt")))
	got := map[string]int{}
	for _, res := range runJob(t, g) {
		DecodeRecords(res, func(r Record) error {
			n, _ := ParseInt(r.Value)
			got[string(r.Key)] += int(n)
			return nil
		})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
}

func TestTwoShufflesAndActions(t *testing.T) {
	// range(100) -> key = n mod 10 -> count by key -> swap to (count, key) ->
	// count keys per count.
	g := compile(t, `{"datasets": {
		"nums": {"op": "range", "n": 100, "partitions": 4},
		"keyed": {"op": "map", "input": "nums", "fn": "pairWithOne"},
		"perNum": {"op": "reduceByKey", "input": "keyed", "fn": "count", "partitions": 3},
		"again": {"op": "map", "input": "perNum", "fn": {"name": "field", "args": {"i": 0}}},
		"pairs": {"op": "map", "input": "again", "fn": "pairWithOne"},
		"total": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 2}},
		"action": {"op": "count", "input": "total"}}`)
	total := 0
	for _, res := range runJob(t, g) {
		DecodeRecords(res, func(r Record) error {
			n, _ := ParseInt(r.Value)
			total += int(n)
			return nil
		})
	}
	if total != 1 {
		t.Fatalf("count = %d, want 1 (every number counted once gives one distinct count)", total)
	}
}

func TestRegistryChecks(t *testing.T) {
	r := NewRegistry()
	if err := r.CheckFunc("flatMap", plan.Func{Name: "wrods"}); err == nil || !strings.Contains(err.Error(), "did you mean words") {
		t.Errorf("unknown function: %v", err)
	}
	if err := r.CheckFunc("reduceByKey", plan.Func{Name: "words"}); err == nil || !strings.Contains(err.Error(), "needs an aggregator function") {
		t.Errorf("kind mismatch: %v", err)
	}
	if err := r.CheckFunc("map", plan.Func{Name: "field", Args: []byte(`{"x":1}`)}); err == nil {
		t.Error("bad args accepted")
	}
	if err := r.CheckFunc("map", plan.Func{Name: "field", Args: []byte(`{"i":1,"sep":","}`)}); err != nil {
		t.Errorf("good field: %v", err)
	}
	if err := r.CheckFunc("flatMap", plan.Func{Name: "lower"}); err != nil {
		t.Errorf("a map function in flatMap: %v", err)
	}
}

func TestChaosFail(t *testing.T) {
	g := compile(t, `{"datasets": {
		"nums": {"op": "range", "n": 10, "partitions": 2},
		"bad": {"op": "mapPartitions", "input": "nums", "fn": {"name": "chaos.fail", "args": {"partitions": [1], "attempts": 2}}}},
		"action": {"op": "count", "input": "bad"}}`)
	r := &Runner{Registry: NewRegistry()}
	for _, tc := range []struct {
		part, attempt int
		fail          bool
	}{{0, 0, false}, {1, 0, true}, {1, 1, true}, {1, 2, false}} {
		_, err := r.RunResult(context.Background(), &Task{Graph: g, Node: g.Output, Partition: tc.part, Context: TaskContext{Attempt: tc.attempt}})
		if (err != nil) != tc.fail {
			t.Errorf("partition %d attempt %d: err %v, want failure %t", tc.part, tc.attempt, err, tc.fail)
		}
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "42": 42, "-7": -7, "+3": 3, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63} {
		if got, err := ParseInt([]byte(in)); err != nil || got != want {
			t.Errorf("ParseInt(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-", "1a", "9223372036854775808", " 1"} {
		if _, err := ParseInt([]byte(in)); err == nil {
			t.Errorf("ParseInt(%q) succeeded", in)
		}
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func TestPipe(t *testing.T) {
	g := compile(t, `{"datasets": {
		"r": {"op": "parallelize", "records": ["b", ["k", "v"], "a"], "partitions": 1},
		"p": {"op": "pipe", "input": "r", "command": "sh", "args": ["-c", "sort; echo $EXTRA"], "env": {"EXTRA": "end"}}},
		"action": {"op": "collect", "input": "p"}}`)
	res := runJob(t, g)
	var got []string
	DecodeRecords(res[0], func(r Record) error { got = append(got, FormatRecord(r)); return nil })
	if strings.Join(got, "|") != "a|b|k\tv|end" {
		t.Fatalf("pipe output %q", got)
	}
	bad := compile(t, `{"datasets": {
		"r": {"op": "range", "n": 3, "partitions": 1},
		"p": {"op": "pipe", "input": "r", "command": "sh", "args": ["-c", "cat >/dev/null; echo it went wrong >&2; exit 3"]}},
		"action": {"op": "collect", "input": "p"}}`)
	r := &Runner{Registry: NewRegistry()}
	_, err := r.RunResult(context.Background(), &Task{Graph: bad, Node: bad.Output, Partition: 0})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "it went wrong") {
		t.Fatalf("failing program: %v", err)
	}
}

// TestPipeInputFailureComesFirst: when the records feeding a program fail
// (here a function's error; a fetch failure the same way), the task fails
// with that error, not with the program's exit status.
func TestPipeInputFailureComesFirst(t *testing.T) {
	g := compile(t, `{"datasets": {
		"r": {"op": "parallelize", "records": ["1", "x", "3"], "partitions": 1},
		"n": {"op": "map", "input": "r", "fn": "toInt"},
		"p": {"op": "pipe", "input": "n", "command": "sh", "args": ["-c", "cat >/dev/null; exit 4"]}},
		"action": {"op": "collect", "input": "p"}}`)
	r := &Runner{Registry: NewRegistry()}
	_, err := r.RunResult(context.Background(), &Task{Graph: g, Node: g.Output, Partition: 0})
	if err == nil || !strings.Contains(err.Error(), "not an integer") || strings.Contains(err.Error(), "exit status") {
		t.Fatalf("input failure under a pipe: %v", err)
	}
}

// TestAKilledRangeStops: a task reading a range stops soon after its
// context ends, rather than counting to the end of a range that may be
// long (an executor closing waits for its killed tasks). The range is
// short enough that, read to its end, the test fails rather than hangs.
func TestAKilledRangeStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := NewRegistry()
	// The first record cancels the task, as a kill would.
	if err := reg.Register(Func{Name: "test.cancel", Kind: KindMap, New: func(json.RawMessage) (any, error) {
		return MapFunc(func(_ *TaskContext, r Record) (Record, error) { cancel(); return r, nil }), nil
	}}); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Parse([]byte(`{"datasets": {"r": {"op": "range", "n": 1000000, "partitions": 1},
		"m": {"op": "map", "input": "r", "fn": "test.cancel"}},
		"action": {"op": "count", "input": "m"}}`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := plan.Compile(p, plan.Options{Functions: reg})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Registry: reg}
	if _, err := r.RunResult(ctx, &Task{Graph: g, Node: g.Output, Partition: 0}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a killed range task returned %v, want %v", err, context.Canceled)
	}
}
