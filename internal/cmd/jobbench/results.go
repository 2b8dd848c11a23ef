package main

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
)

// resultsJob measures what direct results cost: a collect job of n tasks
// whose results are size bytes each, on a cluster whose largest direct
// result (-max-direct-result-size) is the default 64 KiB (every result
// rides the log to every replica) and on one where it is below size
// (every result stays on its executor and is fetched when collected).
func resultsJob(ctx context.Context, start func(...string) (*localcluster.Cluster, *client.Client, error), n, size int) error {
	fmt.Printf("== direct results: a collect job of %d tasks with a %d-byte result each, through the log (default -max-direct-result-size 64KiB) and kept on the executors (-max-direct-result-size %d)\n", n, size, size/2)
	p := mustPlan(fmt.Sprintf(`{"name": "results", "datasets": {"r": {"op": "range", "n": %d, "partitions": %d},
		"b": {"op": "mapPartitions", "input": "r", "fn": {"name": "chaos.blob", "args": {"bytes": %d}}}}, "action": {"op": "collect", "input": "b"}}`, n, n, size))
	for _, cfg := range []struct {
		name  string
		flags []string
	}{{"direct (64 KiB limit)", nil}, {"indirect", []string{"-max-direct-result-size", fmt.Sprint(size / 2)}}} {
		c, cl, err := start(cfg.flags...)
		if err != nil {
			return err
		}
		t0 := time.Now()
		id, err := cl.Submit(ctx, p, client.SubmitOptions{})
		if err != nil {
			cl.Close()
			c.Close()
			return err
		}
		if _, err := cl.Wait(ctx, id, nil); err != nil {
			cl.Close()
			c.Close()
			return err
		}
		ran := time.Since(t0)
		recs, err := cl.Collect(ctx, id)
		d := time.Since(t0)
		cl.Close()
		c.Close()
		if err != nil {
			return err
		}
		if len(recs) != n || len(recs[0].Value) != size {
			return fmt.Errorf("jobbench: results job gave %d records, want %d of %d bytes", len(recs), n, size)
		}
		fmt.Printf("  %-24s %8.0f tasks/s; submit to the job's end %s, to the last record collected %s (%.1f MB of results)\n", cfg.name, float64(n)/d.Seconds(), ran.Round(time.Millisecond), d.Round(time.Millisecond), float64(n*size)/1e6)
	}
	return nil
}
