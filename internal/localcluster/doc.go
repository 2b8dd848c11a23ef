// Package localcluster runs a Baton cluster as real processes on loopback:
// schedd quorum members and execd executors in a temporary directory, with
// helpers to find the leader, kill and restart processes, and clean up.
// The drill, the demo and the benchmarks use it.
package localcluster
