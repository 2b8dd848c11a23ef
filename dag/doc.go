// Package dag is Baton's scheduler as a pure, deterministic state machine:
// Spark's DAGScheduler together with the durable halves of TaskSetManager,
// MapOutputTracker and OutputCommitCoordinator, in one value.
//
// A State changes only through Apply(Command) Result. It does no I/O,
// reads no clock (time arrives inside commands, stamped by the leader),
// uses no randomness, starts no goroutines and never depends on map
// iteration order, so the same sequence of commands gives byte-identical
// snapshots on every replica. That is what lets fsm replicate it through
// Raft and a standby take over mid-job.
//
// What the state records is what must survive a failover: jobs, stages and
// their attempts, pending partitions, failure counts, epochs, map output
// locations, result references and commit decisions. Which task attempt
// runs where is not recorded: it is the leader's volatile knowledge,
// rebuilt from executor reports after a failover. The driver asks
// Runnable which tasks may run now and proposes commands for what happens
// to them.
//
// The Spark behaviour each part follows is named where it is implemented
// and pinned by the data-driven scenarios in testdata/.
//
// A State is not safe for concurrent use; fsm serialises access to it.
package dag
