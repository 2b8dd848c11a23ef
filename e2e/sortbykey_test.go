package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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

// TestOperatorFailures: a failing pipe program fails the job with the tail
// of its standard error in the job's message; a keyed operator given
// value-only records fails with a clear message.
func TestOperatorFailures(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	t.Run("pipeExit", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "pipe-exit", opCollect("p"), map[string]*plan.Dataset{
			"r": opRange(100, 2),
			"p": {Op: "pipe", Input: "r", Command: "sh", Args: []string{"-c", `cat >/dev/null; echo "pipe-test: first complaint" >&2; echo "pipe-test: bad record 42" >&2; exit 3`}},
		})
		j := opFailed(t, cl, p, client.SubmitOptions{})
		for _, want := range []string{"pipe-test: first complaint", "pipe-test: bad record 42", "exit status 3", "failed 4 times"} {
			if !strings.Contains(j.Message, want) {
				t.Errorf("message %q lacks %q", j.Message, want)
			}
		}
	})
	t.Run("resultsOfFailedJob", func(t *testing.T) {
		t.Parallel()
		// Asking a failed job for its results says why it failed (a
		// failed job is also released: that is not the reason).
		p := opPlan(t, "results-of-failed", opCollect("s"), map[string]*plan.Dataset{
			"r": opParallelize([]ops.Record{opKV("a", "x"), opKV("b", "1")}, 1),
			"s": {Op: "reduceByKey", Input: "r", Fn: opFn("sum", "")},
		})
		j := opFailed(t, cl, p, client.SubmitOptions{MaxTaskFailures: 1})
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_, err := cl.Results(ctx, j.Id)
		if err == nil || !strings.Contains(err.Error(), "has failed") || !strings.Contains(err.Error(), "not an integer") {
			t.Errorf("results of a failed job: %v", err)
		}
	})
	t.Run("pipeStderrTail", func(t *testing.T) {
		t.Parallel()
		// 5000 lines of noise, then the last words: the message keeps the
		// tail, not the head.
		p := opPlan(t, "pipe-tail", opCollect("p"), map[string]*plan.Dataset{
			"r": opRange(10, 1),
			"p": {Op: "pipe", Input: "r", Command: "awk", Args: []string{`END { for (i = 0; i < 5000; i++) print "noise " sprintf("%05d", i) > "/dev/stderr"; print "the last words" > "/dev/stderr"; exit 7 }`}},
		})
		j := opFailed(t, cl, p, client.SubmitOptions{MaxTaskFailures: 1})
		if !strings.Contains(j.Message, "the last words") || !strings.Contains(j.Message, "exit status 7") {
			t.Errorf("message %.500q lacks the stderr tail or the exit status", j.Message)
		}
		if strings.Contains(j.Message, "noise 00000") {
			t.Errorf("message keeps the head of stderr: %.300q", j.Message)
		}
		if len(j.Message) > 8<<10 {
			t.Errorf("message of %d bytes", len(j.Message))
		}
	})
	t.Run("pipeNoProgram", func(t *testing.T) {
		t.Parallel()
		p := opPlan(t, "pipe-missing", opCollect("p"), map[string]*plan.Dataset{
			"r": opRange(10, 1),
			"p": {Op: "pipe", Input: "r", Command: "/nonexistent/baton-no-such-program"},
		})
		j := opFailed(t, cl, p, client.SubmitOptions{MaxTaskFailures: 1})
		if !strings.Contains(j.Message, "/nonexistent/baton-no-such-program") {
			t.Errorf("message %q does not name the program", j.Message)
		}
	})
	t.Run("keyedOpOnValues", func(t *testing.T) {
		t.Parallel()
		for _, op := range []string{"groupByKey", "sortByKey"} {
			// Straight from a range, the plan is refused at submit.
			direct := &plan.Plan{Name: op + "-range", Action: opCollect("g"), Datasets: map[string]*plan.Dataset{
				"r": opRange(100, 2),
				"g": {Op: op, Input: "r", Partitions: 2},
			}}
			if _, err := cl.Submit(context.Background(), direct, client.SubmitOptions{}); err == nil || !strings.Contains(err.Error(), `its input "r" holds values without keys (range)`) {
				t.Errorf("%s over a range: submit gave %v, want a refusal", op, err)
			}
			// Through a function that keeps values, it fails at run time.
			p := opPlan(t, op+"-values", opCollect("g"), map[string]*plan.Dataset{
				"r": opRange(100, 2),
				"m": {Op: "map", Input: "r", Fn: &plan.Func{Name: "lower"}},
				"g": {Op: op, Input: "m", Partitions: 2},
			})
			j := opFailed(t, cl, p, client.SubmitOptions{MaxTaskFailures: 1})
			if want := fmt.Sprintf(`%s "g" needs keyed records, got the value-only record`, op); !strings.Contains(j.Message, want) {
				t.Errorf("%s on value-only records: message %q lacks %q", op, j.Message, want)
			}
		}
	})
}

// ---- sortByKey ----

// opTeraFiles writes TeraSort-style records, 100 bytes and a newline each
// (a 10-byte random printable key, then 90 bytes: the row number and
// filler), into files in dir, and returns them as keyed records (the
// first 10 bytes the key), in file order.
func opTeraFiles(t *testing.T, dir string, files, per int, seed uint64) []ops.Record {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	var recs []ops.Record
	row := 0
	for f := 0; f < files; f++ {
		var b bytes.Buffer
		for i := 0; i < per; i++ {
			key := make([]byte, 10)
			for k := range key {
				key[k] = byte(' ' + rng.IntN(95))
			}
			val := fmt.Sprintf("%010d", row) + strings.Repeat(string(rune('A'+row%26)), 80)
			row++
			b.Write(key)
			b.WriteString(val)
			b.WriteByte('\n')
			recs = append(recs, opKV(string(key), val))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("tera-%02d.txt", f)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

// opSorted returns recs stably sorted by key bytes.
func opSorted(recs []ops.Record, descending bool) []ops.Record {
	out := append([]ops.Record(nil), recs...)
	sort.SliceStable(out, func(a, b int) bool {
		c := bytes.Compare(out[a].Key, out[b].Key)
		if descending {
			return c > 0
		}
		return c < 0
	})
	return out
}

// opCheckSorted checks a sort's partitions: nparts of them, globally
// ordered in partition order (within each partition and across
// boundaries), the same records as the stable sort of in, and, when
// balanced, no partition more than twice the size of the smallest.
func opCheckSorted(t *testing.T, what string, parts [][]ops.Record, nparts int, in []ops.Record, descending, balanced bool) {
	t.Helper()
	if len(parts) != nparts {
		t.Fatalf("%s: %d partitions, want %d", what, len(parts), nparts)
	}
	var prev *ops.Record
	for i, part := range parts {
		for j := range part {
			r := &part[j]
			if !r.HasKey {
				t.Fatalf("%s: partition %d holds the value-only record %s", what, i, opFmt(*r))
			}
			if prev != nil {
				c := bytes.Compare(prev.Key, r.Key)
				if (!descending && c > 0) || (descending && c < 0) {
					t.Fatalf("%s: out of order at partition %d record %d: %s then %s", what, i, j, opFmt(*prev), opFmt(*r))
				}
			}
			prev = r
		}
	}
	opSame(t, what, opFlat(parts), opSorted(in, descending))
	sizes := make([]int, len(parts))
	for i, p := range parts {
		sizes[i] = len(p)
	}
	t.Logf("%s: partition sizes %v", what, sizes)
	if balanced {
		lo, hi := sizes[0], sizes[0]
		for _, s := range sizes {
			lo, hi = min(lo, s), max(hi, s)
		}
		if lo == 0 || hi > 2*lo {
			t.Errorf("%s: unbalanced partitions %v: the largest is more than twice the smallest", what, sizes)
		}
	}
}

// TestSortByKey: sortByKey (Spark's, with a sampled range partitioner)
// orders its output globally across partitions, ascending or descending,
// keeps equal keys in input order, and with uniform keys balances its
// partitions within a factor of two.
func TestSortByKey(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	dir := t.TempDir()
	tera := opTeraFiles(t, dir, 4, 2000, 21)
	teraPlan := func(t *testing.T, ascending *bool) *plan.Plan {
		return opPlan(t, "terasort", opCollect("sorted"), map[string]*plan.Dataset{
			"lines":  {Op: "textFile", Path: filepath.Join(dir, "tera-*.txt"), Partitions: 8},
			"kv":     {Op: "map", Input: "lines", Fn: opFn("keyPrefix", `{"n":10}`)},
			"sorted": {Op: "sortByKey", Input: "kv", Partitions: 6, Ascending: ascending},
		})
	}
	yes, no := true, false

	t.Run("terasortAscending", func(t *testing.T) {
		t.Parallel()
		_, parts := opRunParts(t, cl, teraPlan(t, nil), client.SubmitOptions{})
		opCheckSorted(t, "terasort", parts, 6, tera, false, true)
		_, parts = opRunParts(t, cl, teraPlan(t, &yes), client.SubmitOptions{})
		opCheckSorted(t, "terasort ascending=true", parts, 6, tera, false, true)
	})

	t.Run("terasortDescending", func(t *testing.T) {
		t.Parallel()
		_, parts := opRunParts(t, cl, teraPlan(t, &no), client.SubmitOptions{})
		opCheckSorted(t, "terasort descending", parts, 6, tera, true, true)
	})

	t.Run("somePartitions", func(t *testing.T) {
		t.Parallel()
		// A job limited to partitions 1 and 4 of the sort computes just
		// those: the same records as in the whole sort.
		_, all := opRunParts(t, cl, teraPlan(t, nil), client.SubmitOptions{})
		j, some := opRunParts(t, cl, teraPlan(t, nil), client.SubmitOptions{Partitions: []int{1, 4}})
		if len(some) != 2 || j.Tasks < 2 {
			t.Fatalf("a job of partitions 1 and 4 returned %d partitions", len(some))
		}
		opSame(t, "partition 1 alone", some[0], all[1])
		opSame(t, "partition 4 alone", some[1], all[4])
	})

	t.Run("uniformKeys", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(22, 6))
		var recs []ops.Record
		for i := 0; i < 5000; i++ {
			recs = append(recs, opKV(fmt.Sprintf("%08x", rng.Uint32()), strconv.Itoa(i)))
		}
		for _, desc := range []bool{false, true} {
			asc := !desc
			p := opPlan(t, "uniform", opCollect("s"), map[string]*plan.Dataset{
				"recs": opParallelize(recs, 5),
				"s":    {Op: "sortByKey", Input: "recs", Partitions: 4, Ascending: &asc},
			})
			_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
			opCheckSorted(t, fmt.Sprintf("uniform keys descending=%t", desc), parts, 4, recs, desc, true)
		}
	})

	t.Run("fewKeys", func(t *testing.T) {
		t.Parallel()
		// Three distinct keys for five reducers: some get nothing, and
		// equal keys keep their input order (the reducers sort stably
		// what arrives in map order).
		rng := rand.New(rand.NewPCG(23, 6))
		var recs []ops.Record
		for i := 0; i < 1500; i++ {
			recs = append(recs, opKV([]string{"b", "a", "c"}[rng.IntN(3)], strconv.Itoa(i)))
		}
		for _, desc := range []bool{false, true} {
			asc := !desc
			p := opPlan(t, "fewKeys", opCollect("s"), map[string]*plan.Dataset{
				"recs": opParallelize(recs, 5),
				"s":    {Op: "sortByKey", Input: "recs", Partitions: 5, Ascending: &asc},
			})
			_, parts := opRunParts(t, cl, p, client.SubmitOptions{})
			opCheckSorted(t, fmt.Sprintf("three keys descending=%t", desc), parts, 5, recs, desc, false)
		}
	})

	t.Run("awkwardKeys", func(t *testing.T) {
		t.Parallel()
		// Byte order: the empty key first, prefixes before longer keys,
		// "10" before "9", upper case before lower, UTF-8 after ASCII.
		keys := []string{"", "a", "aa", "ab", "b", "10", "9", "Z", "é", "\x00", "a\x00", " "}
		var recs []ops.Record
		for i := 0; i < 600; i++ {
			recs = append(recs, opKV(keys[(i*7)%len(keys)], strconv.Itoa(i)))
		}
		for _, parts := range []int{0, 1, 3} {
			p := opPlan(t, "awkward", opCollect("s"), map[string]*plan.Dataset{
				"recs": opParallelize(recs, 4),
				"s":    {Op: "sortByKey", Input: "recs", Partitions: parts},
			})
			_, got := opRunParts(t, cl, p, client.SubmitOptions{})
			want := parts
			if want == 0 {
				want = 4 // the input's
			}
			opCheckSorted(t, fmt.Sprintf("awkward keys into %d partitions", parts), got, want, recs, false, false)
		}
	})
}

// ---- actions ----
