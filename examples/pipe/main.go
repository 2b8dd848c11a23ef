// Command pipe runs an external program over a Baton dataset: each
// partition's records go to the program's standard input, a line each,
// and its output lines are the new records (Spark's pipe). Here awk (or,
// with -program python3, a Python one-liner) squares the numbers 0..n-1,
// and a reduce adds the squares up; the answer is checked against the
// formula.
//
//	schedd -dev &
//	go run ./examples/pipe -n 100000 -program awk
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/baton-sched/baton/client"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pipe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr(), "API addresses of the quorum's members, comma-separated (default $BATON_ADDR)")
	n := fs.Int64("n", 100000, "numbers to square")
	program := fs.String("program", "awk", "awk or python3")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var command string
	var cmdArgs []string
	switch *program {
	case "awk":
		command, cmdArgs = "awk", []string{`{ printf "%d\n", $1 * $1 }`}
	case "python3":
		command, cmdArgs = "python3", []string{"-c", "import sys\nfor line in sys.stdin: print(int(line) ** 2)"}
	default:
		fmt.Fprintln(stderr, "pipe: -program must be awk or python3")
		return 2
	}
	opts, err := client.FromEnv(client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := client.Dial(strings.Split(*addr, ","), opts)
	if err != nil {
		fmt.Fprintln(stderr, "pipe:", err)
		return 1
	}
	defer c.Close()
	sum, _, err := c.Range(*n, 8).
		Pipe(command, cmdArgs, nil).
		Named("sum of squares through "+*program).
		Reduce(context.Background(), "sum")
	if err != nil {
		fmt.Fprintln(stderr, "pipe:", err)
		return 1
	}
	// The sum of k² for k < n is (n-1)n(2n-1)/6.
	m := big.NewInt(*n)
	want := new(big.Int).Mul(new(big.Int).Sub(m, big.NewInt(1)), m)
	want.Mul(want, new(big.Int).Sub(new(big.Int).Mul(m, big.NewInt(2)), big.NewInt(1)))
	want.Div(want, big.NewInt(6))
	fmt.Fprintf(stdout, "sum of the squares of 0..%d through %s: %s\n", *n-1, *program, sum)
	if sum != want.String() {
		fmt.Fprintln(stderr, "pipe: want", want)
		return 1
	}
	return 0
}

func defaultAddr() string {
	if a := os.Getenv("BATON_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:7101"
}
