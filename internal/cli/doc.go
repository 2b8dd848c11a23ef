// Package cli is batonctl, the command line for Baton's users and
// operators.
//
// The commands are a cobra tree (tree.go) built from the registered
// commands; help (help.go) goes to standard output when asked for and to
// standard error after a usage error, with examples for every command;
// 'batonctl completion bash|zsh|fish' prints a completion script. Flags
// are GNU style (--addr, -o json) and the Go style the CLI began with
// (-addr, -wait) still works: it is rewritten before cobra parses.
//
// Addresses come from --addr a,b,c or $BATON_ADDR (any member will do;
// the CLI moves on to another member when one is down; it reports a
// quorum it cannot reach within a second, and one without a leader within
// a few). Output is a human table by default, JSON with -o json (explicit
// output types, see output.go) and ids with -o name. Exit codes: 0 ok,
// 1 failure, 2 usage, 130 interrupted.
package cli
