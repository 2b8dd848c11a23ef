// Package cli is batonctl, the command line for Baton's users and
// operators.
//
// Addresses come from -addr a,b,c or $BATON_ADDR (any member will do; the
// CLI moves on to another member when one is down). Output is a human
// table by default and JSON with -o json. Exit codes: 0 ok, 1 error,
// 2 usage.
package cli
