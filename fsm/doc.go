// Package fsm replicates Baton's scheduler state through Raft: it adapts a
// dag.State to raft.FSM.
//
// A log entry is one protobuf fsmpb.Entry: a batch of typed commands
// stamped with the leader's clock (Encode, Decode). The command type enum
// is append-only; a command whose type this build does not know stops the
// node (a panic: a replica that skipped it would diverge) unless it was
// written with skip_if_unknown. A command that decodes but fails its
// business rules is not an error here: dag returns it as a Result, and
// Apply hands every command's Result back to the proposer in a Response.
// Every command type is one registration in commands.go (its type number,
// name, encoder and decoder), and enum values such as a task's end reason
// are mapped to their log numbers explicitly there, never cast.
//
// Snapshot encodes the whole state under the read lock (a versioned
// header, the dag state, a CRC32C) so Persist can stream it while Apply
// continues; Restore decodes and checks a snapshot in full before it
// replaces the state. Changed lets local watchers (the driver, API
// watches) wait for the next change.
package fsm
