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

	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// A known-answer job: a plan and the answer it must give, as records
// rendered "key<TAB>value" and sorted.
type knownJob struct {
	name   string
	plan   *plan.Plan
	answer []string
}

// input is generated text with its word counts.
type input struct {
	glob   string
	counts map[string]int
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
	for f := 0; f < files; f++ {
		file, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%02d.txt", f)))
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriter(file)
		for l := 0; l < lines; l++ {
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
	return &input{glob: filepath.Join(dir, "*.txt"), counts: counts}, nil
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
func wordCount(in *input, sleepMS int) knownJob {
	p := mustPlan(fmt.Sprintf(`{"name": "wordcount", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 24},
		"slow":   {"op": "mapPartitions", "input": "lines", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}},
		"words":  {"op": "flatMap", "input": "slow", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 16},
		"out":    {"op": "mapPartitions", "input": "counts", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}}},
		"action": {"op": "collect", "input": "out"}}`, in.glob, sleepMS, sleepMS))
	var answer []string
	for w, n := range in.counts {
		answer = append(answer, w+"\t"+strconv.Itoa(n))
	}
	sort.Strings(answer)
	return knownJob{name: "wordcount", plan: p, answer: answer}
}

// histogram needs two shuffles: it counts the words, then how many words
// have each count.
func histogram(in *input, sleepMS int) knownJob {
	p := mustPlan(fmt.Sprintf(`{"name": "histogram", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 16},
		"slow":   {"op": "mapPartitions", "input": "lines", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}},
		"words":  {"op": "flatMap", "input": "slow", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 12},
		"slow2":  {"op": "mapPartitions", "input": "counts", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}},
		"n":      {"op": "map", "input": "slow2", "fn": {"name": "field", "args": {"i": 0}}},
		"byN":    {"op": "map", "input": "n", "fn": "pairWithOne"},
		"hist":   {"op": "reduceByKey", "input": "byN", "fn": "count", "partitions": 8},
		"out":    {"op": "mapPartitions", "input": "hist", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}}},
		"action": {"op": "collect", "input": "out"}}`, in.glob, sleepMS, sleepMS, sleepMS))
	h := map[int]int{}
	for _, n := range in.counts {
		h[n]++
	}
	var answer []string
	for n, k := range h {
		answer = append(answer, strconv.Itoa(n)+"\t"+strconv.Itoa(k))
	}
	sort.Strings(answer)
	return knownJob{name: "histogram", plan: p, answer: answer}
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
