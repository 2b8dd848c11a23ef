package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// blobPlan is one partition whose result is one record of size bytes.
func blobPlan(t *testing.T, size int) *plan.Plan {
	t.Helper()
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": "blob", "datasets": {
		"r": {"op": "range", "n": 1, "partitions": 1},
		"b": {"op": "mapPartitions", "input": "r", "fn": {"name": "chaos.blob", "args": {"bytes": %d}}}},
		"action": {"op": "collect", "input": "b"}}`, size)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAResultOverMaxResultSizeIsReportedBySizeAlone: a task whose own
// result is bigger than its job's maxResultSize is reported by its size
// alone (the executor's "over maxResultSize" branch: neither sent nor
// stored, as the executors' baton_executor_results_total says), and the
// job fails with Spark's message, which names that exact size: for a
// result the executor would otherwise have kept (indirect) and one it
// would have sent through the log (direct). The task is not retried, and
// a job at the limit then succeeds. (Plain, for the executors' /metrics
// over HTTP.)
func TestAResultOverMaxResultSizeIsReportedBySizeAlone(t *testing.T) {
	c := newClusterWith(t, 3, plainCluster, "-executor-timeout", "2s", "-heartbeat-interval", "200ms")
	c.waitLeader("")
	web := map[string]string{"e1": freePort(t), "e2": freePort(t)}
	for name, addr := range web {
		c.startExec(name, "-http-addr", addr)
	}
	cl := c.client()
	waitFor(t, "two executors", func() bool { return liveExecutors(cl) == 2 })
	results := func() map[string]float64 {
		out := map[string]float64{}
		for _, addr := range web {
			m := scrape(t, addr)
			for _, k := range []string{"direct", "indirect", "too_large"} {
				out[k] += m[`baton_executor_results_total{kind="`+k+`"}`]
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		bytes int
	}{
		{"indirect-sized", 200_000}, // above -max-direct-result-size (64 KiB)
		{"direct-sized", 10_000},
	} {
		before := results()
		size := int64(len(ops.AppendRecord(nil, ops.Record{Value: make([]byte, tc.bytes)})))
		j, _ := runJob(t, cl, blobPlan(t, tc.bytes), client.SubmitOptions{MaxResultSize: size - 1})
		want := fmt.Sprintf("Total size of serialized results of 1 tasks (%d bytes) is bigger than maxResultSize (%d bytes)", size, size-1)
		if j.State != api.JobState_JOB_STATE_FAILED || !strings.Contains(j.Message, want) {
			t.Fatalf("%s: %s %q; want failed with %q", tc.name, j.State, j.Message, want)
		}
		if j.TaskSuccesses != 1 || j.TaskFailures != 0 {
			t.Errorf("%s: %d task successes and %d failures logged, want the one report of the size", tc.name, j.TaskSuccesses, j.TaskFailures)
		}
		after := results()
		for k, d := range map[string]float64{"direct": 0, "indirect": 0, "too_large": 1} {
			if after[k]-before[k] != d {
				t.Errorf("%s: baton_executor_results_total{kind=%q} moved by %v, want %v", tc.name, k, after[k]-before[k], d)
			}
		}
	}
	size := int64(len(ops.AppendRecord(nil, ops.Record{Value: make([]byte, 200_000)})))
	before := results()
	j, recs := runJob(t, cl, blobPlan(t, 200_000), client.SubmitOptions{MaxResultSize: size})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED || len(recs) != 1 || len(recs[0].Value) != 200_000 {
		t.Fatalf("at the limit: %s %q, %d records", j.State, j.Message, len(recs))
	}
	if d := results()["indirect"] - before["indirect"]; d != 1 {
		t.Errorf("at the limit: baton_executor_results_total{kind=\"indirect\"} moved by %v, want 1", d)
	}
}

// TestAResultLostAtCollectRunsAgain: an indirect result whose executor
// is SIGKILLed after its job succeeded, before the client collects, is
// found unreadable by the collect (CollectResults), reported lost
// (ReportResultLost), its partition runs again on the other executor, and
// the same collect returns the exact answer. The killed executor's loss
// is held off (-executor-timeout, -executor-reconnect-grace) so that it
// is the collect, not the executor's loss, that finds the result gone.
func TestAResultLostAtCollectRunsAgain(t *testing.T) {
	c := jobCluster(t, "-max-direct-result-size", "1024", "-executor-timeout", "60s", "-executor-reconnect-grace", "60s")
	cl := c.client()
	const n, parts = 40_000, 4
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": "numbers", "datasets": {"r": {"op": "range", "n": %d, "partitions": %d}},
		"action": {"op": "collect", "input": "r"}}`, n, parts)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j, err := cl.Wait(ctx, id, nil); err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("the job: %v %s %q", err, j.GetState(), j.GetMessage())
	}
	before, err := cl.JobResults(ctx, id, 0, parts)
	if err != nil || len(before) != parts {
		t.Fatalf("results: %d, %v", len(before), err)
	}
	victim := before[parts-1].Executor
	survivor := map[string]string{"e1": "e2", "e2": "e1"}[victim]
	lost := map[int32]uint64{} // partition → the task whose result is lost
	for _, r := range before {
		if !r.Indirect {
			t.Fatalf("partition %d's %d-byte result is direct, want indirect (-max-direct-result-size 1024)", r.Partition, r.Size)
		}
		if r.Executor == victim {
			lost[r.Partition] = r.Task
		}
	}
	c.signalExec(victim, syscall.SIGKILL)

	recs, err := cl.Collect(ctx, id)
	if err != nil {
		t.Fatalf("collect after %s's kill: %v", victim, err)
	}
	if len(recs) != n {
		t.Fatalf("collect: %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d is %q, want %d: not the exact answer", i, r.Value, i)
		}
	}

	// The collect found the results lost: they ran again on the
	// survivor, each loss counted as a failure, while the killed
	// executor is still registered (not yet declared lost).
	after, err := cl.JobResults(ctx, id, 0, parts)
	if err != nil || len(after) != parts {
		t.Fatalf("results after the collect: %d, %v", len(after), err)
	}
	for _, r := range after {
		task, wasLost := lost[r.Partition]
		switch {
		case wasLost && (r.Executor != survivor || r.Task == task):
			t.Errorf("partition %d's lost result is task %d on %s, want a new task on %s", r.Partition, r.Task, r.Executor, survivor)
		case !wasLost && r.Executor != survivor:
			t.Errorf("partition %d's result moved to %s", r.Partition, r.Executor)
		}
	}
	j, err := cl.Job(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED || j.TaskFailures < int64(len(lost)) || j.TaskSuccesses < int64(parts+len(lost)) {
		t.Errorf("job after the collect: %s, %d successes and %d failures; want succeeded, %d lost results run again and counted",
			j.State, j.TaskSuccesses, j.TaskFailures, len(lost))
	}
	execs, err := cl.Executors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range execs {
		if e.Id == victim && !e.Alive {
			t.Errorf("%s was declared lost: the results ran again for its loss, not for the collect's report", victim)
		}
	}
	reported := false
	for _, nd := range c.order {
		b, _ := os.ReadFile(filepath.Join(c.root, nd+".log"))
		reported = reported || strings.Contains(string(b), "indirect result lost; the partition runs again")
	}
	if !reported {
		t.Error("no member logged a lost result")
	}
}
