// Package propose is group commit for the scheduler's log: a Proposer
// takes scheduler commands (dag.Command) from any number of goroutines and
// logs them in as few Raft entries as it can, encoded with fsm.Encode, and
// hands each caller its commands' results from the fsm.Response.
//
// One entry costs one round of replication and one fsync on every member
// whatever it holds, so the quorum's throughput comes from the batch. The
// log is anything with ApplyAsync (a *raftnet.Node); its errors reach the
// callers unchanged, so errors.Is(err, raftnet.ErrNotLeader) and the like
// hold for what Propose returns.
package propose
