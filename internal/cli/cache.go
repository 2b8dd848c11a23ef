package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

func init() {
	register(&command{name: "cache", summary: "the persisted datasets (\"persist\": true) and where their partitions are kept", examples: "batonctl cache\nbatonctl cache -o json",
		run: runCache})
	register(&command{name: "cache unpersist", args: "NAME|KEY", summary: "free a persisted dataset's partitions on every executor (by its key, or every one of that name)", examples: "batonctl cache unpersist counts",
		run: runUnpersist})
}

func runCache(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("cache takes no arguments (cache unpersist NAME frees one)")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	ds, err := cl.Cached(ctx)
	if err != nil {
		return err
	}
	if c.json() || c.name() {
		out := []cachedOut{}
		names := []string{}
		for _, d := range ds {
			ex := d.Executors
			if ex == nil {
				ex = map[string]int32{}
			}
			out = append(out, cachedOut{Key: d.Key, Name: d.Name, Partitions: d.Partitions, Cached: d.Cached, Bytes: d.Bytes, Created: stamp(d.CreatedUnixNano), Executors: ex})
			names = append(names, d.Key)
		}
		return c.emit(map[string]any{"datasets": out}, names, nil)
	}
	if len(ds) == 0 {
		fmt.Fprintln(c.env.Stdout, "no persisted datasets")
		return nil
	}
	tw := table(c.env.Stdout)
	fmt.Fprintln(tw, "KEY\tNAME\tCACHED\tSIZE\tEXECUTORS\tSINCE")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", d.Key, dash(d.Name), d.Cached, d.Partitions, humanBytes(d.Bytes), executorCounts(d.Executors), when(d.CreatedUnixNano))
	}
	return tw.Flush()
}

// executorCounts renders how many partitions each executor keeps.
func executorCounts(m map[string]int32) string {
	if len(m) == 0 {
		return "-"
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s:%d", id, m[id])
	}
	return strings.Join(parts, " ")
}

func runUnpersist(ctx context.Context, c *common, args []string) error {
	if len(args) != 1 {
		return usagef("cache unpersist needs one dataset name or key (batonctl cache lists them)")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	n, err := cl.Unpersist(ctx, args[0])
	if err != nil {
		return err
	}
	if c.json() || c.name() {
		return c.emit(map[string]any{"unpersisted": n}, nil, nil)
	}
	fmt.Fprintf(c.env.Stdout, "unpersisted %d dataset(s) named %s\n", n, args[0])
	return nil
}
