package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
)

// adaptiveWordCount is a word count over 8 splits into 64 reducers, far
// more than its few kilobytes need; sleepMS > 0 slows each result task.
func adaptiveWordCount(glob string, sleepMS int) *plan.Plan {
	out := "counts"
	extra := ""
	if sleepMS > 0 {
		out = "out"
		extra = fmt.Sprintf(`,
		"out": {"op": "mapPartitions", "input": "counts", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}}`, sleepMS)
	}
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": "adaptive", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 8},
		"words":  {"op": "flatMap", "input": "lines", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 64}%s},
		"action": {"op": "collect", "input": %q}}`, glob, extra, out)))
	if err != nil {
		panic(err)
	}
	return p
}

// resultStage returns a job's result stage (the one that is not a map
// stage), or nil.
func resultStage(j *api.Job) *api.Stage {
	for _, s := range j.Stages {
		if !s.Map {
			return s
		}
	}
	return nil
}

// TestAMapStageJobFeedsAnAdaptiveJob: batonctl submit -map-stage runs a
// word count's map stage alone and prints its statistics (Spark's
// submitMapStage and MapOutputStatistics); a later -adaptive job over the
// same lineage reuses those map outputs (no map task runs again) and runs
// its 64 small reducer partitions as a few coalesced tasks, with the
// exact answer; job status shows both.
func TestAMapStageJobFeedsAnAdaptiveJob(t *testing.T) {
	c, cl := slowCluster(t)
	addr := strings.Join(c.APIAddrs(), ",")
	dir := t.TempDir()
	want := genText(t, dir, 4, 400, 23)
	glob := filepath.Join(dir, "*.txt")
	planFile := filepath.Join(dir, "plan.json")
	b, err := json.Marshal(adaptiveWordCount(glob, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "batonctl"), append([]string{"-addr", addr}, args...)...)
		cmd.Env = append(os.Environ(), secureEnv(t)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("batonctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	out := run("-o", "json", "submit", "-f", planFile, "-map-stage", "-wait")
	var ms struct {
		Job   uint64 `json:"id"`
		State string `json:"state"`
		Stats struct {
			Maps           int      `json:"maps"`
			MapsRegistered int      `json:"maps_registered"`
			Reducers       int      `json:"reducers"`
			TotalBytes     uint64   `json:"total_bytes"`
			ReducerBytes   []uint64 `json:"reducer_bytes"`
		} `json:"map_statistics"`
	}
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("submit -map-stage -o json: %v\n%s", err, out)
	}
	var sum uint64
	for _, b := range ms.Stats.ReducerBytes {
		sum += b
	}
	if ms.State != "succeeded" || ms.Stats.Maps != 8 || ms.Stats.MapsRegistered != 8 || ms.Stats.Reducers != 64 ||
		len(ms.Stats.ReducerBytes) != 64 || ms.Stats.TotalBytes == 0 || sum != ms.Stats.TotalBytes {
		t.Fatalf("map-stage job: %s", out)
	}
	status := run("job", "status", fmt.Sprint(ms.Job))
	if !strings.Contains(status, "Map stage  shuffle") || !strings.Contains(status, "8/8 map outputs") {
		t.Errorf("job status of the map-stage job:\n%s", status)
	}

	id, err := cl.Submit(ctx, adaptiveWordCount(glob, 0), client.SubmitOptions{AdaptiveTarget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("adaptive job: %v %v", err, j)
	}
	rs := resultStage(j)
	if rs == nil || len(rs.Coalesced) == 0 || rs.Reducers != 64 || int(rs.Tasks) != len(rs.Coalesced) || j.Tasks != rs.Tasks {
		t.Fatalf("the adaptive job's result stage was not coalesced: %v", rs)
	}
	if len(j.Stages) != 2 || j.TaskSuccesses != int64(rs.Tasks) {
		t.Errorf("the adaptive job ran %d tasks for %d coalesced partitions: the map stage ran again?", j.TaskSuccesses, rs.Tasks)
	}
	recs, err := cl.Collect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	status = run("job", "status", fmt.Sprint(id))
	if !strings.Contains(status, "Adaptive   coalescing") || !strings.Contains(status, "64 partitions coalesced") {
		t.Errorf("job status of the adaptive job:\n%s", status)
	}
	t.Logf("64 reducer partitions (%d bytes) ran as %d tasks", ms.Stats.TotalBytes, rs.Tasks)
	run("job", "release", fmt.Sprint(ms.Job))
}

// TestCoalescingSurvivesALeaderKill: an adaptive saveAsTextFile job whose
// coalesced result stage is running when the leader is SIGKILLed finishes
// on the new leader with the same coalesced tasks (the decision is in the
// replicated state, not the old leader's memory): one part file a
// coalesced task, _SUCCESS, the exact counts.
func TestCoalescingSurvivesALeaderKill(t *testing.T) {
	c, cl := slowCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 4, 600, 29)
	p := adaptiveWordCount(filepath.Join(dir, "*.txt"), 1500)
	out := filepath.Join(t.TempDir(), "out")
	p.Action = plan.Action{Op: "saveAsTextFile", Input: "out", Path: out}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A target of about a quarter of the input: a handful of tasks, each
	// sleeping long enough for the kill to land while they run.
	id, err := cl.Submit(ctx, p, client.SubmitOptions{AdaptiveTarget: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var before []int32
	waitFor(t, "the coalesced result stage to run", func() bool {
		j, err := cl.Job(ctx, id, false)
		if err != nil {
			return false
		}
		if rs := resultStage(j); rs != nil && rs.State == "running" && len(rs.Coalesced) > 0 {
			before = rs.Coalesced
			return true
		}
		return false
	})
	leader, term, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitLeader(ctx, leader, term); err != nil {
		t.Fatal(err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job after the kill: %v %v", err, j)
	}
	rs := resultStage(j)
	if rs == nil || !slices.Equal(rs.Coalesced, before) {
		t.Fatalf("coalesced tasks before the kill %v, after %v", before, rs)
	}
	checkSaved(t, out, len(before), want)
	t.Logf("64 reducer partitions ran as %d tasks across the kill; %d task successes for %d tasks", len(before), j.TaskSuccesses, 8+len(before))
}
