package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// TestOperators runs each operator of plan/compile.go's table (sortByKey
// has TestSortByKey) on one cluster and checks its output against a
// reference computed here, partition by partition where the operator
// defines the partitions' content.
func TestOperators(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	pairs := opPairs(11, 4000, 150)
	mixed := opMixed(12, 3001)

	t.Run("textFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		want := opTextFiles(t, dir, 3)
		p := opPlan(t, "textFile", opCollect("lines"), map[string]*plan.Dataset{
			"lines": {Op: "textFile", Path: filepath.Join(dir, "*.txt"), Partitions: 16},
		})
		j, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		if len(parts) < 16 || int(j.OutputPartitions) != len(parts) {
			t.Errorf("%d partitions (job says %d), want at least the 16 asked for", len(parts), j.OutputPartitions)
		}
		opSame(t, "textFile lines", opFlat(parts), opValues(want))

		// Only empty files: one empty partition.
		p = opPlan(t, "textFile-empty", opCollect("lines"), map[string]*plan.Dataset{
			"lines": {Op: "textFile", Path: filepath.Join(dir, "d.txt"), Partitions: 4},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		if len(parts) != 1 || len(parts[0]) != 0 {
			t.Errorf("a textFile of an empty file gave %d partitions with %d records, want one empty partition", len(parts), len(opFlat(parts)))
		}
	})

	t.Run("textFileSplits", func(t *testing.T) {
		t.Parallel()
		// Files of fixed-length lines, so that split boundaries fall on
		// line starts, inside lines, and between \r and \n; each
		// partition holds exactly the lines that start in its split
		// (Hadoop's FileInputFormat cut, as docs/plans.md describes).
		dir := t.TempDir()
		var sizes []int64
		var lines [][]string
		for f, spec := range []struct {
			n   int
			eol string
		}{{100, "\n"}, {73, "\r\n"}, {41, "\n"}} {
			var ls []string
			var b strings.Builder
			for i := 0; i < spec.n; i++ {
				l := fmt.Sprintf("f%d-l%04d", f, i) // 9 bytes
				ls = append(ls, l)
				b.WriteString(l + spec.eol)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%d.txt", f)), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, int64(b.Len()))
			lines = append(lines, ls)
		}
		for _, minParts := range []int{1, 7, 10, 16, 33} {
			want := opTextSplits(sizes, lines, minParts)
			p := opPlan(t, "textFile-splits", opCollect("lines"), map[string]*plan.Dataset{
				"lines": {Op: "textFile", Path: filepath.Join(dir, "s*.txt"), Partitions: minParts},
			})
			_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
			if len(parts) != len(want) {
				t.Fatalf("minimum %d partitions: %d splits, want %d", minParts, len(parts), len(want))
			}
			for i := range want {
				opSame(t, fmt.Sprintf("minimum %d partitions: partition %d", minParts, i), parts[i], opValues(want[i]))
			}
		}
		// The example of docs/plans.md: files of 44 and 27 bytes with
		// "partitions": 4 give 5 splits.
		ex := t.TempDir()
		for name, content := range map[string]string{"a.txt": strings.Repeat("abcdefghij\n", 4), "b.txt": strings.Repeat("abcdefgh\n", 3)} {
			if err := os.WriteFile(filepath.Join(ex, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p := opPlan(t, "textFile-doc-example", opCollect("lines"), map[string]*plan.Dataset{
			"lines": {Op: "textFile", Path: filepath.Join(ex, "*.txt"), Partitions: 4},
		})
		j, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		if j.OutputPartitions != 5 || len(parts) != 5 {
			t.Errorf("44- and 27-byte files with partitions 4: %d splits, want 5", len(parts))
		}
		if n := len(opFlat(parts)); n != 7 {
			t.Errorf("%d lines, want 7", n)
		}
	})

	t.Run("range", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			n     int64
			parts int
		}{{10007, 7}, {5, 8}, {0, 3}} {
			p := opPlan(t, "range", opCollect("r"), map[string]*plan.Dataset{"r": opRange(tc.n, tc.parts)})
			_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
			if len(parts) != tc.parts {
				t.Fatalf("range n=%d: %d partitions, want %d", tc.n, len(parts), tc.parts)
			}
			for i, b := range opContiguous(int(tc.n), tc.parts) {
				opSame(t, fmt.Sprintf("range n=%d partitions=%d: partition %d", tc.n, tc.parts, i), parts[i], opRangeRecs(b[0], b[1]))
			}
		}
	})

	t.Run("parallelize", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "parallelize", opCollect("recs"), map[string]*plan.Dataset{"recs": opParallelize(mixed, 6)})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		if len(parts) != 6 {
			t.Fatalf("%d partitions, want 6", len(parts))
		}
		for i, want := range opSplit(mixed, 6) {
			opSame(t, fmt.Sprintf("parallelize partition %d", i), parts[i], want)
		}
		// No records: empty partitions.
		p = opPlan(t, "parallelize-empty", opCollect("recs"), map[string]*plan.Dataset{"recs": opParallelize(nil, 3)})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		if len(parts) != 3 || len(opFlat(parts)) != 0 {
			t.Errorf("parallelize of nothing: %d partitions, %d records; want 3 empty partitions", len(parts), len(opFlat(parts)))
		}
	})

	t.Run("map", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "map-mul", opCollect("m"), map[string]*plan.Dataset{
			"r": opRange(5000, 5),
			"m": {Op: "map", Input: "r", Fn: opFn("mul", `{"n":3}`)},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		var want []ops.Record
		for i := 0; i < 5000; i++ {
			want = append(want, opVal(strconv.Itoa(3*i)))
		}
		opSame(t, "map mul 3", opFlat(parts), want)

		// swap: the value becomes the key; a value-only record gets an
		// empty value.
		p = opPlan(t, "map-swap", opCollect("m"), map[string]*plan.Dataset{
			"recs": opParallelize(mixed, 4),
			"m":    {Op: "map", Input: "recs", Fn: opFn("swap", "")},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = nil
		for _, r := range mixed {
			want = append(want, opKV(string(r.Value), string(r.Key)))
		}
		if len(parts) != 4 {
			t.Fatalf("map keeps its input's 4 partitions, got %d", len(parts))
		}
		opSame(t, "map swap", opFlat(parts), want)
	})

	t.Run("flatMap", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(13, 1))
		spaces := []string{" ", "  ", "\t", " \u00a0", "\u2003", "\v"}
		var lines []ops.Record
		var words, pieces []ops.Record
		for i := 0; i < 1500; i++ {
			var b strings.Builder
			if rng.IntN(4) == 0 {
				b.WriteString(spaces[rng.IntN(len(spaces))])
			}
			for w := rng.IntN(7); w > 0; w-- {
				b.WriteString(fmt.Sprintf("é%d", rng.IntN(100)))
				b.WriteString(spaces[rng.IntN(len(spaces))])
			}
			if rng.IntN(2) == 0 {
				b.WriteString(",x,,y")
			}
			s := b.String()
			lines = append(lines, opVal(s))
			for _, w := range strings.Fields(s) {
				words = append(words, opVal(w))
			}
			for _, piece := range strings.Split(s, ",") {
				pieces = append(pieces, opVal(piece))
			}
		}
		p := opPlan(t, "flatMap-words", opCollect("w"), map[string]*plan.Dataset{
			"lines": opParallelize(lines, 5),
			"w":     {Op: "flatMap", Input: "lines", Fn: opFn("words", "")},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		opSame(t, "flatMap words", opFlat(parts), words)

		p = opPlan(t, "flatMap-split", opCollect("w"), map[string]*plan.Dataset{
			"lines": opParallelize(lines, 5),
			"w":     {Op: "flatMap", Input: "lines", Fn: opFn("split", `{"sep":","}`)},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		opSame(t, "flatMap split", opFlat(parts), pieces)

		// A map function in a flatMap: one record out per record in.
		p = opPlan(t, "flatMap-upper", opCollect("w"), map[string]*plan.Dataset{
			"lines": opParallelize(lines, 5),
			"w":     {Op: "flatMap", Input: "lines", Fn: opFn("upper", "")},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		var upper []ops.Record
		for _, r := range lines {
			upper = append(upper, opVal(string(bytes.ToUpper(r.Value))))
		}
		opSame(t, "flatMap upper", opFlat(parts), upper)
	})

	t.Run("filter", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "filter-even", opCollect("f"), map[string]*plan.Dataset{
			"r": opRange(6000, 6),
			"f": {Op: "filter", Input: "r", Fn: opFn("even", "")},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		var want []ops.Record
		for i := 0; i < 6000; i += 2 {
			want = append(want, opVal(strconv.Itoa(i)))
		}
		opSame(t, "filter even", opFlat(parts), want)

		p = opPlan(t, "filter-contains", opCollect("f"), map[string]*plan.Dataset{
			"recs": opParallelize(mixed, 4),
			"f":    {Op: "filter", Input: "recs", Fn: opFn("contains", `{"s":"7"}`)},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = nil
		for _, r := range mixed {
			if bytes.Contains(r.Value, []byte("7")) {
				want = append(want, r)
			}
		}
		opSame(t, "filter contains 7", opFlat(parts), want)
	})

	t.Run("mapPartitions", func(t *testing.T) {
		t.Parallel()
		// chaos.fail passes records through; partitions 1 and 4 fail
		// their first attempt and are retried.
		p := opPlan(t, "mapPartitions-fail-once", opCollect("m"), map[string]*plan.Dataset{
			"r": opRange(3000, 6),
			"m": {Op: "mapPartitions", Input: "r", Fn: opFn("chaos.fail", `{"attempts":1,"partitions":[1,4]}`)},
		})
		j, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		opSame(t, "mapPartitions chaos.fail once", opFlat(parts), opRangeRecs(0, 3000))
		if j.TaskFailures != 2 {
			t.Errorf("%d task failures, want 2 (partitions 1 and 4 once each)", j.TaskFailures)
		}
		// chaos.blob sees the whole partition and emits one record.
		p = opPlan(t, "mapPartitions-blob", opCollect("m"), map[string]*plan.Dataset{
			"r": opRange(3000, 6),
			"m": {Op: "mapPartitions", Input: "r", Fn: opFn("chaos.blob", `{"bytes":7}`)},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		if len(parts) != 6 {
			t.Fatalf("%d partitions, want 6", len(parts))
		}
		for i, part := range parts {
			opSame(t, fmt.Sprintf("mapPartitions chaos.blob partition %d", i), part, []ops.Record{opVal("bbbbbbb")})
		}
	})

	t.Run("mapValues", func(t *testing.T) {
		t.Parallel()
		nums := opNumbered(14, 2500)
		p := opPlan(t, "mapValues", opCollect("m"), map[string]*plan.Dataset{
			"recs": opParallelize(nums, 5),
			"m":    {Op: "mapValues", Input: "recs", Fn: opFn("mul", `{"n":2}`)},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		var want []ops.Record
		for _, r := range nums {
			n, _ := strconv.Atoi(string(r.Value))
			out := r
			out.Value = []byte(strconv.Itoa(2 * n))
			want = append(want, out)
		}
		opSame(t, "mapValues mul 2", opFlat(parts), want)

		// The function sees the value alone: pairWithOne's key is dropped,
		// the record's own key (or its absence) kept.
		p = opPlan(t, "mapValues-pairWithOne", opCollect("m"), map[string]*plan.Dataset{
			"recs": opParallelize(mixed, 3),
			"m":    {Op: "mapValues", Input: "recs", Fn: opFn("pairWithOne", "")},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = nil
		for _, r := range mixed {
			out := r
			out.Value = []byte("1")
			want = append(want, out)
		}
		opSame(t, "mapValues pairWithOne", opFlat(parts), want)
	})

	t.Run("union", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "union", opCollect("u"), map[string]*plan.Dataset{
			"r":    opRange(1000, 3),
			"recs": opParallelize(mixed, 2),
			"s":    opRange(50, 2),
			"even": {Op: "filter", Input: "s", Fn: opFn("even", "")},
			"u":    {Op: "union", Inputs: []string{"r", "recs", "even", "r"}},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		var want [][]ops.Record
		for _, b := range opContiguous(1000, 3) {
			want = append(want, opRangeRecs(b[0], b[1]))
		}
		want = append(want, opSplit(mixed, 2)...)
		for _, b := range opContiguous(50, 2) {
			var evens []ops.Record
			for i := b[0]; i < b[1]; i++ {
				if i%2 == 0 {
					evens = append(evens, opVal(strconv.Itoa(i)))
				}
			}
			want = append(want, evens)
		}
		for _, b := range opContiguous(1000, 3) {
			want = append(want, opRangeRecs(b[0], b[1]))
		}
		if len(parts) != len(want) {
			t.Fatalf("union has %d partitions, want %d (the sum of its inputs')", len(parts), len(want))
		}
		for i := range want {
			opSame(t, fmt.Sprintf("union partition %d", i), parts[i], want[i])
		}
	})

	t.Run("pipe", func(t *testing.T) {
		t.Parallel()
		// Keyed records reach the program as key<TAB>value; its output
		// lines come back as value-only records.
		p := opPlan(t, "pipe-awk", opCollect("p"), map[string]*plan.Dataset{
			"recs": opParallelize(pairs, 5),
			"p":    {Op: "pipe", Input: "recs", Command: "awk", Args: []string{"-F", "\t", `{print $2 "\t" $1}`}},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		var want []ops.Record
		for _, r := range pairs {
			want = append(want, opVal(string(r.Value)+"\t"+string(r.Key)))
		}
		if len(parts) != 5 {
			t.Fatalf("pipe keeps its input's 5 partitions, got %d", len(parts))
		}
		opSame(t, "pipe awk", opFlat(parts), want)

		dir := t.TempDir()
		lines := opTextFiles(t, dir, 4)
		p = opPlan(t, "pipe-tr", opCollect("p"), map[string]*plan.Dataset{
			"lines": {Op: "textFile", Path: filepath.Join(dir, "[abc].txt"), Partitions: 6},
			"p":     {Op: "pipe", Input: "lines", Command: "tr", Args: []string{"a-z", "A-Z"}},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = nil
		for _, l := range lines[:6000] {
			want = append(want, opVal(strings.ToUpper(l)))
		}
		opSame(t, "pipe tr", opFlat(parts), want)

		// env reaches the program.
		p = opPlan(t, "pipe-env", opCollect("p"), map[string]*plan.Dataset{
			"r": opRange(2000, 4),
			"p": {Op: "pipe", Input: "r", Command: "sh", Args: []string{"-c", `exec sed "s/^/$PREFIX/"`}, Env: map[string]string{"PREFIX": "n="}},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = nil
		for i := 0; i < 2000; i++ {
			want = append(want, opVal("n="+strconv.Itoa(i)))
		}
		opSame(t, "pipe env", opFlat(parts), want)

		// A program that stops reading early (head) succeeds with what it
		// wrote: the first record of each partition.
		p = opPlan(t, "pipe-head", opCollect("p"), map[string]*plan.Dataset{
			"r": opRange(200000, 4),
			"p": {Op: "pipe", Input: "r", Command: "head", Args: []string{"-n", "1"}},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = nil
		for _, b := range opContiguous(200000, 4) {
			want = append(want, opVal(strconv.Itoa(b[0])))
		}
		opSame(t, "pipe head -n 1", opFlat(parts), want)

		// Empty partitions still run the program; a last line without a
		// newline is a record.
		p = opPlan(t, "pipe-tail", opCollect("p"), map[string]*plan.Dataset{
			"r": opRange(2, 4),
			"p": {Op: "pipe", Input: "r", Command: "sh", Args: []string{"-c", "cat; printf end"}},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		wantParts := [][]ops.Record{{opVal("0"), opVal("end")}, {opVal("1"), opVal("end")}, {opVal("end")}, {opVal("end")}}
		if len(parts) != 4 {
			t.Fatalf("%d partitions, want 4", len(parts))
		}
		for i := range wantParts {
			opSame(t, fmt.Sprintf("pipe on partition %d", i), parts[i], wantParts[i])
		}
	})

	t.Run("reduceByKey", func(t *testing.T) {
		t.Parallel()
		byKey := opValuesByKey(pairs)
		agg := func(f func(vs []string) string) map[string][]string {
			out := map[string][]string{}
			for k, vs := range byKey {
				out[k] = []string{f(vs)}
			}
			return out
		}
		ints := func(vs []string) []int {
			out := make([]int, len(vs))
			for i, v := range vs {
				out[i], _ = strconv.Atoi(v)
			}
			return out
		}
		for _, tc := range []struct {
			fn, args string
			parts    int // 0: the default, the input's 6
			want     map[string][]string
		}{
			{"sum", "", 4, agg(func(vs []string) string {
				s := 0
				for _, n := range ints(vs) {
					s += n
				}
				return strconv.Itoa(s)
			})},
			{"min", "", 0, agg(func(vs []string) string {
				m := ints(vs)[0]
				for _, n := range ints(vs) {
					m = min(m, n)
				}
				return strconv.Itoa(m)
			})},
			{"count", "", 3, agg(func(vs []string) string { return strconv.Itoa(len(vs)) })},
			// concat joins the values in the order they meet: map-side in
			// record order, then the map outputs in ascending map order,
			// which for parallelize is the input order.
			{"concat", `{"sep":"|"}`, 5, agg(func(vs []string) string { return strings.Join(vs, "|") })},
		} {
			p := opPlan(t, "reduceByKey-"+tc.fn, opCollect("red"), map[string]*plan.Dataset{
				"recs": opParallelize(pairs, 6),
				"red":  {Op: "reduceByKey", Input: "recs", Fn: opFn(tc.fn, tc.args), Partitions: tc.parts},
			})
			_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
			want := tc.parts
			if want == 0 {
				want = 6
			}
			opCheckByKey(t, "reduceByKey "+tc.fn, parts, want, tc.want)
		}
	})

	t.Run("groupByKey", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "groupByKey", opCollect("g"), map[string]*plan.Dataset{
			"recs": opParallelize(pairs, 6),
			"g":    {Op: "groupByKey", Input: "recs", Partitions: 5},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		want := map[string][]string{}
		for k, vs := range opValuesByKey(pairs) {
			want[k] = []string{opJSON(vs)}
		}
		opCheckByKey(t, "groupByKey", parts, 5, want)
	})

	t.Run("repartition", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ from, to int }{{3, 5}, {4, 1}, {1, 3}} {
			p := opPlan(t, "repartition", opCollect("rp"), map[string]*plan.Dataset{
				"r":  opRange(5000, tc.from),
				"rp": {Op: "repartition", Input: "r", Partitions: tc.to},
			})
			_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
			if len(parts) != tc.to {
				t.Fatalf("repartition %d -> %d: %d partitions", tc.from, tc.to, len(parts))
			}
			// Map task m deals its records round-robin from reducer
			// m mod n; a reducer reads the map outputs in map order.
			want := make([][]ops.Record, tc.to)
			for m, b := range opContiguous(5000, tc.from) {
				next := m % tc.to
				for _, r := range opRangeRecs(b[0], b[1]) {
					want[next] = append(want[next], r)
					next = (next + 1) % tc.to
				}
			}
			for i := range want {
				opSame(t, fmt.Sprintf("repartition %d -> %d: partition %d", tc.from, tc.to, i), parts[i], want[i])
			}
		}
	})

	t.Run("distinct", func(t *testing.T) {
		t.Parallel()
		// Key, value and whether there is a key all count: "a", ("", "a")
		// and ("a", "") are three different records.
		rng := rand.New(rand.NewPCG(15, 2))
		var recs []ops.Record
		for i := 0; i < 3000; i++ {
			switch rng.IntN(4) {
			case 0:
				recs = append(recs, opVal(fmt.Sprintf("v%d", rng.IntN(100))))
			case 1:
				recs = append(recs, opKV("", fmt.Sprintf("v%d", rng.IntN(100))))
			default:
				recs = append(recs, opKV(fmt.Sprintf("v%d", rng.IntN(30)), fmt.Sprintf("v%d", rng.IntN(10))))
			}
		}
		recs = append(recs, opVal("a"), opKV("", "a"), opKV("a", ""), opVal(""), opKV("", ""), opVal("a"), opKV("a", ""))
		p := opPlan(t, "distinct", opCollect("d"), map[string]*plan.Dataset{
			"recs": opParallelize(recs, 4),
			"d":    {Op: "distinct", Input: "recs", Partitions: 3},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		if len(parts) != 3 {
			t.Fatalf("%d partitions, want 3", len(parts))
		}
		seen := map[string]bool{}
		var want []ops.Record
		for _, r := range recs {
			if !seen[opFmt(r)] {
				seen[opFmt(r)] = true
				want = append(want, r)
			}
		}
		opSameSet(t, "distinct", opFlat(parts), want)
	})

	// cogroup inputs: keys u00-u39, u20-u59, and u00-u09 with u50-u69.
	coIn := func(seed uint64, n int, keys func(*rand.Rand) int, tag string) []ops.Record {
		rng := rand.New(rand.NewPCG(seed, 4))
		out := make([]ops.Record, n)
		for i := range out {
			v := fmt.Sprintf("%s%d", tag, rng.IntN(1000))
			if rng.IntN(20) == 0 {
				v += `"<&>é`
			}
			out[i] = opKV(fmt.Sprintf("u%02d", keys(rng)), v)
		}
		return out
	}
	left := coIn(16, 600, func(r *rand.Rand) int { return r.IntN(40) }, "a")
	right := coIn(17, 400, func(r *rand.Rand) int { return 20 + r.IntN(40) }, "b")
	third := coIn(18, 300, func(r *rand.Rand) int {
		if r.IntN(2) == 0 {
			return r.IntN(10)
		}
		return 50 + r.IntN(20)
	}, "c")

	t.Run("cogroup", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "cogroup", opCollect("cg"), map[string]*plan.Dataset{
			"a":  opParallelize(left, 3),
			"b":  opParallelize(right, 2),
			"c":  opParallelize(third, 4),
			"cg": {Op: "cogroup", Inputs: []string{"a", "b", "c"}, Partitions: 4},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		groups := []map[string][]string{opValuesByKey(left), opValuesByKey(right), opValuesByKey(third)}
		want := map[string][]string{}
		for _, g := range groups {
			for k := range g {
				vals := make([][]string, len(groups))
				for i, h := range groups {
					vals[i] = h[k]
					if vals[i] == nil {
						vals[i] = []string{}
					}
				}
				want[k] = []string{opJSON(vals)}
			}
		}
		opCheckByKey(t, "cogroup of three", parts, 4, want)

		// One input, default partitions (its 3).
		p = opPlan(t, "cogroup-one", opCollect("cg"), map[string]*plan.Dataset{
			"a":  opParallelize(left, 3),
			"cg": {Op: "cogroup", Inputs: []string{"a"}},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = map[string][]string{}
		for k, vs := range groups[0] {
			want[k] = []string{opJSON([][]string{vs})}
		}
		opCheckByKey(t, "cogroup of one", parts, 3, want)
	})

	// joinWant is the reference join of l and r: for each key, each left
	// value with each right value in turn; with left, an unmatched left
	// value with null.
	joinWant := func(l, r []ops.Record, leftOuter bool) map[string][]string {
		lv, rv := opValuesByKey(l), opValuesByKey(r)
		want := map[string][]string{}
		for k, ls := range lv {
			for _, a := range ls {
				if len(rv[k]) == 0 && leftOuter {
					want[k] = append(want[k], opJSON([]*string{&a, nil}))
				}
				for _, b := range rv[k] {
					want[k] = append(want[k], opJSON([]string{a, b}))
				}
			}
		}
		return want
	}

	t.Run("join", func(t *testing.T) {
		t.Parallel()
		for _, how := range []string{"", "inner", "left"} {
			p := opPlan(t, "join-"+how, opCollect("j"), map[string]*plan.Dataset{
				"a": opParallelize(left, 3),
				"b": opParallelize(right, 2),
				"j": {Op: "join", Inputs: []string{"a", "b"}, How: how, Partitions: 4},
			})
			_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
			want := joinWant(left, right, how == "left")
			opCheckByKey(t, fmt.Sprintf("join how=%q", how), parts, 4, want)
			if how == "left" {
				if len(want["u00"]) == 0 || !strings.HasSuffix(want["u00"][0], ",null]") {
					t.Fatalf("reference: u00 should be a left-only key, got %q", want["u00"])
				}
			} else if _, ok := want["u00"]; ok {
				t.Fatal("reference: u00 should be absent from an inner join")
			}
		}
		// Self-join: both inputs are the same dataset (default partitions:
		// its 3).
		p := opPlan(t, "join-self", opCollect("j"), map[string]*plan.Dataset{
			"c": opParallelize(third, 3),
			"j": {Op: "join", Inputs: []string{"c", "c"}},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		opCheckByKey(t, "self-join", parts, 3, joinWant(third, third, false))
	})
}
