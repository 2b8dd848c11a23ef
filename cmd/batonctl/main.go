// Command batonctl is the command line for Baton's users and operators:
// cluster status, Raft peer management, jobs. Run 'batonctl help';
// 'batonctl completion bash' prints a shell completion script.
package main

import (
	"os"

	"github.com/baton-sched/baton/internal/cli"
)

func main() { os.Exit(cli.Main()) }
