package drill

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// A known-answer job: a plan and the answer it must give, as records
// rendered "key<TAB>value" and sorted.
type knownJob struct {
	name   string
	plan   *plan.Plan
	answer []string
	// accs are the accumulators the job must end with, exactly: each
	// map and result partition counted once whatever was killed.
	accs []wantAcc
}

type wantAcc struct {
	name  string
	kind  api.AccumulatorKind
	value int64
}

// input is generated text with its word counts, and how many lines it
// has, of which malformed (not UTF-8: the jobs drop and count them).
type input struct {
	glob             string
	counts           map[string]int
	lines, malformed int
}

// genInput writes files of random words (a skewed vocabulary, some words
// upper-cased) and counts them.
func genInput(dir string, files, lines int, seed uint64) (*input, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	vocab := make([]string, 2000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("word%04d", i)
	}
	counts := map[string]int{}
	in := &input{glob: filepath.Join(dir, "*.txt"), counts: counts, lines: files * lines}
	for f := 0; f < files; f++ {
		file, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%02d.txt", f)))
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriter(file)
		for l := 0; l < lines; l++ {
			if rng.IntN(40) == 0 {
				// A malformed line: its words are not counted.
				in.malformed++
				w.WriteString("word0001 \xff\xfe word0002\n")
				continue
			}
			n := rng.IntN(14)
			for i := 0; i < n; i++ {
				word := vocab[int(rng.ExpFloat64()*200)%len(vocab)]
				if rng.IntN(12) == 0 {
					word = strings.ToUpper(word)
				}
				counts[strings.ToLower(word)]++
				if i > 0 {
					w.WriteByte(' ')
				}
				w.WriteString(word)
			}
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		file.Close()
	}
	return in, nil
}

func mustPlan(src string) *plan.Plan {
	p, err := plan.Parse([]byte(src))
	if err != nil {
		panic(err)
	}
	return p
}

// wordCount counts the words; map and reduce tasks sleep a little so a
// nemesis can strike in the middle of each stage.
//
// With straggleMS, partition 3's first attempt of the map stage sleeps
// that long too: a straggler for speculation to copy.
func wordCount(in *input, sleepMS, straggleMS int) knownJob {
	p := mustPlan(fmt.Sprintf(`{"name": "wordcount", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 24},
		"valid":  {"op": "filter", "input": "lines", "fn": {"name": "wellFormed", "args": {"acc": "malformed lines"}}},
		"counted": {"op": "filter", "input": "valid", "fn": {"name": "acc.count", "args": {"acc": "lines"}}},
		"slow":   {"op": "mapPartitions", "input": "counted", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}},
		%s
		"words":  {"op": "flatMap", "input": "straggle", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 16},
		"tally":  {"op": "filter", "input": "counts", "fn": {"name": "acc.sum", "args": {"acc": "words"}}},
		"out":    {"op": "mapPartitions", "input": "tally", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}}},
		"action": {"op": "collect", "input": "out"}}`, in.glob, sleepMS, straggler(straggleMS), sleepMS))
	var answer []string
	words := 0
	for w, n := range in.counts {
		answer = append(answer, w+"\t"+strconv.Itoa(n))
		words += n
	}
	sort.Strings(answer)
	return knownJob{name: "wordcount", plan: p, answer: answer, accs: append(in.lineAccs(), wantAcc{"words", api.AccumulatorKind_ACCUMULATOR_KIND_SUM, int64(words)})}
}

// straggler is the plan's "straggle" dataset, after "slow": partition 3's
// first attempt sleeps ms (none: it passes records on).
func straggler(ms int) string {
	if ms <= 0 {
		return `"straggle": {"op": "filter", "input": "slow", "fn": "nonEmpty"},`
	}
	return fmt.Sprintf(`"straggle": {"op": "mapPartitions", "input": "slow", "fn": {"name": "chaos.sleep", "args": {"ms": %d, "partitions": [3], "attempts": 1}}},`, ms)
}

// lineAccs are the accumulators of a job's map side over the input.
func (in *input) lineAccs() []wantAcc {
	return []wantAcc{
		{"lines", api.AccumulatorKind_ACCUMULATOR_KIND_COUNT, int64(in.lines - in.malformed)},
		{"malformed lines", api.AccumulatorKind_ACCUMULATOR_KIND_COUNT, int64(in.malformed)},
	}
}

// sameAccs reports whether a job's accumulators are exactly those wanted
// (failed attempts' are apart and not compared), and describes the first
// difference.
func sameAccs(got []*api.Accumulator, want []wantAcc) (bool, string) {
	have := map[string]*api.Accumulator{}
	for _, a := range got {
		have[a.Name+"/"+a.Kind.String()] = a
	}
	for _, w := range want {
		a := have[w.name+"/"+w.kind.String()]
		switch {
		case a == nil:
			return false, fmt.Sprintf("accumulator %q missing", w.name)
		case a.IntValue != w.value:
			return false, fmt.Sprintf("accumulator %q is %d, want %d", w.name, a.IntValue, w.value)
		}
	}
	if len(got) != len(want) {
		return false, fmt.Sprintf("%d accumulators, want %d", len(got), len(want))
	}
	return true, ""
}

// histogram needs two shuffles: it counts the words, then how many words
// have each count.
func histogram(in *input, sleepMS, straggleMS int) knownJob {
	p := mustPlan(fmt.Sprintf(`{"name": "histogram", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 16},
		"valid":  {"op": "filter", "input": "lines", "fn": {"name": "wellFormed", "args": {"acc": "malformed lines"}}},
		"counted": {"op": "filter", "input": "valid", "fn": {"name": "acc.count", "args": {"acc": "lines"}}},
		"slow":   {"op": "mapPartitions", "input": "counted", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}},
		%s
		"words":  {"op": "flatMap", "input": "straggle", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 12},
		"slow2":  {"op": "mapPartitions", "input": "counts", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}},
		"n":      {"op": "map", "input": "slow2", "fn": {"name": "field", "args": {"i": 0}}},
		"byN":    {"op": "map", "input": "n", "fn": "pairWithOne"},
		"hist":   {"op": "reduceByKey", "input": "byN", "fn": "count", "partitions": 8},
		"out":    {"op": "mapPartitions", "input": "hist", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}}},
		"action": {"op": "collect", "input": "out"}}`, in.glob, sleepMS, straggler(straggleMS), sleepMS, sleepMS))
	h := map[int]int{}
	for _, n := range in.counts {
		h[n]++
	}
	var answer []string
	for n, k := range h {
		answer = append(answer, strconv.Itoa(n)+"\t"+strconv.Itoa(k))
	}
	sort.Strings(answer)
	return knownJob{name: "histogram", plan: p, answer: answer, accs: in.lineAccs()}
}

// render turns records into the sorted "key<TAB>value" form of answers.
func render(recs []ops.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, ops.FormatRecord(r))
	}
	sort.Strings(out)
	return out
}

// same reports whether two answers are equal, and describes the first
// difference.
func same(got, want []string) (bool, string) {
	if len(got) != len(want) {
		return false, fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return false, fmt.Sprintf("record %d is %q, want %q", i, got[i], want[i])
		}
	}
	return true, ""
}
