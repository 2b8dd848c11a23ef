package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// TestActions checks each action's answer, as client.Run merges the
// partitions' results, against a reference.
func TestActions(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	pairs := opPairs(31, 3000, 80)
	nums := opNumbered(32, 2000)

	t.Run("collect", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "collect", opCollect("m"), map[string]*plan.Dataset{
			"r": opRange(2500, 5),
			"m": {Op: "map", Input: "r", Fn: opFn("add", `{"n":-100}`)},
		})
		var want []ops.Record
		for i := 0; i < 2500; i++ {
			want = append(want, opVal(strconv.Itoa(i-100)))
		}
		opSame(t, "collect", opAnswer(t, cl, p), want)
		// After a shuffle: the partitions concatenated in order.
		p = opPlan(t, "collect-shuffled", opCollect("g"), map[string]*plan.Dataset{
			"recs": opParallelize(pairs, 4),
			"g":    {Op: "reduceByKey", Input: "recs", Fn: opFn("count", ""), Partitions: 3},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		opSame(t, "collect after a shuffle", opAnswer(t, cl, p), opFlat(parts))
		// Nothing to collect.
		p = opPlan(t, "collect-empty", opCollect("f"), map[string]*plan.Dataset{
			"r": opRange(100, 3),
			"f": {Op: "filter", Input: "r", Fn: opFn("atLeast", `{"n":1000}`)},
		})
		opSame(t, "collect of nothing", opAnswer(t, cl, p), nil)
	})

	t.Run("count", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		lines := opTextFiles(t, dir, 33)
		words := 0
		for _, l := range lines {
			words += len(strings.Fields(l))
		}
		distinct := map[string]bool{}
		for _, r := range pairs {
			distinct[opFmt(r)] = true
		}
		for _, tc := range []struct {
			name     string
			datasets map[string]*plan.Dataset
			want     int
		}{
			{"words", map[string]*plan.Dataset{
				"lines": {Op: "textFile", Path: filepath.Join(dir, "*.txt"), Partitions: 8},
				"x":     {Op: "flatMap", Input: "lines", Fn: opFn("words", "")},
			}, words},
			{"distinct", map[string]*plan.Dataset{
				"recs": opParallelize(pairs, 5),
				"x":    {Op: "distinct", Input: "recs", Partitions: 3},
			}, len(distinct)},
			{"empty", map[string]*plan.Dataset{
				"r": opRange(100, 3),
				"x": {Op: "filter", Input: "r", Fn: opFn("atLeast", `{"n":1000}`)},
			}, 0},
		} {
			p := opPlan(t, "count-"+tc.name, plan.Action{Op: "count", Input: "x"}, tc.datasets)
			opSame(t, "count of "+tc.name, opAnswer(t, cl, p), []ops.Record{opVal(strconv.Itoa(tc.want))})
		}
	})

	t.Run("countByKey", func(t *testing.T) {
		t.Parallel()
		// Value-only records count under the empty key.
		recs := append(append([]ops.Record(nil), nums...), opKV("", "1"))
		n := map[string]int{}
		for _, r := range recs {
			n[string(r.Key)]++
		}
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var want []ops.Record
		for _, k := range keys {
			want = append(want, opKV(k, strconv.Itoa(n[k])))
		}
		p := opPlan(t, "countByKey", plan.Action{Op: "countByKey", Input: "recs"}, map[string]*plan.Dataset{
			"recs": opParallelize(recs, 6),
		})
		opSame(t, "countByKey", opAnswer(t, cl, p), want)
	})

	t.Run("first", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			atLeast int
			want    []ops.Record
		}{
			{-1, []ops.Record{opVal("0")}},
			// range 10000 in 8 partitions of 1250: the first 7 are empty
			// after the filter.
			{9000, []ops.Record{opVal("9000")}},
			{20000, nil},
		} {
			p := opPlan(t, "first", plan.Action{Op: "first", Input: "f"}, map[string]*plan.Dataset{
				"r": opRange(10000, 8),
				"f": {Op: "filter", Input: "r", Fn: opFn("atLeast", fmt.Sprintf(`{"n":%d}`, tc.atLeast))},
			})
			opSame(t, fmt.Sprintf("first of the numbers >= %d", tc.atLeast), opAnswer(t, cl, p), tc.want)
		}
		// First of a parallelize: its first record, keyed.
		p := opPlan(t, "first-kv", plan.Action{Op: "first", Input: "recs"}, map[string]*plan.Dataset{"recs": opParallelize(pairs, 4)})
		opSame(t, "first of pairs", opAnswer(t, cl, p), pairs[:1])
	})

	t.Run("take", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			n, atLeast int
			want       []ops.Record
		}{
			{25, 0, opRangeRecs(0, 25)},
			{2000, 0, opRangeRecs(0, 2000)}, // crosses partitions of 1250
			{20000, 0, opRangeRecs(0, 10000)},
			{5, 9990, opRangeRecs(9990, 9995)},
			{3, 20000, nil},
		} {
			p := opPlan(t, "take", plan.Action{Op: "take", Input: "f", N: int64(tc.n)}, map[string]*plan.Dataset{
				"r": opRange(10000, 8),
				"f": {Op: "filter", Input: "r", Fn: opFn("atLeast", fmt.Sprintf(`{"n":%d}`, tc.atLeast))},
			})
			opSame(t, fmt.Sprintf("take %d of the numbers >= %d", tc.n, tc.atLeast), opAnswer(t, cl, p), tc.want)
		}
	})

	t.Run("reduce", func(t *testing.T) {
		t.Parallel()
		sum, lo, hi := 0, 0, 0
		var all []string
		for i, r := range nums {
			v, _ := strconv.Atoi(string(r.Value))
			sum += v
			if i == 0 {
				lo, hi = v, v
			}
			lo, hi = min(lo, v), max(hi, v)
			all = append(all, string(r.Value))
		}
		for _, tc := range []struct {
			fn, args string
			want     []ops.Record
		}{
			{"sum", "", []ops.Record{opVal(strconv.Itoa(sum))}},
			{"min", "", []ops.Record{opVal(strconv.Itoa(lo))}},
			{"max", "", []ops.Record{opVal(strconv.Itoa(hi))}},
			{"count", "", []ops.Record{opVal(strconv.Itoa(len(nums)))}},
			// concat: the partitions' values in partition order.
			{"concat", `{"sep":","}`, []ops.Record{opVal(strings.Join(all, ","))}},
		} {
			p := opPlan(t, "reduce-"+tc.fn, plan.Action{Op: "reduce", Input: "recs", Fn: opFn(tc.fn, tc.args)}, map[string]*plan.Dataset{
				"recs": opParallelize(nums, 7),
			})
			opSame(t, "reduce "+tc.fn, opAnswer(t, cl, p), tc.want)
		}
		// Some empty partitions, and an empty dataset (no answer).
		p := opPlan(t, "reduce-sparse", plan.Action{Op: "reduce", Input: "f", Fn: opFn("sum", "")}, map[string]*plan.Dataset{
			"r": opRange(10000, 8),
			"f": {Op: "filter", Input: "r", Fn: opFn("atLeast", `{"n":9000}`)},
		})
		opSame(t, "reduce sum of 9000..9999", opAnswer(t, cl, p), []ops.Record{opVal(strconv.Itoa((9000 + 9999) * 1000 / 2))})
		p = opPlan(t, "reduce-empty", plan.Action{Op: "reduce", Input: "f", Fn: opFn("sum", "")}, map[string]*plan.Dataset{
			"r": opRange(100, 3),
			"f": {Op: "filter", Input: "r", Fn: opFn("atLeast", `{"n":1000}`)},
		})
		opSame(t, "reduce of nothing", opAnswer(t, cl, p), nil)
	})

	t.Run("saveAsTextFile", func(t *testing.T) {
		t.Parallel()
		// A keyed dataset after a shuffle: key<TAB>value lines, one part
		// file a partition, _SUCCESS; the answer is the records written.
		out := filepath.Join(t.TempDir(), "sums")
		p := opPlan(t, "save-sums", plan.Action{Op: "saveAsTextFile", Input: "s", Path: out}, map[string]*plan.Dataset{
			"recs": opParallelize(pairs, 4),
			"s":    {Op: "reduceByKey", Input: "recs", Fn: opFn("sum", ""), Partitions: 3},
		})
		want := map[string]int{}
		for _, r := range pairs {
			v, _ := strconv.Atoi(string(r.Value))
			want[string(r.Key)] += v
		}
		opSame(t, "saveAsTextFile answer", opAnswer(t, cl, p), []ops.Record{opVal(strconv.Itoa(len(want)))})
		files := opReadDir(t, out)
		if got := strings.Join(opSortedKeys(files), " "); got != "_SUCCESS part-00000 part-00001 part-00002" {
			t.Fatalf("output directory holds %s", got)
		}
		got := map[string]int{}
		for _, name := range []string{"part-00000", "part-00001", "part-00002"} {
			prev := ""
			for i, line := range files[name] {
				k, v, ok := strings.Cut(line, "\t")
				n, err := strconv.Atoi(v)
				if !ok || err != nil {
					t.Fatalf("%s: line %q is not key<TAB>sum", name, line)
				}
				if _, dup := got[k]; dup {
					t.Fatalf("%s: key %q written twice", name, k)
				}
				if i > 0 && k < prev {
					t.Errorf("%s: %q after %q: a reduceByKey partition is sorted by key", name, k, prev)
				}
				prev = k
				got[k] = n
			}
		}
		sameCounts(t, got, want)

		// Value-only records: the value alone on each line.
		out = filepath.Join(t.TempDir(), "range")
		p = opPlan(t, "save-range", plan.Action{Op: "saveAsTextFile", Input: "r", Path: out}, map[string]*plan.Dataset{"r": opRange(1003, 4)})
		opSame(t, "saveAsTextFile answer", opAnswer(t, cl, p), []ops.Record{opVal("1003")})
		files = opReadDir(t, out)
		if got := strings.Join(opSortedKeys(files), " "); got != "_SUCCESS part-00000 part-00001 part-00002 part-00003" {
			t.Fatalf("output directory holds %s", got)
		}
		for i, b := range opContiguous(1003, 4) {
			name := fmt.Sprintf("part-%05d", i)
			var want []string
			for v := b[0]; v < b[1]; v++ {
				want = append(want, strconv.Itoa(v))
			}
			if strings.Join(files[name], "\n") != strings.Join(want, "\n") {
				t.Errorf("%s holds %d lines (%.60q...), want %d from %d", name, len(files[name]), files[name], len(want), b[0])
			}
		}
	})
}

// opReadDir returns the lines of each file in dir (no subdirectories
// expected), by name.
func opReadDir(t *testing.T, dir string) map[string][]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		if e.IsDir() {
			t.Fatalf("%s: unexpected directory %s", dir, e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if s != "" && !strings.HasSuffix(s, "\n") {
			t.Errorf("%s does not end with a newline", e.Name())
		}
		lines := []string{}
		if s = strings.TrimSuffix(s, "\n"); s != "" {
			lines = strings.Split(s, "\n")
		}
		out[e.Name()] = lines
	}
	return out
}

func opSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestOperatorCombinations: operators over shuffled inputs, in several
// stages: unions of shuffles, a shuffle of a union, a join of two
// reductions of one dataset, a self-join of a reduction (one shuffle read
// twice), a sort of a reduction with take and first on it, a pipe after a
// shuffle, a sort after a repartition.
func TestOperatorCombinations(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	pairs := opPairs(41, 3000, 120)
	more := opPairs(42, 2000, 200)
	sums := func(recs ...[]ops.Record) map[string]int {
		out := map[string]int{}
		for _, rs := range recs {
			for _, r := range rs {
				v, _ := strconv.Atoi(string(r.Value))
				out[string(r.Key)] += v
			}
		}
		return out
	}
	one := func(m map[string]int) map[string][]string {
		out := map[string][]string{}
		for k, v := range m {
			out[k] = []string{strconv.Itoa(v)}
		}
		return out
	}

	t.Run("unionOfShuffles", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "union-of-shuffles", opCollect("u"), map[string]*plan.Dataset{
			"a": opParallelize(pairs, 3),
			"s": {Op: "reduceByKey", Input: "a", Fn: opFn("sum", ""), Partitions: 2},
			"g": {Op: "groupByKey", Input: "a", Partitions: 3},
			"u": {Op: "union", Inputs: []string{"s", "g"}},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		if len(parts) != 5 {
			t.Fatalf("%d partitions, want 2 + 3", len(parts))
		}
		opCheckByKey(t, "union: the reduceByKey half", parts[:2], 2, one(sums(pairs)))
		groups := map[string][]string{}
		for k, vs := range opValuesByKey(pairs) {
			groups[k] = []string{opJSON(vs)}
		}
		opCheckByKey(t, "union: the groupByKey half", parts[2:], 3, groups)
	})

	t.Run("shuffleOfUnion", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "shuffle-of-union", opCollect("s"), map[string]*plan.Dataset{
			"a": opParallelize(pairs, 3),
			"b": opParallelize(more, 2),
			"u": {Op: "union", Inputs: []string{"a", "b"}},
			"s": {Op: "reduceByKey", Input: "u", Fn: opFn("sum", ""), Partitions: 4},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		opCheckByKey(t, "reduceByKey of a union", parts, 4, one(sums(pairs, more)))
	})

	t.Run("joinOfReductions", func(t *testing.T) {
		t.Parallel()
		// Two shuffles of one dataset (sum and count), joined in a third.
		p := opPlan(t, "join-of-reductions", opCollect("j"), map[string]*plan.Dataset{
			"a": opParallelize(pairs, 3),
			"s": {Op: "reduceByKey", Input: "a", Fn: opFn("sum", ""), Partitions: 2},
			"n": {Op: "reduceByKey", Input: "a", Fn: opFn("count", ""), Partitions: 4},
			"j": {Op: "join", Inputs: []string{"s", "n"}, Partitions: 3},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		want := map[string][]string{}
		for k, vs := range opValuesByKey(pairs) {
			want[k] = []string{opJSON([]string{strconv.Itoa(sums(pairs)[k]), strconv.Itoa(len(vs))})}
		}
		opCheckByKey(t, "join of sum and count", parts, 3, want)

		// A self-join of one reduction: the same shuffle on both sides.
		p = opPlan(t, "self-join-of-reduction", opCollect("j"), map[string]*plan.Dataset{
			"a": opParallelize(pairs, 3),
			"s": {Op: "reduceByKey", Input: "a", Fn: opFn("sum", ""), Partitions: 2},
			"j": {Op: "join", Inputs: []string{"s", "s"}, Partitions: 2},
		})
		_, parts = opRunParts(t, cl, p, client.SubmitOptions{})
		want = map[string][]string{}
		for k, v := range sums(pairs) {
			want[k] = []string{opJSON([]string{strconv.Itoa(v), strconv.Itoa(v)})}
		}
		opCheckByKey(t, "self-join of a reduction", parts, 2, want)
	})

	t.Run("sortOfReduction", func(t *testing.T) {
		t.Parallel()
		// Sort the words by their sum (as text): the sampling job reads
		// a shuffle's output.
		ds := func(asc bool) map[string]*plan.Dataset {
			return map[string]*plan.Dataset{
				"a":      opParallelize(pairs, 3),
				"s":      {Op: "reduceByKey", Input: "a", Fn: opFn("sum", ""), Partitions: 3},
				"bySum":  {Op: "map", Input: "s", Fn: opFn("swap", "")},
				"sorted": {Op: "sortByKey", Input: "bySum", Partitions: 4, Ascending: &asc},
			}
		}
		var swapped []ops.Record
		for k, v := range sums(pairs) {
			swapped = append(swapped, opKV(strconv.Itoa(v), k))
		}
		sortedKeys := func(desc bool) []string {
			var ks []string
			for _, r := range opSorted(swapped, desc) {
				ks = append(ks, string(r.Key))
			}
			return ks
		}
		for _, desc := range []bool{false, true} {
			_, parts := opRunParts(t, cl, opPlan(t, "sort-of-reduction", opCollect("sorted"), ds(!desc)), client.SubmitOptions{})
			all := opFlat(parts)
			opSameSet(t, fmt.Sprintf("sort of a reduction (descending %t)", desc), all, swapped)
			keys := sortedKeys(desc)
			for i, r := range all {
				if string(r.Key) != keys[i] {
					t.Fatalf("descending %t: record %d has key %q, want %q", desc, i, r.Key, keys[i])
				}
			}
			// take and first on the sorted dataset: the smallest (largest)
			// keys.
			got := opAnswer(t, cl, opPlan(t, "take-of-sort", plan.Action{Op: "take", Input: "sorted", N: 7}, ds(!desc)))
			if len(got) != 7 {
				t.Fatalf("take 7 of the sort: %d records", len(got))
			}
			for i, r := range got {
				if string(r.Key) != keys[i] {
					t.Errorf("descending %t: take 7: record %d has key %q, want %q", desc, i, r.Key, keys[i])
				}
			}
			got = opAnswer(t, cl, opPlan(t, "first-of-sort", plan.Action{Op: "first", Input: "sorted"}, ds(!desc)))
			if len(got) != 1 || string(got[0].Key) != keys[0] {
				t.Errorf("descending %t: first of the sort = %v, want key %q", desc, got, keys[0])
			}
		}
	})

	t.Run("pipeAfterShuffle", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "pipe-after-shuffle", opCollect("p"), map[string]*plan.Dataset{
			"a": opParallelize(pairs, 3),
			"s": {Op: "reduceByKey", Input: "a", Fn: opFn("sum", ""), Partitions: 3},
			"p": {Op: "pipe", Input: "s", Command: "awk", Args: []string{"-F", "\t", `{print $1 "=" $2}`}},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		var want []ops.Record
		for k, v := range sums(pairs) {
			want = append(want, opVal(fmt.Sprintf("%s=%d", k, v)))
		}
		opSameSet(t, "pipe after reduceByKey", opFlat(parts), want)
	})

	t.Run("sortAfterRepartition", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "sort-after-repartition", opCollect("s"), map[string]*plan.Dataset{
			"r":  opRange(3000, 2),
			"m":  {Op: "map", Input: "r", Fn: opFn("mod", `{"n":97}`)},
			"rp": {Op: "repartition", Input: "m", Partitions: 5},
			"s":  {Op: "sortByKey", Input: "rp", Partitions: 3},
		})
		_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
		var in []ops.Record
		for i := 0; i < 3000; i++ {
			in = append(in, opKV(strconv.Itoa(i%97), strconv.Itoa(i)))
		}
		all := opFlat(parts)
		opSameSet(t, "sort after repartition", all, in)
		for i := 1; i < len(all); i++ {
			if bytes.Compare(all[i-1].Key, all[i].Key) > 0 {
				t.Fatalf("out of order at %d: %s then %s", i, opFmt(all[i-1]), opFmt(all[i]))
			}
		}
	})
}
