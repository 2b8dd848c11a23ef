// Command membench measures jobs over more data than the executors may
// hold in memory, on a local cluster of real processes (3 schedd, 2 execd
// with 4 slots each): a TeraSort-style sortByKey and a groupByKey over
// -gb GiB of generated 100-byte records with the executors given -memory
// each (execd sets the Go runtime's memory limit to match), and a sortByKey of a skewed input in
// which one key holds half the records; every answer validated exactly,
// each executor's peak resident memory (VmHWM) reported against the
// limit, and throughput beside the same jobs over -baseline-gb GiB with no
// memory budget, in the same run.
//
//	go run ./internal/cmd/membench -gb 4 -memory 256MiB
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/internal/terasort"
)

func main() { os.Exit(run()) }

func run() int {
	gb := flag.Float64("gb", 4, "GiB of records for the jobs with a memory budget")
	baseGB := flag.Float64("baseline-gb", 1, "GiB of records for the same jobs without a budget")
	memory := flag.String("memory", "256MiB", "each executor's -memory (and GOMEMLIMIT)")
	limit := flag.Int64("rss-limit-mib", 512, "the peak RSS (VmHWM) each executor must stay under, MiB")
	skew := flag.Bool("skew", true, "also sort a skewed input (one key holds half the records)")
	flag.Parse()
	if err := bench(*gb, *baseGB, *memory, *limit<<20, *skew); err != nil {
		fmt.Fprintln(os.Stderr, "membench:", err)
		return 1
	}
	return 0
}

type result struct {
	name  string
	bytes int64
	took  time.Duration
	peaks []int64
}

func bench(gb, baseGB float64, memory string, rssLimit int64, skew bool) error {
	dir, err := os.MkdirTemp("", "baton-membench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var results []result
	ok := true
	// The jobs without a budget, on less data: the baseline.
	base, err := suite(dir, "baseline", int64(baseGB*(1<<30)), "0", false)
	if err != nil {
		return err
	}
	results = append(results, base...)
	limited, err := suite(dir, "limited", int64(gb*(1<<30)), memory, skew)
	if err != nil {
		return err
	}
	results = append(results, limited...)
	fmt.Printf("== jobs over more data than memory (2 execd x 4 slots); answers validated exactly\n")
	for _, r := range results {
		line := fmt.Sprintf("  %-58s %7.1f MB/s (%s)", r.name, float64(r.bytes)/1e6/r.took.Seconds(), r.took.Round(time.Second))
		if len(r.peaks) > 0 {
			var s []string
			for _, p := range r.peaks {
				s = append(s, fmt.Sprintf("%d MiB", p>>20))
				if strings.Contains(r.name, "limited") && p > rssLimit {
					ok = false
				}
			}
			line += "; executors' peak RSS " + strings.Join(s, ", ")
		}
		fmt.Println(line)
	}
	if !ok {
		return fmt.Errorf("an executor's peak RSS passed %d MiB", rssLimit>>20)
	}
	fmt.Printf("  every executor with -memory %s stayed under %d MiB of peak RSS\n", memory, rssLimit>>20)
	return nil
}

// suite runs the sort, the group and (skew) the skewed sort on a fresh
// cluster whose executors have the given -memory.
func suite(root, label string, total int64, memory string, skew bool) ([]result, error) {
	dir := filepath.Join(root, label)
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		return nil, err
	}
	want, _, err := terasort.Gen(in, 16, total, 7)
	if err != nil {
		return nil, err
	}
	size := want.Records * terasort.RecordSize
	// execd sets the Go runtime's memory limit to its -memory itself
	// (GOMEMLIMIT unset).
	execFlags := []string{"-log-level", "warn", "-memory", memory}
	os.Unsetenv("GOMEMLIMIT")
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(dir, "cluster"), SchedFlags: []string{"-log-level", "warn"}, ExecFlags: execFlags})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	name := func(job string) string {
		if memory == "0" {
			return fmt.Sprintf("%s, %.1f GiB, no memory budget", job, float64(size)/(1<<30))
		}
		return fmt.Sprintf("%s, %.1f GiB, limited: -memory %s", job, float64(size)/(1<<30), memory)
	}
	var out []result

	sortOut := filepath.Join(dir, "sorted")
	start := time.Now()
	if err := sortJob(ctx, cl, filepath.Join(in, "input-*.txt"), sortOut, want); err != nil {
		return nil, fmt.Errorf("sort: %w", err)
	}
	out = append(out, result{name: name("sortByKey"), bytes: size, took: time.Since(start)})
	os.RemoveAll(sortOut)

	groupOut := filepath.Join(dir, "grouped")
	start = time.Now()
	if err := groupJob(ctx, cl, filepath.Join(in, "input-*.txt"), groupOut, want); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	out = append(out, result{name: name("groupByKey (2-byte keys)"), bytes: size, took: time.Since(start)})
	os.RemoveAll(groupOut)

	if skew {
		for _, p := range mustGlob(filepath.Join(in, "input-*.txt")) {
			os.Remove(p)
		}
		swant, _, err := terasort.GenSkewed(in, 16, total, 8, "MMMMMMMMMM")
		if err != nil {
			return nil, err
		}
		skewOut := filepath.Join(dir, "skew-sorted")
		start = time.Now()
		if err := sortJob(ctx, cl, filepath.Join(in, "skewed-*.txt"), skewOut, swant); err != nil {
			return nil, fmt.Errorf("skewed sort: %w", err)
		}
		out = append(out, result{name: name("sortByKey, one key holding half the records"), bytes: size, took: time.Since(start)})
		os.RemoveAll(skewOut)
	}
	// VmHWM is the peak over each executor's life: every job of the suite.
	var peaks []int64
	for _, p := range c.Execs {
		peaks = append(peaks, vmHWM(p.Pid()))
	}
	out[len(out)-1].peaks = peaks
	return out, nil
}

func sortJob(ctx context.Context, cl *client.Client, glob, out string, want terasort.Summary) error {
	n, err := cl.TextFile(glob, 32).
		Map("keyPrefix", client.Args{"n": terasort.KeySize}).
		SortByKey(true, 16).
		Map("mergeKV", client.Args{"sep": ""}).
		Named("membench-sort").
		SaveAsTextFile(ctx, out)
	if err != nil {
		return err
	}
	if n != want.Records {
		return fmt.Errorf("wrote %d records, want %d", n, want.Records)
	}
	parts := mustGlob(filepath.Join(out, "part-*"))
	sort.Strings(parts)
	got, err := terasort.Validate(parts)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the output is not the input's records: %+v, want %+v", got, want)
	}
	return nil
}

// groupJob groups the records by their first 2 bytes and checks that the
// groups hold exactly the input's records.
func groupJob(ctx context.Context, cl *client.Client, glob, out string, want terasort.Summary) error {
	n, err := cl.TextFile(glob, 32).
		Map("keyPrefix", client.Args{"n": 2}).
		GroupByKey(16).
		Named("membench-group").
		SaveAsTextFile(ctx, out)
	if err != nil {
		return err
	}
	var got terasort.Summary
	groups := int64(0)
	for _, p := range mustGlob(filepath.Join(out, "part-*")) {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		r := bufio.NewReaderSize(f, 1<<20)
		for {
			line, err := r.ReadString('\n')
			if line == "" && err != nil {
				break
			}
			k, v, cut := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
			var vals []string
			if !cut || json.Unmarshal([]byte(v), &vals) != nil {
				f.Close()
				return fmt.Errorf("%s: a line that is not key<TAB>[values]", p)
			}
			groups++
			for _, val := range vals {
				got.Add([]byte(k + val))
			}
		}
		f.Close()
	}
	if groups != n {
		return fmt.Errorf("%d groups written, the job says %d", groups, n)
	}
	if got != want {
		return fmt.Errorf("the groups do not hold the input's records: %+v, want %+v", got, want)
	}
	return nil
}

func mustGlob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

// vmHWM returns a process's peak resident set size in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}
