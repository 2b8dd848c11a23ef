package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/baton-sched/baton/internal/drill"
	pflag "github.com/spf13/pflag"
)

func init() {
	register(&command{name: "drill", summary: "a failover drill: a local cluster of real processes runs known-answer jobs while a nemesis SIGKILLs the leader, a follower or an executor, and checks every answer", examples: "batonctl drill --rounds 30 --kill leader --at random --seed 1\nbatonctl drill --rounds 5 --kill executor --at reduce -o json",
		run: runDrill, flags: drillFlags})
}

var drillOpts drill.Options

func drillFlags(fs *pflag.FlagSet) {
	fs.IntVar(&drillOpts.Rounds, "rounds", 1, "jobs to run under fault")
	fs.StringVar(&drillOpts.Kill, "kill", "leader", "what the nemesis kills (SIGKILL): leader, follower, executor, random or none")
	fs.StringVar(&drillOpts.At, "at", "random", "when: map, reduce, collect or random")
	fs.Uint64Var(&drillOpts.Seed, "seed", 1, "seed for random choices")
	fs.IntVar(&drillOpts.Executors, "executors", 2, "executors (4 slots each)")
	fs.IntVar(&drillOpts.SleepMS, "task-ms", 40, "how long each task sleeps, so the nemesis strikes mid-stage")
	fs.BoolVar(&drillOpts.Speculation, "speculation", false, "turn speculation on, with a straggler in each job's map stage for it to copy")
	fs.StringVar(&drillOpts.Dir, "dir", "", "keep the cluster's files here (default: a temporary directory, removed)")
}

// binaries finds schedd and execd next to this batonctl.
func binaries() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(exe)
	for _, b := range []string{"schedd", "execd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("the drill runs %s from %s, and it is not there (run make build)", b, dir)
		}
	}
	return dir, nil
}

func runDrill(cmdCtx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("drill takes no arguments")
	}
	bin, err := binaries()
	if err != nil {
		return err
	}
	opts := drillOpts
	opts.Bin = bin
	if !c.json() {
		opts.Log = c.env.Stderr
	}
	// An interrupt (or -timeout) stops the drill, which cleans up.
	rep, err := drill.Run(cmdCtx, opts)
	if rep != nil {
		if c.json() {
			if perr := printJSON(c.env.Stdout, drillJSON(rep)); perr != nil {
				return perr
			}
		} else {
			fmt.Fprintln(c.env.Stdout)
			rep.Print(c.env.Stdout)
		}
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return errors.New("the drill failed")
	}
	return nil
}

// drillOut is a drill's report in JSON: what was not measured (a
// takeover when the new leader had nothing to launch) is left out.
type drillOut struct {
	Rounds            []drillRoundOut `json:"rounds"`
	Exact             int             `json:"exact"`
	OK                bool            `json:"ok"`
	RerunsFailover    int64           `json:"reruns_failover"`
	TakeoverMedianMS  *float64        `json:"takeover_median_ms,omitempty"`
	TakeoverMaxMS     *float64        `json:"takeover_max_ms,omitempty"`
	TakeoverSamples   int             `json:"takeover_samples"`
	ElectionMedianMS  *float64        `json:"election_median_ms,omitempty"`
	BaselineWordCount float64         `json:"baseline_wordcount_ms"`
	BaselineHistogram float64         `json:"baseline_histogram_ms"`
	Speculation       bool            `json:"speculation"`
}

type drillRoundOut struct {
	Round         int      `json:"round"`
	Job           string   `json:"job"`
	Target        string   `json:"target"`
	At            string   `json:"at"`
	ElectionMS    *float64 `json:"election_ms,omitempty"`
	TakeoverMS    *float64 `json:"takeover_ms,omitempty"`
	NewLeader     string   `json:"new_leader,omitempty"`
	RerunFailover int64    `json:"rerun_failover"`
	RerunDataLoss int64    `json:"rerun_data_loss"`
	StageAttempts []int32  `json:"stage_attempts"`
	TaskFailures  int64    `json:"task_failures"`
	JobMS         float64  `json:"job_ms"`
	BaselineMS    float64  `json:"baseline_ms"`
	Exact         bool     `json:"exact"`
	Error         string   `json:"error,omitempty"`
}

// measured is a figure in milliseconds, nil when it was not taken.
func measured(ms float64) *float64 {
	if ms <= 0 {
		return nil
	}
	return &ms
}

func drillJSON(r *drill.Report) drillOut {
	out := drillOut{Rounds: []drillRoundOut{}, Exact: r.Exact, OK: r.OK(), RerunsFailover: r.RerunsFailover, TakeoverSamples: r.TakeoverSamples,
		BaselineWordCount: r.BaselineWordCount, BaselineHistogram: r.BaselineHistogram, Speculation: r.Speculation}
	if r.TakeoverSamples > 0 {
		out.TakeoverMedianMS, out.TakeoverMaxMS = measured(r.TakeoverMedianMs), measured(r.TakeoverMaxMs)
	}
	out.ElectionMedianMS = measured(r.ElectionMedianMs)
	for _, x := range r.Rounds {
		attempts := append([]int32{}, x.Attempts...)
		out.Rounds = append(out.Rounds, drillRoundOut{Round: x.N, Job: x.Job, Target: x.Target, At: x.At, ElectionMS: measured(x.ElectionMs),
			TakeoverMS: measured(x.TakeoverMs), NewLeader: x.NewLeader, RerunFailover: x.RerunFailover, RerunDataLoss: x.RerunDataLoss,
			StageAttempts: attempts, TaskFailures: x.TaskFailures, JobMS: x.JobMs, BaselineMS: x.BaselineMs, Exact: x.Exact, Error: x.Error})
	}
	return out
}
