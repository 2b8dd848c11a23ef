// Package raftnet assembles a Raft node for Baton's scheduler quorum:
// hashicorp/raft over TCP, raft-boltdb (bbolt) log and stable stores behind
// a log cache, and file snapshots, all in the node's data directory, with
// timeouts tuned so a dead leader is replaced in well under a second on a
// LAN.
//
// A node bootstraps from a static peer list only when its data directory
// holds no Raft state, so restarting with the flags it first ran with is
// always safe; a data directory remembers its node id and refuses another.
// Members are added and removed at run time and leadership can be
// transferred. Group commit of the scheduler's commands is package
// propose's; raftnet knows nothing of what its entries hold.
package raftnet
