// Command execd is a Baton executor: it runs tasks for the quorum's leader
// in -cores slots and keeps shuffle blocks and large results in a Pebble
// block store in its data directory, served to reducers and the scheduler
// on -addr.
//
//	execd -data-dir /var/lib/baton/exec1 -schedulers 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 -addr 127.0.0.1:7301 -cores 4
//
// The executor's id is kept in its data directory (or set with -id).
// SIGTERM or SIGINT stops it; its blocks stay on disk.
package main

import (
	"os"

	"github.com/baton-sched/baton/executor"
)

func main() { os.Exit(executor.Main(os.Args[1:], nil)) }
