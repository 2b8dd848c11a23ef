// Package dagtest generates realistic, randomized command streams for the
// scheduler state machine: a simulated driver and cluster that submit jobs,
// launch and end tasks, and inject failures (task exceptions, fetch
// failures, lost executors and results, kills, cancels, stale and
// duplicate reports). The same seed gives the same stream.
//
// It is a test helper for dag, fsm and benchmarks; it is not used in
// production code.
package dagtest
