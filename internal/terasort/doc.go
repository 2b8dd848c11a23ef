// Package terasort generates, sorts and validates TeraSort-style records
// for the sort example and benchmark: 100-byte lines, each a 10-byte key
// and an 89-byte value of printable ASCII and a newline. Keys are uniform
// random, so a range partitioner with sampled bounds gives reducers equal
// shares.
package terasort
