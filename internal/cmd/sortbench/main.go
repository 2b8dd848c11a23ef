// Command sortbench measures a TeraSort-style sort on a local cluster of
// real processes (3 schedd, 2 execd with 4 slots each) beside a
// single-process Go sort of the same records in the same run: -mb MiB of
// generated 100-byte records with 10-byte random keys, read from files,
// sorted by key and written to files, both outputs validated (global
// order, same records).
//
//	go run ./internal/cmd/sortbench -mb 1024
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/internal/terasort"
)

func main() { os.Exit(run()) }

func run() int {
	mb := flag.Int("mb", 1024, "MiB of records to sort")
	files := flag.Int("files", 8, "input files")
	splits := flag.Int("partitions", 16, "input partitions (byte-range splits)")
	reducers := flag.Int("reducers", 16, "sorted output partitions")
	flag.Parse()
	if err := bench(int64(*mb)<<20, *files, *splits, *reducers); err != nil {
		fmt.Fprintln(os.Stderr, "sortbench:", err)
		return 1
	}
	return 0
}

func bench(total int64, files, splits, reducers int) error {
	dir, err := os.MkdirTemp("", "baton-sortbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	want, paths, err := terasort.Gen(in, files, total, 1)
	if err != nil {
		return err
	}
	size := float64(want.Records * terasort.RecordSize)
	fmt.Printf("== sort of %.0f MiB: %d records of 100 bytes with 10-byte random keys, files to files, output validated\n", size/(1<<20), want.Records)

	start := time.Now()
	got, err := terasort.SortLocal(paths, filepath.Join(dir, "local-sorted"))
	if err != nil {
		return err
	}
	local := time.Since(start)
	if got != want {
		return fmt.Errorf("the baseline lost records: %+v, want %+v", got, want)
	}
	if v, err := terasort.Validate([]string{filepath.Join(dir, "local-sorted")}); err != nil || v != want {
		return fmt.Errorf("the baseline's output does not validate: %v", err)
	}
	os.Remove(filepath.Join(dir, "local-sorted"))
	fmt.Printf("  %-56s %7.1f MB/s (%s)\n", "baseline: single-process Go sort", size/1e6/local.Seconds(), local.Round(time.Millisecond))

	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(dir, "cluster"), SchedFlags: []string{"-log-level", "warn"}, ExecFlags: []string{"-log-level", "warn"}})
	if err != nil {
		return err
	}
	defer c.Close()
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	out := filepath.Join(dir, "baton-sorted")
	start = time.Now()
	n, err := cl.TextFile(filepath.Join(in, "*.txt"), splits).
		Map("keyPrefix", client.Args{"n": terasort.KeySize}).
		SortByKey(true, reducers).
		Map("mergeKV", client.Args{"sep": ""}).
		Named("terasort").
		SaveAsTextFile(ctx, out)
	if err != nil {
		return err
	}
	baton := time.Since(start)
	if n != want.Records {
		return fmt.Errorf("baton wrote %d records, want %d", n, want.Records)
	}
	parts, _ := filepath.Glob(filepath.Join(out, "part-*"))
	sort.Strings(parts)
	v, err := terasort.Validate(parts)
	if err != nil {
		return err
	}
	if v != want {
		return fmt.Errorf("baton's output is not the input's records: %+v, want %+v", v, want)
	}
	var smallest, largest int64 = -1, 0
	for _, p := range parts {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if smallest < 0 || st.Size() < smallest {
			smallest = st.Size()
		}
		largest = max(largest, st.Size())
	}
	fmt.Printf("  %-56s %7.1f MB/s (%s; %.2fx the baseline's time)\n", fmt.Sprintf("baton (3 schedd, 2 execd x 4 slots, %d->%d partitions)", splits, reducers),
		size/1e6/baton.Seconds(), baton.Round(time.Millisecond), baton.Seconds()/local.Seconds())
	fmt.Printf("  output partitions: %d, largest/smallest %.2f (%s / %s)\n", len(parts), float64(largest)/float64(max(smallest, 1)), mib(largest), mib(smallest))
	return nil
}

func mib(n int64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/(1<<20)), ".0") + " MiB"
}
