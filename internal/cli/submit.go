package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/bytesize"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	pflag "github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var submitOpts struct {
	file            string
	wait            bool
	keep            bool
	key             string
	maxTaskFailures int
	maxResultSize   int64
	pool            string
	group           string
	mapStage        bool
	adaptive        bool
	adaptiveTarget  byteSize
}

// byteSize is a flag of bytes with an optional unit: 64MiB, 512KiB, 1GiB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

// Type names the value in help.
func (b *byteSize) Type() string { return "size" }

func (b *byteSize) Set(v string) error {
	n, err := bytesize.Parse(v)
	if err != nil {
		return err
	}
	if n == 0 || n > 1<<62 {
		return fmt.Errorf("%q is not a size in bytes (such as 64MiB)", v)
	}
	*b = byteSize(n)
	return nil
}

func submitFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&submitOpts.file, "file", "f", "", "the plan, a JSON file (- for standard input) (required)")
	fs.BoolVar(&submitOpts.wait, "wait", false, "wait for the job to end, print its state and results, and release it")
	fs.BoolVar(&submitOpts.keep, "keep", false, "with -wait: do not release the job after printing its results")
	fs.StringVar(&submitOpts.key, "key", "", "idempotency key (default: a fresh one)")
	fs.IntVar(&submitOpts.maxTaskFailures, "max-task-failures", 0, "failures of one task that abort the job (default: the quorum's)")
	fs.Int64Var(&submitOpts.maxResultSize, "max-result-size", 0, "bytes of results the job may hold (default: the quorum's)")
	fs.StringVar(&submitOpts.group, "group", "", "the job group: job cancel -group cancels the group's running jobs")
	fs.StringVar(&submitOpts.pool, "pool", "", "the FAIR pool the job's tasks share slots in (default: the default pool)")
	fs.BoolVar(&submitOpts.mapStage, "map-stage", false, "run only the map stage of the shuffle the plan's output reads and print its statistics (Spark's submitMapStage); with -wait the job is kept, so later jobs reading the shuffle reuse its outputs until job release")
	fs.BoolVar(&submitOpts.adaptive, "adaptive", false, "coalesce small reducer partitions: each stage reading shuffles runs tasks of about -adaptive-target bytes of input, decided from its parents' map output statistics")
	submitOpts.adaptiveTarget = 64 << 20
	fs.Var(&submitOpts.adaptiveTarget, "adaptive-target", "with -adaptive: the bytes of shuffle input a coalesced task reads (64MiB, 1GiB, ...)")
}

// resultRecords reads a job's answer (its partitions' results merged as
// its action says).
func resultRecords(ctx context.Context, cl *client.Client, j *api.Job) ([]ops.Record, error) {
	return cl.Answer(ctx, j.Id)
}

func printRecords(w io.Writer, recs []ops.Record) {
	bw := bufio.NewWriter(w)
	for _, r := range recs {
		bw.WriteString(ops.FormatRecord(r))
		bw.WriteByte('\n')
	}
	bw.Flush()
}

func runJobResults(ctx context.Context, c *common, args []string) error {
	id, err := jobID(args)
	if err != nil {
		return err
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return jobNotFound(err, id)
		}
		return c.stillRunning(ctx, id, err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return endedError(j)
	}
	recs, err := resultRecords(ctx, cl, j)
	if err != nil {
		return err
	}
	if c.name() {
		return usagef("-o name: job results prints records, not ids (use -o json)")
	}
	if c.json() {
		return printJSON(c.env.Stdout, jsonRecords(recs))
	}
	printRecords(c.env.Stdout, recs)
	return nil
}

func runSubmit(ctx context.Context, c *common, args []string) error {
	if submitOpts.file == "" || len(args) > 0 {
		return usagef("submit needs -f plan.json and no arguments")
	}
	var data []byte
	var err error
	if submitOpts.file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(submitOpts.file)
	}
	if err != nil {
		return err
	}
	p, err := plan.Parse(data)
	if err != nil {
		return err
	}
	if submitOpts.file != "-" {
		if err := resolvePaths(p, filepath.Dir(submitOpts.file)); err != nil {
			return err
		}
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	sopts := client.SubmitOptions{IdempotencyKey: submitOpts.key, MaxTaskFailures: submitOpts.maxTaskFailures, MaxResultSize: submitOpts.maxResultSize, Pool: submitOpts.pool, Group: submitOpts.group,
		MapStage: submitOpts.mapStage}
	if submitOpts.adaptive {
		sopts.AdaptiveTarget = int64(submitOpts.adaptiveTarget)
	}
	if submitOpts.mapStage && (p.Action.Op == "take" || p.Action.Op == "first") {
		return usagef("-map-stage runs a shuffle's map stage: it does not go with a %s action", p.Action.Op)
	}
	if submitOpts.wait && (p.Action.Op == "take" || p.Action.Op == "first") {
		// take(n) reads as few partitions as it can, in growing jobs.
		recs, err := cl.Run(ctx, p, sopts)
		if err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.env.Stdout, struct {
				State   string        `json:"state"`
				Results *[][2]*string `json:"results"`
			}{"succeeded", jsonRecords(recs)})
		}
		printRecords(c.env.Stdout, recs)
		return nil
	}
	id, err := cl.Submit(ctx, p, sopts)
	if err != nil {
		return err
	}
	ids := []string{strconv.FormatUint(id, 10)}
	if !submitOpts.wait || c.name() {
		return c.emit(map[string]any{"id": id, "state": "running"}, ids, func() error {
			_, err := fmt.Fprintf(c.env.Stdout, "job %d submitted\n", id)
			return err
		})
	}
	// Waiting has no deadline but -timeout (a job may run for hours); an
	// interrupt stops it, and the job goes on.
	if !c.json() {
		fmt.Fprintf(c.env.Stderr, "job %d submitted; waiting for it to end (Ctrl-C stops waiting, not the job)\n", id)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		return c.stillRunning(ctx, id, err)
	}
	wctx := ctx
	var recs []ops.Record
	if j.State == api.JobState_JOB_STATE_SUCCEEDED && !j.MapStage {
		recs, err = resultRecords(wctx, cl, j)
		switch {
		case errors.Is(err, client.ErrUnmerged):
			// A reduce with a user function: show each partition's value.
			fmt.Fprintf(c.env.Stderr, "batonctl: %v\n", err)
		case err != nil:
			return err
		}
		if !submitOpts.keep {
			if err := cl.Release(wctx, id); err != nil {
				fmt.Fprintf(c.env.Stderr, "batonctl: releasing job %d: %v\n", id, err)
			}
		}
	}
	if c.json() {
		out := jobJSON(j)
		if !j.MapStage {
			out.Results = jsonRecords(recs)
		}
		if err := printJSON(c.env.Stdout, out); err != nil {
			return err
		}
	} else {
		printJob(c.env.Stderr, j)
		printRecords(c.env.Stdout, recs)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return endedError(j)
	}
	return nil
}

// resolvePaths makes a plan file's relative textFile and saveAsTextFile
// paths absolute, relative to the file's directory (as a compose file's
// are): executors read and write absolute paths only. Object-store URLs
// (s3://) and absolute paths are left alone.
func resolvePaths(p *plan.Plan, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	fix := func(path string) string {
		if path == "" || filepath.IsAbs(path) || strings.Contains(path, "://") {
			return path
		}
		return filepath.Join(abs, path)
	}
	for _, d := range p.Datasets {
		if d != nil && d.Op == "textFile" {
			d.Path = fix(d.Path)
		}
	}
	if p.Action.Op == "saveAsTextFile" {
		p.Action.Path = fix(p.Action.Path)
	}
	return nil
}
