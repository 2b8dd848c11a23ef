package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/baton-sched/baton/api"
	pflag "github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func init() {
	register(&command{name: "operator leaders", summary: "the latest leader takeovers: term, leader, when, and how long each took", examples: "batonctl operator leaders\nbatonctl operator leaders -o json",
		run: runLeaders})
}

var jobStatusOpts struct{ watch bool }

func jobStatusFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&jobStatusOpts.watch, "watch", false, "show live per-stage progress until the job ends (with -o json: a JSON object per change)")
}

// watchJob shows a job's stages with progress bars after every change
// until it ends. On a terminal the display is redrawn in place; otherwise
// each change prints a new block. It rides through a leader change (the
// client resumes the watch on another member) and has no deadline.
func watchJob(ctx context.Context, c *common, id uint64) error {
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	if c.name() {
		return usagef("-o name: job status -watch prints progress, not ids (use -o json)")
	}
	tty := isTerminal(c.env.Stdout)
	lines := 0
	var last time.Time
	var shown string
	show := func(j *api.Job, final bool) {
		if c.json() {
			printJSON(c.env.Stdout, jobJSON(j))
			return
		}
		// Off a terminal, at most one block a second (and the last).
		if !tty && !final && time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		var b strings.Builder
		printProgress(&b, j)
		out := b.String()
		if out == shown {
			return
		}
		shown = out
		if tty && lines > 0 {
			fmt.Fprintf(c.env.Stdout, "\x1b[%dA\x1b[J", lines) // up, then clear to the end
		}
		io.WriteString(c.env.Stdout, out)
		if !tty {
			io.WriteString(c.env.Stdout, "\n")
		}
		lines = strings.Count(out, "\n")
	}
	j, err := cl.Wait(ctx, id, func(j *api.Job) { show(j, false) })
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return jobNotFound(err, id)
		}
		return c.stillRunning(ctx, id, err)
	}
	// The watch's last message may precede the end: show the end itself.
	if full, err := cl.Job(ctx, id, true); err == nil {
		j = full
	}
	show(j, true)
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return endedError(j)
	}
	return nil
}

// printProgress writes a job's header and a progress bar per stage.
func printProgress(w io.Writer, j *api.Job) {
	fmt.Fprintf(w, "Job %d %s: %s, %s, %d/%d results, %d task failures\n", j.Id, dash(j.Name), jobStateName(j.State), duration(j), j.Finished, j.Tasks, j.TaskFailures)
	tw := table(w)
	for _, s := range j.Stages {
		kind := "result"
		if s.Map {
			kind = "map"
		}
		retry := ""
		if s.Attempt > 0 {
			retry = fmt.Sprintf(" (attempt %d)", s.Attempt)
		}
		state := stageStateName(s)
		fmt.Fprintf(tw, "  stage %d\t%s\t%s\t%s %d/%d\t%s%s\n", s.Id, s.Name, kind, progressBar(int(s.Available), int(s.Tasks), 30), s.Available, s.Tasks, state, retry)
	}
	tw.Flush()
	if j.Message != "" {
		fmt.Fprintf(w, "  %s\n", oneLine(j.Message))
	}
	for _, a := range j.Accumulators {
		fmt.Fprintf(w, "  %s (%s) = %v from %d partitions\n", a.Name, accKindName(a.Kind), accValue(a), a.Tasks)
	}
}

// progressBar draws done of total in width cells.
func progressBar(done, total, width int) string {
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runLeaders(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("operator leaders takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	takeovers, err := cl.LeaderHistory(ctx)
	if err != nil {
		return err
	}
	if c.json() || c.name() {
		out := []takeoverOut{}
		for _, t := range takeovers {
			o := takeoverOut{Term: t.Term, Leader: t.Id, Won: stamp(t.WonUnixNano), Ready: stamp(t.ReadyUnixNano), Executors: t.Executors, ExecutorsBack: t.ExecutorsBack}
			if t.ReadyUnixNano > 0 && t.WonUnixNano > 0 {
				ms := time.Duration(t.ReadyUnixNano - t.WonUnixNano).Milliseconds()
				o.TookMS = &ms
			}
			out = append(out, o)
		}
		return c.emit(map[string]any{"takeovers": out}, nil, nil)
	}
	tw := table(c.env.Stdout)
	fmt.Fprintln(tw, "TERM\tLEADER\tTOOK OVER AT\tTOOK OVER IN\tEXECUTORS BACK")
	for _, t := range takeovers {
		took := time.Duration(t.ReadyUnixNano - t.WonUnixNano).Round(time.Millisecond)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d of %d\n", t.Term, t.Id, when(t.WonUnixNano), took, t.ExecutorsBack, t.Executors)
	}
	return tw.Flush()
}

// humanBytes writes a byte count in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i-1])
}

func init() {
	register(&command{name: "operator snapshot save", args: "FILE", summary: "write a backup of the replicated state to FILE", examples: "batonctl operator snapshot save /backups/baton-$(date +%F).snap",
		run: runSnapshotSave})
	register(&command{name: "operator snapshot restore", args: "FILE", summary: "replace the replicated state with the backup in FILE (every member)", examples: "batonctl operator snapshot restore /backups/baton-2026-11-21.snap",
		run: runSnapshotRestore})
}

func runSnapshotSave(ctx context.Context, c *common, args []string) error {
	if len(args) != 1 {
		return usagef("operator snapshot save takes a file name")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	tmp := args[0] + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	index, err := cl.Backup(ctx, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, args[0])
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if c.json() || c.name() {
		return c.emit(map[string]any{"file": args[0], "index": index}, nil, nil)
	}
	fmt.Fprintf(c.env.Stdout, "backup of the state at log index %d written to %s\n", index, args[0])
	return nil
}

func runSnapshotRestore(ctx context.Context, c *common, args []string) error {
	if len(args) != 1 {
		return usagef("operator snapshot restore takes a file name")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Restore(ctx, f); err != nil {
		return err
	}
	if c.json() || c.name() {
		return c.emit(map[string]any{"restored": args[0]}, nil, nil)
	}
	fmt.Fprintf(c.env.Stdout, "state restored from %s\n", args[0])
	return nil
}
