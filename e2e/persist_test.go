package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
)

// persistPlan is a word count whose counts are persisted ("kept"), and an
// action over them: collect the counts, or count the words seen more
// than once.
func persistPlan(glob, action string) *plan.Plan {
	extra, out := "", "kept"
	if action == "count" {
		extra, out = `,
		"often": {"op": "filter", "input": "kept", "fn": {"name": "acc.count", "args": {"acc": "seen"}}}`, "often"
	}
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": "persist", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 8},
		"words":  {"op": "flatMap", "input": "lines", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 4},
		"kept":   {"op": "mapValues", "input": "counts", "fn": "toInt", "persist": true}%s},
		"action": {"op": %q, "input": %q}}`, glob, extra, action, out)))
	if err != nil {
		panic(err)
	}
	return p
}

// mapStageOf returns a job's map stage (the one below its result stage).
func mapStageOf(j *api.Job) *api.Stage {
	for _, s := range j.Stages {
		if s.Map {
			return s
		}
	}
	return nil
}

// TestPersistedCountsAreReadNotRecomputed: a word count whose counts are
// persisted keeps its 4 partitions on the executors; after the job is
// released (its shuffle dropped) and the leader is SIGKILLed, a second job
// over the same lineage reads them where they are kept — its map stage
// never runs — with the exact answer; an executor SIGKILLed takes its
// partitions with it, and the next job computes them again from lineage
// (the map stage runs) and keeps them again; cache unpersist frees them,
// and the next job computes everything.
func TestPersistedCountsAreReadNotRecomputed(t *testing.T) {
	c, cl := slowCluster(t, "-executor-reconnect-grace", "1s")
	addr := strings.Join(c.APIAddrs(), ",")
	dir := t.TempDir()
	want := genText(t, dir, 4, 500, 37)
	glob := filepath.Join(dir, "*.txt")
	often := len(want) // the count action counts the distinct words
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	batonctl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "batonctl"), append([]string{"-addr", addr}, args...)...)
		cmd.Env = append(os.Environ(), secureEnv(t)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("batonctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cachedParts := func() (int, map[string]int32) {
		ds, err := cl.Cached(ctx)
		if err != nil || len(ds) != 1 {
			t.Fatalf("persisted datasets: %v %v", ds, err)
		}
		return int(ds[0].Cached), ds[0].Executors
	}
	// run submits the counting job, checks its answer and returns it.
	run := func(what string) *api.Job {
		t.Helper()
		id, err := cl.Submit(ctx, persistPlan(glob, "count"), client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		j, err := cl.Wait(ctx, id, nil)
		if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
			t.Fatalf("%s: %v %v", what, err, j)
		}
		recs, err := cl.Answer(ctx, id)
		if err != nil || len(recs) != 1 || string(recs[0].Value) != fmt.Sprint(often) {
			t.Fatalf("%s: answer %v (%v), want %d", what, recs, err, often)
		}
		if err := cl.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
		return j
	}

	// The first job computes and keeps the counts.
	recs, err := cl.Run(ctx, persistPlan(glob, "collect"), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	if n, _ := cachedParts(); n != 4 {
		t.Fatalf("%d of 4 partitions kept after the first job", n)
	}
	if out := batonctl("cache"); !strings.Contains(out, "kept") || !strings.Contains(out, "4/4") {
		t.Errorf("batonctl cache:\n%s", out)
	}

	// A leader change: where the partitions are is replicated state.
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
	c.Restart(leader)

	j := run("the job over the kept counts")
	if ms := mapStageOf(j); ms == nil || ms.Attempt != -1 {
		t.Fatalf("the map stage below the kept counts ran (%v): the cached partitions were not read", ms)
	}
	t.Logf("over the kept counts: %d task successes for %d result tasks", j.TaskSuccesses, j.Tasks)

	// An executor's loss takes its partitions.
	_, where := cachedParts()
	var victim *string
	for name := range where {
		victim = &name
		break
	}
	var proc = c.Execs[0]
	for _, p := range c.Execs {
		if p.Name == *victim {
			proc = p
		}
	}
	if proc.Name != *victim {
		t.Fatalf("no executor process named %s among %v", *victim, where)
	}
	if err := c.Kill(proc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the killed executor's partitions to be forgotten", func() bool {
		n, _ := cachedParts()
		return n < 4
	})
	c.Restart(proc)
	j = run("the job after an executor loss")
	if ms := mapStageOf(j); ms == nil || ms.Attempt < 0 {
		t.Fatalf("the lost partitions were not computed again from their lineage: map stage %v", ms)
	}
	waitFor(t, "the recomputed partitions to be kept again", func() bool {
		n, _ := cachedParts()
		return n == 4
	})

	// Unpersist frees them: the next job computes everything.
	if out := batonctl("cache", "unpersist", "kept"); !strings.Contains(out, "unpersisted 1") {
		t.Fatalf("cache unpersist: %s", out)
	}
	if ds, err := cl.Cached(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("after unpersist: %v %v", ds, err)
	}
	if _, err := cl.Unpersist(ctx, "kept"); err == nil || !strings.Contains(err.Error(), "no persisted dataset") {
		t.Errorf("unpersisting twice: %v", err)
	}
	j = run("the job after unpersist")
	if ms := mapStageOf(j); ms == nil || ms.Attempt < 0 {
		t.Fatalf("after unpersist the map stage did not run: %v", ms)
	}
}

// TestTheDatasetAPIPersistsAndUnpersists: Dataset.Persist in the Go API
// keeps a dataset for the client's later actions (the second action runs
// only its result tasks), and Dataset.Unpersist frees it by the key the
// scheduler gave it.
func TestTheDatasetAPIPersistsAndUnpersists(t *testing.T) {
	_, cl := slowCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 4, 300, 41)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	counts := cl.TextFile(filepath.Join(dir, "*.txt"), 8).FlatMap("words").Map("lower").Map("pairWithOne").ReduceByKey("sum", 4).Persist()
	if err := counts.Unpersist(ctx); err == nil || !strings.Contains(err.Error(), "was not persisted") {
		t.Fatalf("unpersisting a dataset no job persisted: %v", err)
	}
	m, err := counts.CollectMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for k, v := range m {
		var n int
		fmt.Sscan(v, &n)
		got[k] = n
	}
	sameCounts(t, got, want)
	n, err := counts.Count(ctx)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("count over the kept dataset: %d %v, want %d", n, err, len(want))
	}
	jobs, err := cl.Jobs(ctx, true)
	if err != nil || len(jobs) == 0 {
		t.Fatal(err)
	}
	last := jobs[len(jobs)-1]
	if last.TaskSuccesses != int64(last.Tasks) {
		t.Errorf("the count over the kept dataset ran %d tasks for %d results: its map stage ran", last.TaskSuccesses, last.Tasks)
	}
	if err := counts.Unpersist(ctx); err != nil {
		t.Fatal(err)
	}
	if ds, err := cl.Cached(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("after Unpersist: %v %v", ds, err)
	}
}
