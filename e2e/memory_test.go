package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
)

// TestJobsFinishWithinATinyMemoryBudget: with execd -memory 1MiB (each of
// 4 slots keeps about 128 KiB of records), a sort, a group and a word
// count over 2 MB give the exact answers; the tasks spill (the stage
// history says how much) and leave nothing in their spill directories.
func TestJobsFinishWithinATinyMemoryBudget(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB") // the budget, not the Go runtime's limit, is under test
	c := newClusterWith(t, 3, nil, "-executor-timeout", "5s", "-heartbeat-interval", "200ms")
	c.waitLeader("")
	c.startExec("e1", "-memory", "1MiB")
	c.startExec("e2", "-memory", "1MiB")
	cl := c.client()
	waitExecutors(t, cl, 2)
	dir := t.TempDir()
	tera := opTeraFiles(t, dir, 4, 5000, 31)
	lines := &plan.Dataset{Op: "textFile", Path: filepath.Join(dir, "tera-*.txt"), Partitions: 8}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sortPlan := opPlan(t, "sort", opCollect("sorted"), map[string]*plan.Dataset{
		"lines":  lines,
		"kv":     {Op: "map", Input: "lines", Fn: opFn("keyPrefix", `{"n":10}`)},
		"sorted": {Op: "sortByKey", Input: "kv", Partitions: 2},
	})
	id, err := cl.Submit(ctx, sortPlan, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("sort: %v %v", j, err)
	}
	var spilled int64
	for _, sid := range j.Stages {
		st, err := cl.Stage(ctx, sid.Id)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.Tasks {
			spilled += a.SpilledBytes
		}
	}
	cl.Release(ctx, id)
	if spilled == 0 {
		t.Errorf("the sort spilled nothing with a 1 MiB budget")
	}
	_, parts := opRunParts(t, cl, sortPlan, client.SubmitOptions{})
	opCheckSorted(t, "sort", parts, 2, tera, false, false)
	t.Logf("the sort's tasks spilled %d bytes", spilled)

	// A group by a 1-byte key prefix (95 keys, skewed by the alphabet).
	want := map[string][]string{}
	for _, r := range tera {
		k := string(r.Key[:1])
		want[k] = append(want[k], string(r.Key[1:])+string(r.Value))
	}
	_, gparts := opRunParts(t, cl, opPlan(t, "group", opCollect("g"), map[string]*plan.Dataset{
		"lines": lines,
		"kv":    {Op: "map", Input: "lines", Fn: opFn("keyPrefix", `{"n":1}`)},
		"g":     {Op: "groupByKey", Input: "kv", Partitions: 3},
	}), client.SubmitOptions{})
	got := map[string][]string{}
	for _, part := range gparts {
		for _, r := range part {
			var vs []string
			if err := json.Unmarshal(r.Value, &vs); err != nil {
				t.Fatalf("group of %q: %v", r.Key, err)
			}
			got[string(r.Key)] = vs
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d", len(got), len(want))
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Fatalf("group %q: %d values, want %d (or another order)", k, len(got[k]), len(w))
		}
	}

	for _, e := range []string{"e1", "e2"} {
		left, err := os.ReadDir(filepath.Join(c.execs[e].dir, "spill"))
		if err != nil || len(left) != 0 {
			t.Errorf("executor %s's spill directory: %v %v", e, left, err)
		}
	}
}
