// Command terasort sorts generated TeraSort-style records on a Baton
// cluster and checks the result: -mb MiB of 100-byte records with random
// 10-byte keys are written under -dir, sorted by key with sortByKey (a
// sampling job picks the range bounds, so reducers get equal shares) and
// saved with saveAsTextFile, then the output is validated: globally
// ordered, and the same records as the input.
//
//	schedd -dev &
//	go run ./examples/terasort -mb 100 -dir /tmp/terasort
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/terasort"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("terasort", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr(), "API addresses of the quorum's members, comma-separated (default $BATON_ADDR)")
	dir := fs.String("dir", "", "working directory for the input and output (required; absolute, on a file system the executors share)")
	mb := fs.Int("mb", 100, "MiB of records")
	files := fs.Int("files", 4, "input files")
	reducers := fs.Int("reducers", 8, "sorted output partitions")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || !filepath.IsAbs(*dir) {
		fmt.Fprintln(stderr, "terasort: -dir must be an absolute path")
		return 2
	}
	if err := sortRecords(*addr, *dir, *mb, *files, *reducers, stdout); err != nil {
		fmt.Fprintln(stderr, "terasort:", err)
		return 1
	}
	return 0
}

func sortRecords(addr, dir string, mb, files, reducers int, stdout io.Writer) error {
	in, out := filepath.Join(dir, "input"), filepath.Join(dir, "output")
	if err := os.MkdirAll(in, 0o755); err != nil {
		return err
	}
	want, _, err := terasort.Gen(in, files, int64(mb)<<20, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "generated %d records in %s\n", want.Records, in)
	opts, err := client.FromEnv(client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := client.Dial(strings.Split(addr, ","), opts)
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	n, err := c.TextFile(filepath.Join(in, "*.txt"), 2*files).
		Map("keyPrefix", client.Args{"n": terasort.KeySize}). // (10-byte key, the rest)
		SortByKey(true, reducers).
		Map("mergeKV", client.Args{"sep": ""}). // back to whole records
		Named("terasort").
		SaveAsTextFile(context.Background(), out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sorted %d records into %s in %s\n", n, out, time.Since(start).Round(time.Millisecond))
	parts, _ := filepath.Glob(filepath.Join(out, "part-*"))
	sort.Strings(parts)
	got, err := terasort.Validate(parts)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the output holds %d records (checksum %x), the input %d (checksum %x)", got.Records, got.Checksum, want.Records, want.Checksum)
	}
	fmt.Fprintf(stdout, "valid: %d part files, globally ordered, the input's records\n", len(parts))
	return nil
}

func defaultAddr() string {
	if a := os.Getenv("BATON_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:7101"
}
