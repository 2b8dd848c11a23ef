// Command jobbench measures Baton running jobs on a local cluster of real
// processes (3 schedd, 2 execd with 4 slots each), each figure beside a
// baseline measured in the same run:
//
//   - empty-task throughput: a job of -tasks tasks that do nothing, in
//     tasks/s, against the same cluster with group commit turned off
//     (-proposal-batch 1);
//
//   - word count over -mb MiB of generated text, in MB/s, against a
//     single-process Go program counting the same words;
//
//   - one-task job latency, submit to result, median and 90th percentile
//     over -runs jobs;
//
//   - the cost of security: empty-task throughput and one-task latency
//     with mutual TLS and ACLs on beside the same cluster with them off.
//
//     go run ./internal/cmd/jobbench
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/plan"
)

func main() { os.Exit(run()) }

func run() int {
	tasks := flag.Int("tasks", 200000, "tasks in the empty-task job (and its baselines)")
	mb := flag.Int("mb", 256, "MiB of text for the word count (0 skips it)")
	runs := flag.Int("runs", 200, "one-task jobs for the latency figure")
	only := flag.String("only", "", "run one part: tasks, results, wordcount, latency, tls, or big (not in the default run: -big tasks beside 50,000)")
	profile := flag.String("profile", "", "write CPU profiles of every process during one -tasks job to this directory and print their top functions (-only profile)")
	flag.IntVar(&profileSeconds, "profile-seconds", 10, "length of each -profile CPU profile")
	flag.IntVar(&profileResults, "profile-results", 0, "with -only profile: a collect job whose tasks return results of this many bytes, not empty tasks")
	flag.IntVar(&daskTasks, "dask-tasks", 5000, "tasks of the Dask distributed baseline (it runs a few hundred tasks/s)")
	flag.IntVar(&big, "big", 1_000_000, "tasks of the big job (-only big)")
	flag.Func("sched-flag", "an extra schedd flag (repeatable), e.g. -sched-flag=-queue-per-slot=3", func(v string) error {
		extraSched = append(extraSched, v)
		return nil
	})
	flag.Parse()
	profileDir = *profile
	if err := bench(*tasks, *mb, *runs, *only); err != nil {
		fmt.Fprintln(os.Stderr, "jobbench:", err)
		return 1
	}
	return 0
}

var (
	profileDir     string
	profileSeconds int
	extraSched     []string
	extraExec      []string
	big            int
)

func bench(tasks, mb, runs int, only string) error {
	ctx := context.Background()
	bin, err := os.MkdirTemp("", "baton-jobbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := localcluster.Build(bin); err != nil {
		return err
	}
	startSecure := func(secure bool, extra ...string) (*localcluster.Cluster, *client.Client, error) {
		c, err := localcluster.Start(ctx, localcluster.Options{Bin: bin, Secure: secure, SchedFlags: append(append([]string{"-log-level", "warn"}, extraSched...), extra...), ExecFlags: append([]string{"-log-level", "warn"}, extraExec...)})
		if err != nil {
			return nil, nil, err
		}
		cl, err := c.Client()
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, cl, nil
	}
	start := func(extra ...string) (*localcluster.Cluster, *client.Client, error) {
		return startSecure(false, extra...)
	}
	if only == "" || only == "tasks" {
		fmt.Printf("== empty-task throughput: one job of empty tasks, 3 schedd, 2 execd x 4 slots, submit to end as the client sees it (target >= 100,000 tasks/s)\n")
		var quorum float64
		for _, cfg := range []struct {
			name  string
			n     int
			flags []string
		}{{"baseline: -proposal-batch 1 (no group commit)", tasks, []string{"-proposal-batch", "1"}}, {"baton (group commit)", tasks, nil}} {
			c, cl, err := start(cfg.flags...)
			if err != nil {
				return err
			}
			d, logged, err := emptyJob(ctx, cl, cfg.n)
			cl.Close()
			c.Close()
			if err != nil {
				return err
			}
			quorum = float64(cfg.n) / d.Seconds()
			fmt.Printf("  %-48s %8.0f tasks/s (%d tasks in %s; %s between the logged submission and end)\n", cfg.name, quorum, cfg.n, d.Round(time.Millisecond), logged.Round(time.Millisecond))
		}
		// The replication tax: the same job on schedd -dev (one node, no
		// replication) with the quorum's 8 slots in its embedded executor.
		dn, dcl, err := startDev(ctx, bin, 8)
		if err != nil {
			return err
		}
		d, logged, err := emptyJob(ctx, dcl, tasks)
		dcl.Close()
		dn.Close()
		if err != nil {
			return err
		}
		dev := float64(tasks) / d.Seconds()
		fmt.Printf("  %-48s %8.0f tasks/s (%d tasks in %s; %s between the logged submission and end)\n", "schedd -dev, 8 slots (no replication)", dev, tasks, d.Round(time.Millisecond), logged.Round(time.Millisecond))
		fmt.Printf("  replication tax (quorum time / dev time): %.2fx (target <= 1.10x)\n", dev/quorum)
		if err := daskBaseline(ctx); err != nil {
			fmt.Printf("  Dask distributed: not run: %v\n", err)
		}
	}
	if only == "profile" {
		if profileDir == "" {
			return fmt.Errorf("-only profile needs -profile DIR")
		}
		extraExec = append(extraExec, "-pprof")
		return profileJob(ctx, start, tasks, profileDir, profileSeconds)
	}
	if only == "" || only == "results" {
		if err := resultsJob(ctx, start, 20000, 4096); err != nil {
			return err
		}
	}
	if only == "big" {
		if err := bigJobs(ctx, start, big); err != nil {
			return err
		}
	}
	if (only == "" || only == "wordcount") && mb > 0 {
		if err := wordCount(ctx, start, mb); err != nil {
			return err
		}
	}
	if only == "" || only == "latency" {
		c, cl, err := start()
		if err != nil {
			return err
		}
		defer c.Close()
		defer cl.Close()
		if _, err := latency(ctx, cl, runs, true); err != nil {
			return err
		}
		dn, dcl, err := startDev(ctx, bin, 8)
		if err != nil {
			return err
		}
		times, err := latency(ctx, dcl, runs, false)
		dcl.Close()
		dn.Close()
		if err != nil {
			return err
		}
		fmt.Printf("  baseline: schedd -dev (no replication): median %s, p90 %s, p99 %s\n", times[len(times)/2].Round(10*time.Microsecond),
			times[len(times)*9/10].Round(10*time.Microsecond), times[min(len(times)-1, len(times)*99/100)].Round(10*time.Microsecond))
	}
	if only == "" || only == "tls" {
		n := min(tasks, 20000)
		fmt.Printf("== the cost of security: mutual TLS on every connection and ACL tokens on every call, beside both off (target: within 10%%)\n")
		for _, secure := range []bool{false, true} {
			name := "baseline: plaintext, no ACLs"
			if secure {
				name = "TLS and ACLs"
			}
			c, cl, err := startSecure(secure)
			if err != nil {
				return err
			}
			d, _, err := emptyJob(ctx, cl, n)
			if err != nil {
				cl.Close()
				c.Close()
				return err
			}
			times, err := latency(ctx, cl, runs, false)
			if err != nil {
				cl.Close()
				c.Close()
				return err
			}
			// A shuffle: every reducer fetches from every executor, each
			// fetch carrying its grant (checked by the serving executor).
			var shs []time.Duration
			for range 5 {
				d, err := shuffleJob(ctx, cl)
				if err != nil {
					cl.Close()
					c.Close()
					return err
				}
				shs = append(shs, d)
			}
			cl.Close()
			c.Close()
			slices.Sort(shs)
			sh := shs[len(shs)/2]
			fmt.Printf("  %-30s %8.0f empty tasks/s (%d tasks); one-task job median %s, p90 %s; 100x100 shuffle job median of 5 %s\n", name, float64(n)/d.Seconds(), n,
				times[len(times)/2].Round(10*time.Microsecond), times[len(times)*9/10].Round(10*time.Microsecond), sh.Round(time.Millisecond))
		}
	}
	return nil
}

func mustPlan(src string) *plan.Plan {
	p, err := plan.Parse([]byte(src))
	if err != nil {
		panic(err)
	}
	return p
}

// shuffleJob runs a 100-map, 100-reduce job over 100,000 keys and
// returns the time from submission to its end.
func shuffleJob(ctx context.Context, cl *client.Client) (time.Duration, error) {
	p := mustPlan(`{"name": "shuffle", "datasets": {"r": {"op": "range", "n": 100000, "partitions": 100},
		"p": {"op": "map", "input": "r", "fn": {"name": "pairWithOne"}},
		"s": {"op": "reduceByKey", "input": "p", "fn": {"name": "sum"}, "partitions": 100}}, "action": {"op": "count", "input": "s"}}`)
	start := time.Now()
	recs, err := cl.Run(ctx, p, client.SubmitOptions{})
	if err != nil {
		return 0, err
	}
	if len(recs) != 1 || string(recs[0].Value) != "100000" {
		return 0, fmt.Errorf("jobbench: shuffle job counted %v, want 100000", recs)
	}
	return time.Since(start), nil
}

// emptyJob runs a job of n tasks that compute nothing and returns the time
// from submission to its end.
func emptyJob(ctx context.Context, cl *client.Client, n int) (time.Duration, time.Duration, error) {
	p := mustPlan(fmt.Sprintf(`{"name": "empty", "datasets": {"r": {"op": "range", "n": 0, "partitions": %d}}, "action": {"op": "count", "input": "r"}}`, n))
	t0 := time.Now()
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		return 0, 0, err
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		return 0, 0, err
	}
	d := time.Since(t0)
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return 0, 0, fmt.Errorf("empty job %s: %s", j.State, j.Message)
	}
	if err := cl.Release(ctx, id); err != nil {
		return 0, 0, err
	}
	return d, time.Duration(j.EndedUnixNano - j.SubmittedUnixNano), nil
}

// genText writes mb MiB of text in 8 files: words from a 10,000-word
// vocabulary with a skewed distribution, some upper-cased.
func genText(dir string, mb int) (int64, error) {
	rng := rand.New(rand.NewPCG(7, 7))
	vocab := make([]string, 10000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("word%04d", i)
	}
	per := int64(mb) << 20 / 8
	var total int64
	for f := 0; f < 8; f++ {
		file, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%d.txt", f)))
		if err != nil {
			return 0, err
		}
		w := bufio.NewWriterSize(file, 1<<20)
		var n int64
		for n < per {
			words := 1 + rng.IntN(15)
			for i := 0; i < words; i++ {
				word := vocab[int(rng.ExpFloat64()*800)%len(vocab)]
				if rng.IntN(20) == 0 {
					word = strings.ToUpper(word)
				}
				if i > 0 {
					w.WriteByte(' ')
					n++
				}
				w.WriteString(word)
				n += int64(len(word))
			}
			w.WriteByte('\n')
			n++
		}
		if err := w.Flush(); err != nil {
			return 0, err
		}
		file.Close()
		total += n
	}
	return total, nil
}

// countLocally is the baseline: one process, one core, the same words.
func countLocally(dir string) (map[string]int64, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	counts := map[string]int64{}
	for _, f := range files {
		file, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			for _, w := range bytes.FieldsFunc(sc.Bytes(), unicode.IsSpace) {
				counts[string(bytes.ToLower(w))]++
			}
		}
		file.Close()
	}
	return counts, nil
}

func wordCount(ctx context.Context, start func(...string) (*localcluster.Cluster, *client.Client, error), mb int) error {
	dir, err := os.MkdirTemp("", "baton-wordcount-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	size, err := genText(dir, mb)
	if err != nil {
		return err
	}
	fmt.Printf("== word count over %d MiB of generated text\n", mb)
	t0 := time.Now()
	want, err := countLocally(dir)
	if err != nil {
		return err
	}
	local := time.Since(t0)
	fmt.Printf("  %-48s %8.1f MB/s (%s)\n", "baseline: single-process Go program", float64(size)/1e6/local.Seconds(), local.Round(time.Millisecond))
	c, cl, err := start()
	if err != nil {
		return err
	}
	defer c.Close()
	defer cl.Close()
	p := mustPlan(fmt.Sprintf(`{"name": "wordcount", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 16},
		"words":  {"op": "flatMap", "input": "lines", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 8}},
		"action": {"op": "collect", "input": "counts"}}`, filepath.Join(dir, "*.txt")))
	t0 = time.Now()
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		return err
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		return err
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return fmt.Errorf("word count %s: %s", j.State, j.Message)
	}
	recs, err := cl.Collect(ctx, id)
	if err != nil {
		return err
	}
	d := time.Since(t0)
	if len(recs) != len(want) {
		return fmt.Errorf("word count: %d words, the baseline found %d", len(recs), len(want))
	}
	for _, r := range recs {
		var n int64
		fmt.Sscan(string(r.Value), &n)
		if want[string(r.Key)] != n {
			return fmt.Errorf("word count: %q counted %d, the baseline %d", r.Key, n, want[string(r.Key)])
		}
	}
	cl.Release(ctx, id)
	fmt.Printf("  %-48s %8.1f MB/s (%s; %.2fx the baseline's time; target within 2x)\n", "baton (3 schedd, 2 execd x 4 slots)", float64(size)/1e6/d.Seconds(), d.Round(time.Millisecond), d.Seconds()/local.Seconds())
	return nil
}

func latency(ctx context.Context, cl *client.Client, runs int, print bool) ([]time.Duration, error) {
	p := mustPlan(`{"name": "one", "datasets": {"r": {"op": "range", "n": 1, "partitions": 1}}, "action": {"op": "collect", "input": "r"}}`)
	var times []time.Duration
	for i := 0; i < runs+3; i++ {
		t0 := time.Now()
		id, err := cl.Submit(ctx, p, client.SubmitOptions{})
		if err != nil {
			return nil, err
		}
		recs, err := cl.Collect(ctx, id)
		if err != nil {
			return nil, err
		}
		d := time.Since(t0)
		if len(recs) != 1 || string(recs[0].Value) != "0" {
			return nil, fmt.Errorf("one-task job: %v", recs)
		}
		cl.Release(ctx, id)
		if i >= 3 { // warm up first
			times = append(times, d)
		}
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	if print {
		fmt.Printf("== one-task job latency, submit to result, %d jobs\n", runs)
		fmt.Printf("  median %s, p90 %s, p99 %s, min %s (target median <= 2ms, p99 <= 10ms)\n", times[len(times)/2].Round(10*time.Microsecond), times[len(times)*9/10].Round(10*time.Microsecond),
			times[min(len(times)-1, len(times)*99/100)].Round(10*time.Microsecond), times[0].Round(10*time.Microsecond))
	}
	return times, nil
}
