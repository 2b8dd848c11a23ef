// Command demo is what `make demo` runs: it builds Baton, starts a local
// three-node quorum and two executors as real processes, runs jobs over
// generated text (a word count and a histogram, in turn) and kills the
// leader in the middle of each — during the map stage, during the reduce
// stage, and while the results are collected — shows each job finishing
// on the new leader with the exact answer, prints the drill report, and removes every process and
// file it made.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/baton-sched/baton/internal/drill"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("Baton demo: a Spark-style DAG scheduler whose driver survives its own death.")
	fmt.Println("Building schedd, execd and batonctl, then starting 3 schedd and 2 execd on 127.0.0.1,")
	fmt.Println("secured as production should be: a CA and a certificate per process (mutual TLS everywhere), ACLs bootstrapped, executors joining with a token ...")
	rep, err := drill.Run(ctx, drill.Options{
		Rounds:  3,
		Kill:    "leader",
		Moments: []string{"map", "reduce", "collect"},
		Seed:    1,
		Secure:  true,
		Log:     os.Stdout,
		Verbose: true,
	})
	if rep != nil {
		fmt.Println()
		rep.Print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Println("\nEvery process is stopped and every file removed. More: batonctl drill -h, README.md.")
	if !rep.OK() {
		return 1
	}
	return 0
}
