// Command wordcount counts the words of text files on a Baton cluster and
// prints the most frequent ones:
//
//	schedd -dev &                       # or a quorum: -addr host:port,...
//	go run ./examples/wordcount -input '/path/to/*.txt' -top 10
//
// It is Spark's word count, written with the client's dataset API:
// textFile, flatMap(words), map(lower), map(pairWithOne),
// reduceByKey(sum), collect.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/baton-sched/baton/client"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wordcount", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr(), "API addresses of the quorum's members, comma-separated (default $BATON_ADDR)")
	input := fs.String("input", "", "a glob of text files (required; absolute, as the executors see it)")
	partitions := fs.Int("partitions", 8, "input partitions")
	reducers := fs.Int("reducers", 4, "reduce partitions")
	top := fs.Int("top", 10, "how many words to print")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *input == "" {
		fmt.Fprintln(stderr, "wordcount: -input is required")
		return 2
	}
	opts, err := client.FromEnv(client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := client.Dial(strings.Split(*addr, ","), opts)
	if err != nil {
		fmt.Fprintln(stderr, "wordcount:", err)
		return 1
	}
	defer c.Close()
	counts, err := c.TextFile(*input, *partitions).
		FlatMap("words").
		Map("lower").
		Map("pairWithOne").
		ReduceByKey("sum", *reducers).
		Named("wordcount").
		CollectMap(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, "wordcount:", err)
		return 1
	}
	type wc struct {
		word string
		n    int
	}
	var all []wc
	for w, s := range counts {
		n, _ := strconv.Atoi(s)
		all = append(all, wc{w, n})
	}
	sort.Slice(all, func(a, b int) bool {
		if all[a].n != all[b].n {
			return all[a].n > all[b].n
		}
		return all[a].word < all[b].word
	})
	fmt.Fprintf(stdout, "%d distinct words\n", len(all))
	for _, w := range all[:min(*top, len(all))] {
		fmt.Fprintf(stdout, "%8d %s\n", w.n, w.word)
	}
	return 0
}

func defaultAddr() string {
	if a := os.Getenv("BATON_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:7101"
}
