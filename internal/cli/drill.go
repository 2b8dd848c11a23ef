package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/baton-sched/baton/internal/drill"
)

func init() {
	register(&command{name: "drill", summary: "a failover drill: a local cluster of real processes runs known-answer jobs while a nemesis kills", run: runDrill, flags: drillFlags})
}

var drillOpts drill.Options

func drillFlags(fs *flag.FlagSet) {
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

func runDrill(_ context.Context, c *common, fs *flag.FlagSet, args []string) error {
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
	// The drill has its own clock: -timeout does not apply; an interrupt
	// stops it and cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := drill.Run(ctx, opts)
	if rep != nil {
		if c.json() {
			if perr := printJSON(c.env.Stdout, rep); perr != nil {
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
