// Command join joins two generated tables on a Baton cluster: users
// (id,name,country) and orders (id,user,amount), as CSV files under -dir,
// and adds up the amounts per country — a join on the user id, then a
// reduceByKey — checking the answer against the same computation done
// locally.
//
//	schedd -dev &
//	go run ./examples/join -dir /tmp/join -users 10000 -orders 100000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/baton-sched/baton/client"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

var countries = []string{"BR", "CN", "DE", "FR", "IN", "JP", "NG", "US"}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr(), "API addresses of the quorum's members, comma-separated (default $BATON_ADDR)")
	dir := fs.String("dir", "", "directory for the tables (required; absolute, as the executors see it)")
	users := fs.Int("users", 10000, "users")
	orders := fs.Int("orders", 100000, "orders")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || !filepath.IsAbs(*dir) {
		fmt.Fprintln(stderr, "join: -dir must be an absolute path")
		return 2
	}
	want, err := generate(*dir, *users, *orders)
	if err != nil {
		fmt.Fprintln(stderr, "join:", err)
		return 1
	}
	opts, err := client.FromEnv(client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := client.Dial(strings.Split(*addr, ","), opts)
	if err != nil {
		fmt.Fprintln(stderr, "join:", err)
		return 1
	}
	defer c.Close()
	// (user id, country) and (user id, amount), joined on the user id:
	// (user id, ["country", "amount"]), then (country, amount), summed.
	byUser := c.TextFile(filepath.Join(*dir, "users.csv"), 4).
		Map("keyBy", client.Args{"i": 0, "sep": ","}).
		MapValues("field", client.Args{"i": 2, "sep": ","})
	amounts := c.TextFile(filepath.Join(*dir, "orders.csv"), 8).
		Map("keyBy", client.Args{"i": 1, "sep": ","}).
		MapValues("field", client.Args{"i": 2, "sep": ","})
	got, err := byUser.Join(amounts, 8).
		Map("unpair").
		ReduceByKey("sum", 4).
		Named("revenue by country").
		CollectMap(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, "join:", err)
		return 1
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ok := len(got) == len(want)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s %12s\n", k, got[k])
		ok = ok && got[k] == strconv.FormatInt(want[k], 10)
	}
	if !ok {
		fmt.Fprintln(stderr, "join: the answer differs from the local computation:", want)
		return 1
	}
	fmt.Fprintln(stdout, "matches the local computation")
	return 0
}

// generate writes the tables and returns the amounts per country.
func generate(dir string, users, orders int) (map[string]int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	country := make([]string, users)
	if err := writeLines(filepath.Join(dir, "users.csv"), users, func(i int) string {
		country[i] = countries[rng.IntN(len(countries))]
		return fmt.Sprintf("u%d,name%d,%s", i, i, country[i])
	}); err != nil {
		return nil, err
	}
	want := map[string]int64{}
	err := writeLines(filepath.Join(dir, "orders.csv"), orders, func(i int) string {
		u, amount := rng.IntN(users), 1+rng.IntN(500)
		want[country[u]] += int64(amount)
		return fmt.Sprintf("o%d,u%d,%d", i, u, amount)
	})
	return want, err
}

func writeLines(path string, n int, line func(i int) string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fmt.Fprintln(w, line(i))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func defaultAddr() string {
	if a := os.Getenv("BATON_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:7101"
}
