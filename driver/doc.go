// Package driver is the leader's scheduling loop: Spark's
// TaskSchedulerImpl and the volatile half of TaskSetManager, on top of the
// replicated dag state.
//
// Only the leader drives. On winning leadership it barriers, restarts
// every executor's heartbeat deadline from now, waits a short grace period
// for executors to reconnect and report the attempts they run (which it
// adopts), then offers free slots to the tasks dag.State.Runnable lists,
// preferring executors that hold most of a task's input. Executors'
// status updates become TaskEnded commands, committed in as few log
// entries as possible through the group-commit proposer, and are
// acknowledged once committed. Silent executors are declared lost; stages
// hit by fetch failures are resubmitted after a short delay; attempts
// nobody needs are killed. On losing leadership it stops at once.
package driver
