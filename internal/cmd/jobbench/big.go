package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
)

// bigJobs runs a job of n empty tasks beside one of 50,000 (each on a
// fresh cluster) and reports tasks/s, the leader's peak RSS, and how long
// `job status` took while the job ran (polled every 500 ms through a
// follower, as an operator's CLI would).
func bigJobs(ctx context.Context, start func(...string) (*localcluster.Cluster, *client.Client, error), n int) error {
	fmt.Printf("== big jobs: one job of empty tasks, 3 schedd, 2 execd x 4 slots; job status polled every 500ms while it runs\n")
	for _, tasks := range []int{50_000, n} {
		c, cl, err := start("-max-job-tasks", strconv.Itoa(max(tasks, 1_000_000)))
		if err != nil {
			return err
		}
		leader, _, err := c.Leader(ctx)
		if err != nil {
			c.Close()
			return err
		}
		var follower *localcluster.Proc
		for _, p := range c.Scheds {
			if p != leader {
				follower = p
				break
			}
		}
		status, err := client.Dial([]string{follower.APIAddr}, client.Options{})
		if err != nil {
			c.Close()
			return err
		}
		var mu sync.Mutex
		var worst, total time.Duration
		polls, failed := 0, 0
		var lastErr error
		stop := make(chan struct{})
		done := make(chan struct{})
		id := make(chan uint64, 1)
		go func() {
			defer close(done)
			j := <-id
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				t0 := time.Now()
				_, err := status.Job(ctx, j, false)
				d := time.Since(t0)
				mu.Lock()
				polls++
				total += d
				worst = max(worst, d)
				if err != nil {
					failed++
					lastErr = err
				}
				mu.Unlock()
			}
		}()
		p := mustPlan(fmt.Sprintf(`{"name": "empty", "datasets": {"r": {"op": "range", "n": 0, "partitions": %d}}, "action": {"op": "count", "input": "r"}}`, tasks))
		t0 := time.Now()
		jid, err := cl.Submit(ctx, p, client.SubmitOptions{})
		if err != nil {
			close(id)
			close(stop)
			c.Close()
			return err
		}
		id <- jid
		j, err := cl.Wait(ctx, jid, nil)
		d := time.Since(t0)
		close(stop)
		<-done
		rss := peakRSS(leader.Pid())
		st, _ := c.NodeStatus(ctx, leader)
		status.Close()
		cl.Close()
		c.Close()
		if err != nil {
			return err
		}
		if j.State != api.JobState_JOB_STATE_SUCCEEDED {
			return fmt.Errorf("big job %s: %s", j.State, j.Message)
		}
		avg := time.Duration(0)
		if polls > 0 {
			avg = total / time.Duration(polls)
		}
		term := uint64(0)
		if st != nil {
			term = st.Term
		}
		fmt.Printf("  %9d tasks: %8.0f tasks/s (%s); leader peak RSS %s; job status %d polls, mean %s, worst %s, %d failed; raft term at the end %d\n",
			tasks, float64(tasks)/d.Seconds(), d.Round(time.Millisecond), rss, polls, avg.Round(time.Microsecond), worst.Round(time.Microsecond), failed, term)
		if lastErr != nil {
			fmt.Printf("    last status error: %v\n", lastErr)
		}
	}
	return nil
}

// peakRSS reads a process's peak resident set size (VmHWM).
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.Atoi(f[1])
				return fmt.Sprintf("%d MiB", kb/1024)
			}
		}
	}
	return "unknown"
}
