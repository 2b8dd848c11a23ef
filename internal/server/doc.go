// Package server is a scheduler node (schedd): a Raft member (raftnet)
// replicating the scheduler state (fsm over dag), serving the gRPC API
// (api) and the JSON HTTP API, forwarding writes that reach a follower to
// the leader.
package server
