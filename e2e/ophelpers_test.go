package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// This file checks every operator and action of the plan language on a
// real cluster (three schedd, two execd) against answers computed here, in
// plain Go. Each top-level test starts one cluster and runs its cases as
// parallel subtests on it.

// opTimeout bounds one job (or one client.Run) of these tests.
const opTimeout = 60 * time.Second

// ---- plans ----

// opFn is a function reference; args is a JSON object, or "" for none.
func opFn(name, args string) *plan.Func {
	f := &plan.Func{Name: name}
	if args != "" {
		f.Args = json.RawMessage(args)
	}
	return f
}

// opPlan builds a plan and validates it.
func opPlan(t *testing.T, name string, action plan.Action, datasets map[string]*plan.Dataset) *plan.Plan {
	t.Helper()
	p := &plan.Plan{Name: name, Datasets: datasets, Action: action}
	if err := p.Validate(); err != nil {
		t.Fatalf("plan %s: %v", name, err)
	}
	return p
}

func opCollect(input string) plan.Action { return plan.Action{Op: "collect", Input: input} }

func opParallelize(recs []ops.Record, parts int) *plan.Dataset {
	return &plan.Dataset{Op: "parallelize", Records: recs, Partitions: parts}
}

func opRange(n int64, parts int) *plan.Dataset {
	return &plan.Dataset{Op: "range", N: n, Partitions: parts}
}

// ---- records ----

func opKV(k, v string) ops.Record { return ops.Record{Key: []byte(k), Value: []byte(v), HasKey: true} }
func opVal(v string) ops.Record   { return ops.Record{Value: []byte(v)} }

// opFmt shows a record unambiguously: "key":"value", or "value" alone.
func opFmt(r ops.Record) string {
	if r.HasKey {
		return strconv.Quote(string(r.Key)) + ":" + strconv.Quote(string(r.Value))
	}
	return strconv.Quote(string(r.Value))
}

func opFlat(parts [][]ops.Record) []ops.Record {
	var out []ops.Record
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// opSame checks two record sequences are equal, in order.
func opSame(t *testing.T, what string, got, want []ops.Record) {
	t.Helper()
	for i := 0; i < min(len(got), len(want)); i++ {
		if g, w := opFmt(got[i]), opFmt(want[i]); g != w {
			t.Fatalf("%s: record %d is %.200s, want %.200s (%d records, want %d)", what, i, g, w, len(got), len(want))
		}
	}
	if len(got) != len(want) {
		var extra string
		if len(got) > len(want) {
			extra = "first extra record " + opFmt(got[len(want)])
		} else {
			extra = "first missing record " + opFmt(want[len(got)])
		}
		t.Fatalf("%s: %d records, want %d; %.200s", what, len(got), len(want), extra)
	}
}

// opSameSet checks two record sequences hold the same records, in any
// order.
func opSameSet(t *testing.T, what string, got, want []ops.Record) {
	t.Helper()
	sorted := func(rs []ops.Record) []ops.Record {
		out := append([]ops.Record(nil), rs...)
		sort.SliceStable(out, func(a, b int) bool { return opFmt(out[a]) < opFmt(out[b]) })
		return out
	}
	opSame(t, what+" (sorted)", sorted(got), sorted(want))
}

// opCheckByKey checks the output of a shuffle that groups by key
// (reduceByKey, groupByKey, cogroup, join): nparts partitions, keyed
// records, keys in ascending byte order within each partition, every key
// in one partition only, and the values of each key, in order, as want
// says.
func opCheckByKey(t *testing.T, what string, parts [][]ops.Record, nparts int, want map[string][]string) {
	t.Helper()
	if len(parts) != nparts {
		t.Fatalf("%s: %d partitions, want %d", what, len(parts), nparts)
	}
	got := map[string][]string{}
	where := map[string]int{}
	for i, part := range parts {
		for j, r := range part {
			if !r.HasKey {
				t.Fatalf("%s: partition %d holds the value-only record %s", what, i, opFmt(r))
			}
			if j > 0 && bytes.Compare(part[j-1].Key, r.Key) > 0 {
				t.Fatalf("%s: partition %d is not sorted by key: %s before %s", what, i, opFmt(part[j-1]), opFmt(r))
			}
			k := string(r.Key)
			if p, ok := where[k]; ok && p != i {
				t.Fatalf("%s: key %q in partitions %d and %d", what, k, p, i)
			}
			where[k] = i
			got[k] = append(got[k], string(r.Value))
		}
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("%s: key %q missing (want %.200q)", what, k, w)
		}
		if len(g) != len(w) {
			t.Fatalf("%s: key %q has %d values, want %d: got %.300q, want %.300q", what, k, len(g), len(w), g, w)
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("%s: key %q value %d is %.200q, want %.200q", what, k, i, g[i], w[i])
			}
		}
	}
	if len(got) != len(want) {
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Fatalf("%s: %d keys, want %d; unexpected key %q with %.200q", what, len(got), len(want), k, got[k])
			}
		}
	}
}

// opContiguous returns the [start, end) runs in which range and
// parallelize cut n records into parts partitions: n/parts each, one more
// for the first n%parts.
func opContiguous(n, parts int) [][2]int {
	out := make([][2]int, parts)
	q, r := n/parts, n%parts
	start := 0
	for p := range out {
		size := q
		if p < r {
			size++
		}
		out[p] = [2]int{start, start + size}
		start += size
	}
	return out
}

// opSplit cuts records as parallelize does.
func opSplit(recs []ops.Record, parts int) [][]ops.Record {
	out := make([][]ops.Record, parts)
	for p, b := range opContiguous(len(recs), parts) {
		out[p] = recs[b[0]:b[1]]
	}
	return out
}

// opRangeRecs returns the value-only records "lo" ... "hi-1".
func opRangeRecs(lo, hi int) []ops.Record {
	out := make([]ops.Record, 0, max(hi-lo, 0))
	for i := lo; i < hi; i++ {
		out = append(out, opVal(strconv.Itoa(i)))
	}
	return out
}

// opJSON is json.Marshal for values that cannot fail.
func opJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---- jobs ----

// opRunParts submits p, waits for it to succeed and returns the job and
// each partition's records (the raw per-partition results, in partition
// order); the job is released afterwards.
func opRunParts(t *testing.T, cl *client.Client, p *plan.Plan, opts client.SubmitOptions) (*api.Job, [][]ops.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	id, err := cl.Submit(ctx, p, opts)
	if err != nil {
		t.Fatalf("%s: submit: %v", p.Name, err)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		cl.Release(rctx, id)
	}()
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		t.Fatalf("%s: wait for job %d: %v", p.Name, id, err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("%s: job %d %s: %s", p.Name, id, j.State, j.Message)
	}
	raw, err := cl.Results(ctx, id)
	if err != nil {
		t.Fatalf("%s: results of job %d: %v", p.Name, id, err)
	}
	parts := make([][]ops.Record, len(raw))
	for i, b := range raw {
		parts[i] = []ops.Record{}
		err := ops.DecodeRecords(b, func(r ops.Record) error {
			parts[i] = append(parts[i], ops.Record{Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...), HasKey: r.HasKey})
			return nil
		})
		if err != nil {
			t.Fatalf("%s: partition %d's result: %v", p.Name, i, err)
		}
	}
	return j, parts
}

// opFailed submits p and waits for it to end, expecting it to fail; it
// returns the job.
func opFailed(t *testing.T, cl *client.Client, p *plan.Plan, opts client.SubmitOptions) *api.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	id, err := cl.Submit(ctx, p, opts)
	if err != nil {
		t.Fatalf("%s: submit: %v", p.Name, err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		t.Fatalf("%s: wait for job %d: %v", p.Name, id, err)
	}
	if j.State != api.JobState_JOB_STATE_FAILED {
		t.Fatalf("%s: job %d %s (%q), want failed", p.Name, id, j.State, j.Message)
	}
	return j
}

// opAnswer runs p with client.Run: the partitions' results merged as the
// action says.
func opAnswer(t *testing.T, cl *client.Client, p *plan.Plan) []ops.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	recs, err := cl.Run(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return recs
}

// ---- data ----

// opPairs returns n keyed records with keys k000 ... (keys-1), low keys
// far more frequent than high ones, and integer values in [-500, 1500).
func opPairs(seed uint64, n, keys int) []ops.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]ops.Record, 0, n)
	for i := 0; i < n; i++ {
		k := int(rng.ExpFloat64()*float64(keys)/5) % keys
		out = append(out, opKV(fmt.Sprintf("k%03d", k), strconv.Itoa(rng.IntN(2000)-500)))
	}
	return out
}

// opMixed returns n records, keyed and value-only, with awkward bytes:
// empty keys and values, tabs, quotes, non-ASCII text.
func opMixed(seed uint64, n int) []ops.Record {
	rng := rand.New(rand.NewPCG(seed, 8))
	odd := []string{"", "\t", "a\tb", `"q"`, "é", "日本", "<&>", " sp ", "0", "-7"}
	str := func() string {
		if rng.IntN(8) == 0 {
			return odd[rng.IntN(len(odd))]
		}
		return fmt.Sprintf("s%d", rng.IntN(500))
	}
	out := make([]ops.Record, 0, n)
	for i := 0; i < n; i++ {
		if rng.IntN(3) == 0 {
			out = append(out, opVal(str()))
		} else {
			out = append(out, opKV(str(), str()))
		}
	}
	return out
}

// opNumbered returns n records, a third value-only, the rest keyed, all
// with integer values.
func opNumbered(seed uint64, n int) []ops.Record {
	rng := rand.New(rand.NewPCG(seed, 9))
	out := make([]ops.Record, 0, n)
	for i := 0; i < n; i++ {
		v := strconv.Itoa(rng.IntN(20000) - 10000)
		if rng.IntN(3) == 0 {
			out = append(out, opVal(v))
		} else {
			out = append(out, opKV(fmt.Sprintf("n%d", rng.IntN(300)), v))
		}
	}
	return out
}

// opTextFiles writes text files of random words into dir and returns the
// lines a textFile of dir/*.txt should read, in order: a.txt with \n
// endings, b.txt with \r\n endings and empty lines, c.txt without a final
// newline, d.txt empty, e.txt with a line longer than the reader's 256 KiB
// buffer, and sub.txt, a directory (skipped).
func opTextFiles(t *testing.T, dir string, seed uint64) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 5))
	line := func(minWords int) string {
		n := minWords + rng.IntN(9)
		ws := make([]string, n)
		for i := range ws {
			ws[i] = fmt.Sprintf("w%02d", int(rng.ExpFloat64()*12)%60)
			if rng.IntN(10) == 0 {
				ws[i] = strings.ToUpper(ws[i])
			}
		}
		return strings.Join(ws, " ")
	}
	var all []string
	write := func(name string, lines []string, eol string, final bool) {
		content := strings.Join(lines, eol)
		if final && len(lines) > 0 {
			content += eol
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		all = append(all, lines...)
	}
	var a, b, c []string
	for i := 0; i < 3000; i++ {
		a = append(a, line(0))
	}
	for i := 0; i < 2000; i++ {
		if rng.IntN(10) == 0 {
			b = append(b, "")
		} else {
			b = append(b, line(1))
		}
	}
	for i := 0; i < 1000; i++ {
		c = append(c, line(1))
	}
	write("a.txt", a, "\n", true)
	write("b.txt", b, "\r\n", true)
	write("c.txt", c, "\n", false)
	write("d.txt", nil, "\n", false)
	long := strings.TrimSpace(strings.Repeat("lorem ipsum ", 300_000/12))
	write("e.txt", []string{"before the long line", long, "after the long line"}, "\n", true)
	if err := os.MkdirAll(filepath.Join(dir, "sub.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub.txt", "x.txt"), []byte("not read\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return all
}

// opTextSplits returns the lines each textFile partition should hold for
// files of the given sizes and lines (each line followed by one line
// ending) with a minimum partition count: split size min(total/minParts,
// 32 MiB), each file cut into pieces of that size with the last up to 10%
// larger, a line in the split where it starts.
func opTextSplits(sizes []int64, lines [][]string, minParts int) [][]string {
	var total int64
	for _, s := range sizes {
		total += s
	}
	size := min(max(total/int64(minParts), 1), 32<<20)
	var out [][]string
	for f, fsize := range sizes {
		type split struct{ start, end int64 }
		var splits []split
		for off := int64(0); off < fsize; {
			n := size
			if rem := fsize - off; float64(rem) <= 1.1*float64(size) {
				n = rem
			}
			splits = append(splits, split{off, off + n})
			off += n
		}
		parts := make([][]string, len(splits))
		lineLen := fsize / int64(len(lines[f]))
		for i, l := range lines[f] {
			start := int64(i) * lineLen
			for s, sp := range splits {
				if start >= sp.start && start < sp.end {
					parts[s] = append(parts[s], l)
				}
			}
		}
		out = append(out, parts...)
	}
	return out
}

func opValues(vs []string) []ops.Record {
	out := make([]ops.Record, len(vs))
	for i, v := range vs {
		out[i] = opVal(v)
	}
	return out
}

// opValuesByKey groups records' values by key, in order.
func opValuesByKey(recs []ops.Record) map[string][]string {
	out := map[string][]string{}
	for _, r := range recs {
		out[string(r.Key)] = append(out[string(r.Key)], string(r.Value))
	}
	return out
}

// ---- operators ----
