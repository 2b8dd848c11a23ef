package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
)

// sleepJob is a one-stage job of n tasks that each sleep ms (chaos.sleep
// with args extra, e.g. `"attempts": 1`), counting their records.
func sleepJob(t *testing.T, name string, n, ms int, extra string) *plan.Plan {
	t.Helper()
	if extra != "" {
		extra = ", " + extra
	}
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": %q, "datasets": {
		"r": {"op": "range", "n": %d, "partitions": %d},
		"s": {"op": "mapPartitions", "input": "r", "fn": {"name": "chaos.sleep", "args": {"ms": %d%s}}}},
		"action": {"op": "count", "input": "s"}}`, name, n*10, n, ms, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// raceTwoJobs submits two jobs one after the other and returns how many
// of the second's tasks had finished when the first ended, as the log
// says (the second's task ends logged strictly before the first job's
// end; what a poll sees on a loaded machine would be later).
func raceTwoJobs(t *testing.T, cl *client.Client, a, b *plan.Plan, poolA, poolB string) (finishedB int32, tasksB int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ida, err := cl.Submit(ctx, a, client.SubmitOptions{Pool: poolA})
	if err != nil {
		t.Fatal(err)
	}
	idb, err := cl.Submit(ctx, b, client.SubmitOptions{Pool: poolB})
	if err != nil {
		t.Fatal(err)
	}
	ja, err := cl.Wait(ctx, ida, nil)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := cl.Wait(ctx, idb, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range jb.Stages {
		d, err := cl.Stage(ctx, st.Id)
		if err != nil {
			t.Fatal(err)
		}
		for _, ta := range d.Tasks {
			if ta.State == "success" && ta.EndedUnixNano < ja.EndedUnixNano {
				finishedB++
			}
		}
	}
	return finishedB, jb.Tasks
}

// TestFairPoolsBothProgress: two jobs of many slow tasks submitted one
// after the other. In FIFO mode the second waits for the first's tasks;
// in FAIR mode, in two pools, both progress: the second has done a good
// share of its tasks by the time the first ends.
func TestFairPoolsBothProgress(t *testing.T) {
	const tasks, ms = 48, 200
	t.Run("FIFO", func(t *testing.T) {
		c := jobCluster(t)
		done, n := raceTwoJobs(t, c.client(), sleepJob(t, "first", tasks, ms, ""), sleepJob(t, "second", tasks, ms, ""), "", "")
		t.Logf("FIFO: the second job had finished %d of %d tasks when the first ended", done, n)
		if done > n/4 {
			t.Errorf("FIFO: the second job finished %d of %d tasks before the first ended", done, n)
		}
	})
	t.Run("FAIR", func(t *testing.T) {
		c := jobCluster(t, "-scheduling-mode", "FAIR", "-pool", "etl:weight=1", "-pool", "adhoc:weight=1")
		done, n := raceTwoJobs(t, c.client(), sleepJob(t, "first", tasks, ms, ""), sleepJob(t, "second", tasks, ms, ""), "etl", "adhoc")
		t.Logf("FAIR: the second job had finished %d of %d tasks when the first ended", done, n)
		if done < n/2 {
			t.Errorf("FAIR: the second job finished only %d of %d tasks while the first ran: the pools did not share", done, n)
		}
	})
}

// TestCancelFreesSlots: cancelling a job whose tasks hold every slot kills
// them at once: the executors' slots are free again, and the next job
// runs.
func TestCancelFreesSlots(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, sleepJob(t, "hog", 8, 60_000, ""), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := func() int32 {
		var n int32
		for _, st := range execStatsOf(t, c, "e1", "e2") {
			n += st.Running
		}
		return n
	}
	waitFor(t, "the job to hold every slot", func() bool { return running() == 8 })
	start := time.Now()
	if err := cl.Cancel(ctx, id, "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slots to be free", func() bool { return running() == 0 })
	t.Logf("slots free %v after the cancel", time.Since(start).Round(time.Millisecond))
	j, err := cl.Job(ctx, id, false)
	if err != nil || j.State != api.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("cancelled job: %v %v", j.GetState(), err)
	}
	recs, err := cl.Run(ctx, sleepJob(t, "next", 8, 0, ""), client.SubmitOptions{})
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "80" {
		t.Fatalf("the next job: %v %v", recs, err)
	}
}

// TestSpeculation: with speculation on, a task stuck on its first attempt
// (a straggler) gets a copy once most of its stage has finished; the copy
// wins, the straggler is killed, and the job ends long before the
// straggler would have.
func TestSpeculation(t *testing.T) {
	c := jobCluster(t, "-speculation", "-speculation-min-runtime", "200ms")
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // the straggler sleeps 10 minutes
	defer cancel()
	p := sleepJob(t, "straggler", 16, 50, "")
	p.Datasets["slow"] = &plan.Dataset{Op: "mapPartitions", Input: "s", Fn: &plan.Func{Name: "chaos.sleep", Args: []byte(`{"ms": 600000, "partitions": [5], "attempts": 1}`)}}
	p.Action.Input = "slow"
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		t.Fatalf("the job did not end without its straggler: %v", err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", j.State, j.Message)
	}
	recs, err := cl.Answer(ctx, id)
	if err != nil || string(recs[0].Value) != "160" {
		t.Fatalf("answer %v %v", recs, err)
	}
	var launches int64
	for _, st := range execStatsOf(t, c, "e1", "e2") {
		launches += st.LaunchesByJob[id]
	}
	// At least the straggler's copy; on a loaded machine another slow
	// task may get one too.
	if launches < 17 {
		t.Errorf("%d launches for 16 tasks, want at least 17 (a speculative copy)", launches)
	}
	waitFor(t, "the straggler to be killed", func() bool {
		var n int32
		for _, st := range execStatsOf(t, c, "e1", "e2") {
			n += st.Running
		}
		return n == 0
	})
}

// TestExecutorExclusion: an executor on which every task fails is
// excluded: its failed tasks run elsewhere (never on it again), the job
// succeeds, and since those tasks succeeded elsewhere the executor gets
// no task of the next job either.
func TestExecutorExclusion(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := sleepJob(t, "bad-executor", 16, 20, "")
	p.Datasets["boom"] = &plan.Dataset{Op: "mapPartitions", Input: "s", Fn: &plan.Func{Name: "chaos.fail", Args: []byte(`{"executors": ["e1"]}`)}}
	p.Action.Input = "boom"
	j, _ := runJob(t, cl, p, client.SubmitOptions{MaxTaskFailures: 2})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", j.State, j.Message)
	}
	if recs, err := cl.Answer(ctx, j.Id); err != nil || string(recs[0].Value) != "160" {
		t.Fatalf("answer %v %v", recs, err)
	}
	st := execStatsOf(t, c, "e1")[0]
	t.Logf("e1 ran %d tasks of the job, all failed; %d failures in all", st.LaunchesByJob[j.Id], j.TaskFailures)
	// e1's first wave (its 4 slots), and at most one more task taken by
	// the slot the first failure freed before the second excluded e1.
	if j.TaskFailures != st.LaunchesByJob[j.Id] || j.TaskFailures > 5 {
		t.Errorf("%d failures, %d launches on e1: want e1's first wave and at most one more", j.TaskFailures, st.LaunchesByJob[j.Id])
	}
	recs, err := cl.Run(ctx, sleepJob(t, "after", 16, 0, ""), client.SubmitOptions{})
	if err != nil || string(recs[0].Value) != "160" {
		t.Fatalf("the next job: %v %v", recs, err)
	}
	jobs, err := cl.Jobs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	last := jobs[len(jobs)-1].Id
	if n := execStatsOf(t, c, "e1")[0].LaunchesByJob[last]; n != 0 {
		t.Errorf("the excluded executor ran %d tasks of the next job", n)
	}
}
