package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
)

// Spark's semantics across a leader SIGKILL (issue 14): a failover must
// not change what happens.

// failoverRounds is how many rounds the failover scenarios run
// (BATON_E2E_ROUNDS; default 3, the check is 10).
func failoverRounds() int {
	if n, err := strconv.Atoi(os.Getenv("BATON_E2E_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestExclusionSurvivesALeaderKill: with -max-task-failures 2 and every
// task failing on e1, the job succeeds because each failed task retries
// elsewhere, also after the leader that saw the failures is SIGKILLed:
// the new leader knows the exclusions from the log. (Before, it retried on
// e1 and the job failed "Task 0 in stage 0.0 failed 2 times … (executor
// e1)".)
func TestExclusionSurvivesALeaderKill(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	for round := range failoverRounds() {
		p := sleepJob(t, "excluded-"+strconv.Itoa(round), 8, 300, "")
		p.Datasets["boom"] = &plan.Dataset{Op: "mapPartitions", Input: "s", Fn: &plan.Func{Name: "chaos.fail", Args: []byte(`{"executors": ["e1"]}`)}}
		p.Action.Input = "boom"
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		id, err := cl.Submit(ctx, p, client.SubmitOptions{MaxTaskFailures: 2})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		waitFor(t, "a failure on e1", func() bool {
			j, err := cl.Job(ctx, id, false)
			return err == nil && (j.TaskFailures >= 1 || j.State != api.JobState_JOB_STATE_RUNNING)
		})
		leader, _ := c.waitLeader("")
		c.kill(leader)
		c.waitLeader(leader)
		j, err := cl.Wait(ctx, id, nil)
		if err != nil {
			cancel()
			t.Fatalf("round %d: %v", round, err)
		}
		if j.State != api.JobState_JOB_STATE_SUCCEEDED {
			cancel()
			t.Fatalf("round %d: job %s after the leader kill: %s", round, j.State, j.Message)
		}
		if recs, err := cl.Answer(ctx, id); err != nil || string(recs[0].Value) != "80" {
			cancel()
			t.Fatalf("round %d: answer %v %v", round, recs, err)
		}
		cancel()
		c.start(leader)
	}
}

// TestAKilledExecutorIsLostWithinTheGrace (Spark's onDisconnected →
// removeExecutor): a SIGKILLed executor is declared lost once its session
// is gone for -executor-reconnect-grace, long before -executor-timeout,
// and its running tasks run elsewhere.
func TestAKilledExecutorIsLostWithinTheGrace(t *testing.T) {
	c := jobCluster(t, "-executor-timeout", "60s", "-executor-reconnect-grace", "1s")
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, sleepJob(t, "victim", 8, 3000, ""), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "e2 to run tasks", func() bool { return execStatsOf(t, c, "e2")[0].Running > 0 })
	c.signalExec("e2", syscall.SIGKILL)
	killed := time.Now()
	waitFor(t, "e2 declared lost (well before the 60s executor timeout)", func() bool {
		ex, err := cl.Executors(ctx)
		if err != nil {
			return false
		}
		for _, e := range ex {
			if e.Id == "e2" {
				return !e.Alive
			}
		}
		return false
	})
	t.Logf("a SIGKILLed executor was declared lost %v after the kill (reconnect grace 1s)", time.Since(killed).Round(time.Millisecond))
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %v %v", j, err)
	}
}

// TestATaskThatKillsItsExecutorAbortsItsJob: a task that makes its
// executor exit every time (chaos.exit) is an executor loss caused by the
// task (Spark's ExecutorLostFailure, exitCausedByApp): it crashes e1, then
// e2, and after -max-task-failures 2 such losses the job fails with a
// message that names them. (Before, such losses never counted and a job
// whose task crashes its executors ran for as long as executors came
// back.)
func TestATaskThatKillsItsExecutorAbortsItsJob(t *testing.T) {
	c := jobCluster(t, "-executor-reconnect-grace", "500ms")
	cl := c.client()
	p, err := plan.Parse([]byte(`{"datasets":{"r":{"op":"range","n":2,"partitions":2},
		"x":{"op":"mapPartitions","input":"r","fn":{"name":"chaos.exit","args":{"partitions":[1]}}}},"action":{"op":"count","input":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := runJob(t, cl, p, client.SubmitOptions{MaxTaskFailures: 2})
	if j.State != api.JobState_JOB_STATE_FAILED {
		t.Fatalf("job %s: %s", j.State, j.Message)
	}
	if !strings.Contains(j.Message, "failed 2 times") || !strings.Contains(j.Message, "2 of the 2 failures were executor losses") {
		t.Fatalf("job message %q: want the two executor losses named", j.Message)
	}
}
