package e2e

import (
	"fmt"
	"strings"
	"testing"

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
