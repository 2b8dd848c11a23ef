package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads a process's /metrics into name{labels} -> value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape %s: content type %q", addr, ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			key := name
			if len(m.Label) > 0 {
				var ls []string
				for _, l := range m.Label {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// TestMetricsMoveWithAJob scrapes the leader's, a follower's and the
// executors' /metrics before, during and after a two-stage job: the
// documented series exist and move as the job runs.
func TestMetricsMoveWithAJob(t *testing.T) {
	c, cl := slowCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var follower *localcluster.Proc
	for _, p := range c.Scheds {
		if p != leader {
			follower = p
		}
	}
	before := scrape(t, leader.HTTPAddr)
	for _, name := range []string{"baton_raft_term", "baton_raft_commit_index", "baton_raft_applied_index", "baton_fsm_apply_seconds_count",
		`baton_jobs{state="running"}`, `baton_stages{state="running"}`, `baton_executors{state="alive"}`, "baton_tasks_launched_total",
		`baton_tasks_finished_total{reason="success"}`, "baton_tasks_running", "baton_status_update_batch_size_count",
		"baton_leaderships_total", "baton_takeover_seconds_count", "baton_raft_leader_changes_total", `baton_executor_heartbeat_age_seconds{executor="e1"}`} {
		if _, ok := before[name]; !ok {
			t.Errorf("the leader's /metrics lacks %s", name)
		}
	}
	builds := func(m map[string]float64) int {
		n := 0
		for k, v := range m {
			if strings.HasPrefix(k, "baton_build_info{") && strings.Contains(k, "version=") && v == 1 {
				n++
			}
		}
		return n
	}
	if builds(before) != 1 || builds(scrape(t, c.Execs[0].HTTPAddr)) != 1 {
		t.Errorf("baton_build_info{version=...} is not 1 on the leader or an executor")
	}
	if before[`baton_raft_state{state="leader"}`] != 1 || before["baton_leaderships_total"] != 1 || before[`baton_executors{state="alive"}`] != 2 {
		t.Errorf("leader: raft state %v, leaderships %v, executors alive %v", before[`baton_raft_state{state="leader"}`], before["baton_leaderships_total"], before[`baton_executors{state="alive"}`])
	}
	if f := scrape(t, follower.HTTPAddr); f[`baton_raft_state{state="follower"}`] != 1 || f["baton_tasks_running"] != 0 {
		t.Errorf("follower: raft state %v, running %v", f[`baton_raft_state{state="follower"}`], f["baton_tasks_running"])
	}
	execBefore := map[string]map[string]float64{}
	for _, e := range c.Execs {
		execBefore[e.Name] = scrape(t, e.HTTPAddr)
	}

	dir := t.TempDir()
	want := genText(t, dir, 6, 1500, 51)
	id, err := cl.Submit(ctx, slowWordCount(filepath.Join(dir, "*.txt"), 200), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// While the reduce stage's slow tasks run.
	waitFor(t, "running tasks in the metrics", func() bool {
		m := scrape(t, leader.HTTPAddr)
		return m["baton_tasks_running"] > 0 && m[`baton_jobs{state="running"}`] == 1 && m[`baton_stages{state="running"}`] >= 1
	})
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v", j.GetState(), err)
	}
	recs, err := cl.Collect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	after := scrape(t, leader.HTTPAddr)
	grew := func(name string, by float64) {
		t.Helper()
		if after[name]-before[name] < by {
			t.Errorf("%s moved from %v to %v, want +%v at least", name, before[name], after[name], by)
		}
	}
	tasks := float64(countTasks(j))
	grew("baton_tasks_launched_total", tasks)
	grew(`baton_tasks_finished_total{reason="success"}`, tasks)
	grew(`baton_jobs{state="succeeded"}`, 1)
	grew("baton_raft_commit_index", 5)
	grew("baton_fsm_apply_seconds_count", 5)
	grew("baton_status_update_batch_size_count", 1)
	if after["baton_tasks_running"] != 0 {
		t.Errorf("baton_tasks_running %v after the job", after["baton_tasks_running"])
	}
	// An executor counts a task's end and its fetches as it reports them:
	// wait for the counters to settle rather than read them once.
	var written, fetched, ended float64
	settled := func() bool {
		written, fetched, ended = 0, 0, 0
		for _, e := range c.Execs {
			m := scrape(t, e.HTTPAddr)
			b := execBefore[e.Name]
			written += m["baton_shuffle_written_bytes_total"] - b["baton_shuffle_written_bytes_total"]
			fetched += m["baton_shuffle_fetched_bytes_total"] - b["baton_shuffle_fetched_bytes_total"]
			ended += m[`baton_executor_tasks_ended_total{state="finished"}`] - b[`baton_executor_tasks_ended_total{state="finished"}`]
			if m["baton_blockstore_bytes"] <= 0 || m["baton_executor_slots"] != 4 {
				t.Errorf("executor %s: block store %v bytes, %v slots", e.Name, m["baton_blockstore_bytes"], m["baton_executor_slots"])
			}
		}
		return written > 0 && fetched == written && ended == tasks
	}
	for deadline := time.Now().Add(20 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if written <= 0 || fetched != written || ended != tasks {
		t.Errorf("executors: shuffle written %v, fetched %v (want equal), tasks finished %v (want %v)", written, fetched, ended, tasks)
	}
}
