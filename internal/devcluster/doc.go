// Package devcluster runs Baton in one process: a single-node quorum and
// an executor on loopback, in a directory of its own. schedd -dev runs
// one; tests and runnable examples use it as a real scheduler without
// processes to manage.
package devcluster
