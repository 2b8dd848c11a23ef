// Package cli is batonctl, the command line for Baton's users and
// operators.
//
// Addresses come from -addr a,b,c or $BATON_ADDR (any member will do; the
// CLI moves on to another member when one is down; it reports a quorum
// it cannot reach within a second, and one without a leader within a few).
// Output is a human table by default, JSON with -o json (explicit output
// types, see output.go) and ids with -o name. Exit codes: 0 ok,
// 1 failure, 2 usage, 130 interrupted.
package cli
