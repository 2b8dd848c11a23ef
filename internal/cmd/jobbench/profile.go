package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
)

// profileResults > 0 (-profile-results) profiles a collect job whose
// tasks return results of that many bytes instead.
var profileResults int

// profileJob runs one empty-task job of n tasks on a cluster started with
// -pprof on every process, takes a CPU profile of each process while the
// job runs (leader, followers, executors), writes them to dir and prints
// each one's top cumulative functions.
func profileJob(ctx context.Context, start func(...string) (*localcluster.Cluster, *client.Client, error), n int, dir string, seconds int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c, cl, err := start("-pprof")
	if err != nil {
		return err
	}
	defer c.Close()
	defer cl.Close()
	leader, err := c.WaitLeader(ctx, nil, 0)
	if err != nil {
		return err
	}
	type target struct{ name, url string }
	var targets []target
	for _, p := range c.Scheds {
		role := "follower"
		if p == leader {
			role = "leader"
		}
		targets = append(targets, target{role + "-" + p.Name, "http://" + p.HTTPAddr})
	}
	for _, p := range c.Execs {
		targets = append(targets, target{"executor-" + p.Name, "http://" + p.HTTPAddr})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fetchProfile(t.url+fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), filepath.Join(dir, t.name+".pprof"))
		}()
	}
	time.Sleep(200 * time.Millisecond) // the profiles start before the job
	var d time.Duration
	if profileResults > 0 {
		// A collect job with a result of profileResults bytes per task.
		p := mustPlan(fmt.Sprintf(`{"name": "results", "datasets": {"r": {"op": "range", "n": %d, "partitions": %d},
			"b": {"op": "mapPartitions", "input": "r", "fn": {"name": "chaos.blob", "args": {"bytes": %d}}}}, "action": {"op": "collect", "input": "b"}}`, n, n, profileResults))
		t0 := time.Now()
		if _, err := cl.Run(ctx, p, client.SubmitOptions{}); err != nil {
			return err
		}
		d = time.Since(t0)
	} else if d, _, err = emptyJob(ctx, cl, n); err != nil {
		return err
	}
	fmt.Printf("  profiled job: %d tasks in %s, %.0f tasks/s (profiles of %d s)\n", n, d.Round(time.Millisecond), float64(n)/d.Seconds(), seconds)
	wg.Wait()
	for i, t := range targets {
		if errs[i] != nil {
			return fmt.Errorf("jobbench: profile %s: %w", t.name, errs[i])
		}
		out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount", "35", filepath.Join(dir, t.name+".pprof")).CombinedOutput()
		if err != nil {
			return fmt.Errorf("jobbench: pprof %s: %w: %s", t.name, err, out)
		}
		fmt.Printf("---- %s\n%s\n", t.name, out)
	}
	return nil
}

func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
