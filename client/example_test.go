package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/devcluster"
)

// batonAddr is the API address of the scheduler the examples run on: a
// single-node quorum and an executor in this test process (as
// `schedd -dev` runs them). Against a real quorum, pass its members'
// addresses to client.Dial.
var batonAddr string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	dc, err := devcluster.Start(ctx, devcluster.Options{Cores: 4})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	batonAddr = dc.Addr()
	code := m.Run()
	dc.Close()
	os.Exit(code)
}

func dial() *client.Client {
	c, err := client.Dial([]string{batonAddr}, client.Options{})
	if err != nil {
		panic(err)
	}
	return c
}

// A word count over text files: read, split into words, pair each with
// 1, add up per word.
func Example() {
	dir, _ := os.MkdirTemp("", "wordcount")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("to be or not to be\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("that is the question\nto be\n"), 0o644)

	c, err := client.Dial([]string{batonAddr}, client.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	counts, err := c.TextFile(filepath.Join(dir, "*.txt"), 2).
		FlatMap("words").Map("pairWithOne").ReduceByKey("sum", 2).
		CollectMap(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(counts["to"], counts["be"], counts["question"])
	// Output: 3 3 1
}

func ExampleDataset_Join() {
	c := dial()
	defer c.Close()
	users := c.ParallelizePairs([][2]string{{"u1", "ada"}, {"u2", "grace"}, {"u3", "alan"}}, 2)
	orders := c.ParallelizePairs([][2]string{{"u1", "book"}, {"u1", "lamp"}, {"u3", "tea"}, {"u9", "???"}}, 2)
	// A joined value is a JSON array: the left value, then the right.
	recs, err := users.Join(orders, 2).Collect(context.Background())
	if err != nil {
		panic(err)
	}
	var lines []string
	for _, r := range recs {
		lines = append(lines, string(r.Key)+" "+string(r.Value))
	}
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// u1 ["ada","book"]
	// u1 ["ada","lamp"]
	// u3 ["alan","tea"]
}

func ExampleDataset_SortByKey() {
	c := dial()
	defer c.Close()
	// keyBy keys each value by its first comma-separated field.
	sorted, err := c.Parallelize([]string{"pear,3", "apple,7", "fig,1", "kiwi,5", "banana,2"}, 3).
		Map("keyBy", client.Args{"i": 0, "sep": ","}).
		SortByKey(true, 2).
		Collect(context.Background())
	if err != nil {
		panic(err)
	}
	for _, r := range sorted {
		fmt.Print(string(r.Key), " ")
	}
	fmt.Println()
	// Output: apple banana fig kiwi pear
}

func ExampleDataset_Take() {
	c := dial()
	defer c.Close()
	// Take reads one partition first and more only if it must.
	first, err := c.Range(1_000_000, 100).Filter("even").Take(context.Background(), 3)
	if err != nil {
		panic(err)
	}
	fmt.Println(client.Values(first))
	// Output: [0 2 4]
}

func ExampleDataset_Reduce() {
	c := dial()
	defer c.Close()
	total, _, err := c.Range(101, 4).Reduce(context.Background(), "sum")
	if err != nil {
		panic(err)
	}
	fmt.Println(total)
	// Output: 5050
}

func ExampleDataset_CountByKey() {
	c := dial()
	defer c.Close()
	counts, err := c.Range(10, 3).Map("mod", client.Args{"n": 3}).CountByKey(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(counts["0"], counts["1"], counts["2"])
	// Output: 4 3 3
}

func ExampleDataset_Pipe() {
	c := dial()
	defer c.Close()
	// Each partition's records go through awk, a line each.
	out, err := c.Parallelize([]string{"3 4", "10 20"}, 1).
		Pipe("awk", []string{"{ print $1 * $2 }"}, nil).
		CollectStrings(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(out)
	// Output: [12 200]
}

func ExampleDataset_SaveAsTextFile() {
	c := dial()
	defer c.Close()
	dir, _ := os.MkdirTemp("", "save")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out")
	n, err := c.Range(6, 2).SaveAsTextFile(context.Background(), out)
	if err != nil {
		panic(err)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	part, _ := os.ReadFile(filepath.Join(out, "part-00001"))
	fmt.Println(strings.Join(names, " "))
	fmt.Printf("%d records; part-00001: %q\n", n, part)
	// Output:
	// _SUCCESS part-00000 part-00001
	// 6 records; part-00001: "3\n4\n5\n"
}

func ExampleDataset_Plan() {
	c := dial()
	defer c.Close()
	// A lineage is data: its plan can be printed, stored, or submitted
	// with batonctl.
	p, err := c.Range(10, 2).Map("add", client.Args{"n": 1}).Named("plus-one").Plan()
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Name, len(p.Datasets), p.Action.Op)
	// Output: plus-one 2 collect
}
