package driver

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// Tests of what a leader change must not change (issue: "a failover no one
// can see"), and of executor losses as Spark counts them.

// TestExclusionSurvivesALeaderChange: with -max-task-failures 2, a task
// that failed on e1 is retried elsewhere, by the leader that saw the
// failure and by the one after it alike: the exclusion is in the state,
// not in the leader's memory. (Before, the new leader retried on e1 and
// the job failed "Task 0 in stage 0.0 failed 2 times".)
func TestExclusionSurvivesALeaderChange(t *testing.T) {
	h := newHarness(t, Options{GracePeriod: time.Hour})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	job := h.propose(&dag.SubmitJob{Graph: collectJob(1), MaxTaskFailures: 2})[0].Job
	tl := e1.waitLaunches(1)[0]
	e1.report(failed(tl, api.FailureKind_FAILURE_KIND_EXCEPTION, "boom"))
	h.waitFor("the failure logged", func() bool { return len(h.ends()) == 1 })
	h.depose()
	h.waitFor("e1's old session to end", func() bool { return len(e1.served) > 0 })
	// e2 joined the cluster (the new leader waits for it as for e1).
	h.propose(&dag.RegisterExecutor{ID: "e2", Addr: "127.0.0.1:92", Cores: 1})

	h.lead()
	// e1 comes back first, with more free slots than e2.
	again := h.connect("e1", helloOpts{cores: 2})
	e2 := h.connect("e2", helloOpts{cores: 1})
	retry := e2.waitLaunches(1)[0]
	if n := len(again.launches()); n != 0 {
		t.Fatalf("the new leader launched the failed task on the executor it failed on (%d launches)", n)
	}
	if retry.Id.Partition != tl.Id.Partition || retry.Id.Attempt != 1 {
		t.Fatalf("retry %+v, want attempt 1 of partition %d", retry.Id, tl.Id.Partition)
	}
	e2.report(finished(retry, 5))
	h.waitJob(job, dag.JobSucceeded)
}

// TestTakeoverAdoptsACopyAndItsOriginal: with speculation on, a straggler
// runs on e2 and its copy on e1 when the leader dies. The new leader
// adopts both, whichever executor reports first; the copy finishing first
// wins and the straggler is killed, as before the failover. (Before, the
// attempt reported first was kept and the other killed, so a leader
// change could leave the straggler and kill its copy.) The copy's end is
// logged as speculative.
func TestTakeoverAdoptsACopyAndItsOriginal(t *testing.T) {
	h := newHarness(t, Options{Speculation: true, GracePeriod: time.Hour})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 2})
	e2 := h.connect("e2", helloOpts{cores: 2})
	job := h.submit(collectJob(4))
	h.waitFor("4 launches", func() bool { return len(e1.launches())+len(e2.launches()) == 4 })
	var slow *api.TaskLaunch
	copyOn := e1
	for _, tl := range e2.launches() {
		if slow == nil || tl.Id.Partition > slow.Id.Partition {
			slow = tl
		}
	}
	for _, e := range []*simExec{e1, e2} {
		for _, tl := range e.launches() {
			if tl != slow {
				e.report(finished(tl, 10))
			}
		}
	}
	h.advance(200 * time.Millisecond)
	ls := copyOn.waitLaunches(3)
	cp := ls[len(ls)-1]
	if cp.Id.Partition != slow.Id.Partition || !cp.Id.Speculative {
		t.Fatalf("copy %+v of straggler %+v", cp.Id, slow.Id)
	}
	h.depose()
	h.waitFor("the old sessions to end", func() bool { return len(e1.served) > 0 && len(e2.served) > 0 })

	h.lead()
	// The copy's executor reports first.
	c1 := h.connect("e1", helloOpts{cores: 2, running: []*api.TaskID{cp.Id}, runningFor: []int64{150}})
	c2 := h.connect("e2", helloOpts{cores: 2, running: []*api.TaskID{slow.Id}, runningFor: []int64{400}})
	h.settle()
	if k := append(c1.kills(), c2.kills()...); len(k) != 0 {
		t.Fatalf("the new leader killed %v: both attempts of the partition should run on", k)
	}
	if n := len(c1.launches()) + len(c2.launches()); n != 0 {
		t.Fatalf("the new leader launched %d tasks; the partition has two attempts running", n)
	}
	c1.report(finished(cp, 10))
	h.waitFor("the straggler's kill", func() bool { return slices.Contains(c2.kills(), slow.Id.Task) })
	h.waitJob(job, dag.JobSucceeded)
	var spec []dag.TaskID
	for _, te := range h.ends() {
		if te.Speculative {
			spec = append(spec, te.Task)
		}
	}
	if len(spec) != 1 || spec[0] != dag.TaskID(cp.Id.Task) {
		t.Fatalf("ends logged as speculative: %v, want the copy %d", spec, cp.Id.Task)
	}
}

// TestSpeculationSurvivesALeaderChange: the leader dies with 7 of 8 tasks
// done and the eighth straggling. The new leader knows the durations
// (they are in the log) and how long the straggler has run (its executor
// says), so it copies it as the old leader would have, at once rather
// than after the straggler's whole run. (Before, it never did.)
func TestSpeculationSurvivesALeaderChange(t *testing.T) {
	h := newHarness(t, Options{Speculation: true, GracePeriod: time.Hour})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 8})
	job := h.submit(collectJob(8))
	ls := e1.waitLaunches(8)
	slow := ls[7]
	for _, tl := range ls[:7] {
		e1.report(finished(tl, 300))
	}
	h.waitFor("7 successes logged", func() bool { return len(h.ends()) == 7 })
	h.depose()
	h.waitFor("e1's old session to end", func() bool { return len(e1.served) > 0 })

	h.lead()
	again := h.connect("e1", helloOpts{cores: 8, running: []*api.TaskID{slow.Id}, runningFor: []int64{5000}})
	e2 := h.connect("e2", helloOpts{cores: 4})
	cp := e2.waitLaunches(1)[0]
	if cp.Id.Partition != slow.Id.Partition || !cp.Id.Speculative {
		t.Fatalf("the new leader launched %+v, want a copy of the straggler %+v", cp.Id, slow.Id)
	}
	e2.report(finished(cp, 300))
	h.waitFor("the straggler's kill", func() bool { return slices.Contains(again.kills(), slow.Id.Task) })
	h.waitJob(job, dag.JobSucceeded)
}

// TestADroppedSessionLosesItsExecutorAfterTheGrace (Spark's
// onDisconnected → removeExecutor): an executor whose session ends and
// does not come back within ReconnectGrace is declared lost, long before
// ExecutorTimeout, and the attempt it ran counts toward MaxTaskFailures
// (ExecutorLostFailure, exitCausedByApp). One that comes back in time
// keeps its attempts.
func TestADroppedSessionLosesItsExecutorAfterTheGrace(t *testing.T) {
	const grace = 2 * time.Second
	h := newHarness(t, Options{ReconnectGrace: grace, ExecutorTimeout: time.Minute, GracePeriod: time.Hour})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	e2 := h.connect("e2", helloOpts{cores: 1})
	job := h.propose(&dag.SubmitJob{Graph: collectJob(2), MaxTaskFailures: 2})[0].Job
	l1, l2 := e1.waitLaunches(1)[0], e2.waitLaunches(1)[0]

	// e2 drops and comes back within the grace: nothing is lost.
	e2.hangUp()
	h.advance(grace / 2)
	back := h.connect("e2", helloOpts{cores: 1, running: []*api.TaskID{l2.Id}})
	h.advance(grace)
	if removed := removals(h); len(removed) != 0 {
		t.Fatalf("executors removed: %v; e2 came back within the grace", removed)
	}

	// e1 drops for good.
	e1.hangUp()
	h.advance(grace - 100*time.Millisecond)
	if removed := removals(h); len(removed) != 0 {
		t.Fatalf("e1 removed before the grace was over: %v", removed)
	}
	h.advance(200 * time.Millisecond)
	h.waitFor("e1 declared lost", func() bool { return slices.Contains(removals(h), dag.ExecutorID("e1")) })
	var lost *dag.TaskEnded
	for _, te := range h.ends() {
		if te.Task == dag.TaskID(l1.Id.Task) {
			lost = te
		}
	}
	if lost == nil || lost.Reason != dag.ExecutorLost || !lost.ExitCausedByApp {
		t.Fatalf("e1's attempt ended %+v, want an executor loss that counts", lost)
	}
	// The retry runs on e2; e2 then crashes it too: the second counted
	// loss aborts the job, and the message names both.
	back.report(finished(l2, 5))
	retry := back.waitLaunches(1)[0]
	if retry.Id.Partition != l1.Id.Partition {
		t.Fatalf("retry %+v, want partition %d", retry.Id, l1.Id.Partition)
	}
	back.hangUp()
	h.advance(grace + 100*time.Millisecond)
	info := h.waitJob(job, dag.JobFailed)
	if !strings.Contains(info.Message, "failed 2 times") || !strings.Contains(info.Message, "2 of the 2 failures were executor losses: e1, e2") {
		t.Fatalf("job message %q: want the two executor losses named", info.Message)
	}
}

// TestLossesAfterALeaderChangeDoNotCount: an executor that never comes
// back to a new leader is lost after ExecutorTimeout, but its attempts'
// ends do not count toward MaxTaskFailures: the loss may be the
// failover's, not the task's.
func TestLossesAfterALeaderChangeDoNotCount(t *testing.T) {
	h := newHarness(t, Options{ExecutorTimeout: 5 * time.Second, GracePeriod: time.Second})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	h.submit(collectJob(1))
	e1.waitLaunches(1)
	h.depose()
	h.waitFor("e1's old session to end", func() bool { return len(e1.served) > 0 })
	h.lead()
	h.advance(6 * time.Second)
	h.waitFor("e1 declared lost", func() bool { return slices.Contains(removals(h), dag.ExecutorID("e1")) })
	for _, te := range h.ends() {
		if te.ExitCausedByApp {
			t.Fatalf("an end after the takeover counts: %+v", te)
		}
	}
}

// removals returns the executors the log removed, in order.
func removals(h *harness) []dag.ExecutorID {
	var out []dag.ExecutorID
	for _, c := range h.log.commands() {
		if r, ok := c.(*dag.RemoveExecutor); ok {
			out = append(out, r.ID)
		}
	}
	return out
}
