package driver

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// These tests drive the real driver, fsm and dag through the harness
// (harness_test.go): simulated executors, a log in memory, a fake clock.
// Each pins one behaviour of the leader's loop that the end-to-end suite
// otherwise reaches only through real processes.

// TestLaunchesFillSlotsAndEndsCommit: free slots take runnable tasks, one
// per core; reported ends are logged and acknowledged, which frees the
// slots for the next tasks, until the job succeeds.
func TestLaunchesFillSlotsAndEndsCommit(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 2})
	job := h.submit(collectJob(4))
	first := e1.waitLaunches(2)
	h.settle()
	if n := len(e1.launches()); n != 2 {
		t.Fatalf("2 cores took %d tasks", n)
	}
	if first[0].Graph == nil || first[1].Graph != nil {
		t.Fatalf("the graph goes with the first launch of a session only (got %t, %t)", first[0].Graph != nil, first[1].Graph != nil)
	}
	e1.report(finished(first[0], 5), finished(first[1], 5))
	next := e1.waitLaunches(4)[2:]
	e1.report(finished(next[0], 5), finished(next[1], 5))
	h.waitJob(job, dag.JobSucceeded)
	parts := map[int32]bool{}
	for _, tl := range e1.launches() {
		parts[tl.Id.Partition] = true
	}
	if len(parts) != 4 {
		t.Fatalf("launched partitions %v, want each of 4 once", parts)
	}
}

// TestTakeoverAdoptsRunningAttempts: a new leader adopts the attempts an
// executor reports running (Baton's takeover; Spark's driver would have
// lost them): it does not launch them again, and their ends finish the
// job. A finished attempt whose end was not acknowledged holds its
// partition until the end is reported again.
func TestTakeoverAdoptsRunningAttempts(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 3})
	job := h.submit(collectJob(3))
	ls := e1.waitLaunches(3)
	e1.report(finished(ls[0], 5))
	h.depose()
	h.waitFor("e1's old session to end", func() bool { return len(e1.served) > 0 })

	h.lead()
	again := h.connect("e1", helloOpts{cores: 3, running: []*api.TaskID{ls[1].Id}, unacked: []*api.TaskID{ls[2].Id}})
	h.settle()
	if n := len(again.launches()); n != 0 {
		t.Fatalf("the new leader launched %d tasks; every partition is done, running or reported", n)
	}
	again.report(finished(ls[1], 5), finished(ls[2], 5))
	h.waitJob(job, dag.JobSucceeded)
}

// TestTakeoverKillsAttemptsNobodyNeeds: an attempt reported at takeover
// whose stage is gone (its job was cancelled meanwhile) is killed, not
// adopted.
func TestTakeoverKillsAttemptsNobodyNeeds(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	job := h.submit(collectJob(1))
	ls := e1.waitLaunches(1)
	h.depose()
	h.propose(&dag.CancelJob{Job: job})
	h.lead()
	again := h.connect("e1", helloOpts{cores: 1, running: []*api.TaskID{ls[0].Id}})
	h.waitFor("the kill", func() bool { return slices.Contains(again.kills(), ls[0].Id.Task) })
}

// TestGracePeriodWaitsForExecutors: a new leader launches nothing until
// every executor alive in the state has reconnected (they may run
// attempts it must adopt) or GracePeriod has passed.
func TestGracePeriodWaitsForExecutors(t *testing.T) {
	const grace = 2 * time.Second
	h := newHarness(t, Options{GracePeriod: grace})
	h.lead()
	h.connect("e1", helloOpts{cores: 2})
	h.connect("e2", helloOpts{cores: 2})
	h.depose()
	h.submit(collectJob(2))

	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 2})
	h.advance(grace - 100*time.Millisecond)
	if n := len(e1.launches()); n != 0 {
		t.Fatalf("%d launches during the grace period with e2 still away", n)
	}
	h.advance(200 * time.Millisecond)
	e1.waitLaunches(2)

	// Once every executor is back, the grace period ends at once.
	h.depose()
	h.submit(collectJob(2))
	h.lead()
	a := h.connect("e1", helloOpts{cores: 2, running: []*api.TaskID{e1.launches()[0].Id, e1.launches()[1].Id}})
	b := h.connect("e2", helloOpts{cores: 2})
	h.waitFor("launches once every executor is back", func() bool { return len(a.launches())+len(b.launches()) >= 2 })
}

// TestLivenessLosesSilentExecutors: an executor not heard of for
// ExecutorTimeout is removed (logged), its attempts end as ExecutorLost
// (not a failure), and they run elsewhere; heartbeats keep an executor
// alive.
func TestLivenessLosesSilentExecutors(t *testing.T) {
	const timeout = 10 * time.Second
	h := newHarness(t, Options{ExecutorTimeout: timeout})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	e2 := h.connect("e2", helloOpts{cores: 1})
	h.submit(collectJob(1))
	var on, other *simExec
	h.waitFor("a launch", func() bool { return len(e1.launches())+len(e2.launches()) == 1 })
	on, other = e1, e2
	if len(e2.launches()) == 1 {
		on, other = e2, e1
	}
	h.advance(timeout / 2)
	other.heartbeat()
	h.advance(timeout/2 + time.Millisecond)
	h.waitFor("the silent executor's removal", func() bool {
		for _, c := range h.log.commands() {
			if r, ok := c.(*dag.RemoveExecutor); ok && string(r.ID) == on.id {
				return true
			}
		}
		return false
	})
	for _, c := range h.log.commands() {
		if r, ok := c.(*dag.RemoveExecutor); ok && string(r.ID) == other.id {
			t.Fatalf("%s sent a heartbeat and was removed", other.id)
		}
	}
	ends := h.ends()
	if len(ends) != 1 || ends[0].Reason != dag.ExecutorLost || string(ends[0].Executor) != on.id {
		t.Fatalf("ends %+v, want one ExecutorLost on %s", ends, on.id)
	}
	other.waitLaunches(1)
}

// TestResubmitWaitsResubmitTimeout: after a fetch failure the failed
// stages are resubmitted RESUBMIT_TIMEOUT later (Spark's
// DAGScheduler.RESUBMIT_TIMEOUT), then the lost map output runs again.
func TestResubmitWaitsResubmitTimeout(t *testing.T) {
	const wait = 200 * time.Millisecond
	h := newHarness(t, Options{ResubmitTimeout: wait})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 4})
	h.submit(shuffleJob("k", 2, 1))
	maps := e1.waitLaunches(2)
	e1.report(finished(maps[0], 5), finished(maps[1], 5))
	reduce := e1.waitLaunches(3)[2]
	if reduce.Map || len(reduce.Inputs) != 1 {
		t.Fatalf("third launch %+v, want the reducer with one shuffle input", reduce)
	}
	ff := failed(reduce, api.FailureKind_FAILURE_KIND_FETCH_FAILED, "fetch failed")
	ff.FetchExecutor, ff.FetchShuffle, ff.FetchMap, ff.FetchReduce = "e1", reduce.Inputs[0].Shuffle, 0, 0
	e1.report(ff)
	resubmitted := func() bool {
		for _, c := range h.log.commands() {
			if _, ok := c.(*dag.ResubmitFailedStages); ok {
				return true
			}
		}
		return false
	}
	h.advance(wait - time.Millisecond)
	if resubmitted() {
		t.Fatal("resubmitted before the resubmit timeout")
	}
	h.advance(2 * time.Millisecond)
	h.waitFor("ResubmitFailedStages", resubmitted)
	h.waitFor("the lost map output to run again", func() bool {
		for _, tl := range e1.launches()[3:] {
			if tl.Map && tl.Id.Partition == 0 {
				return true
			}
		}
		return false
	})
}

// TestSpeculationCopiesAStraggler (Spark's TaskSetManagerSuite
// "speculative task"): once 75% of a task set succeeded, a task running
// 1.5× their median (and at least SpeculationMinRuntime) gets a copy on
// another executor; the first to succeed wins and the other is killed.
func TestSpeculationCopiesAStraggler(t *testing.T) {
	h := newHarness(t, Options{Speculation: true})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 4})
	e2 := h.connect("e2", helloOpts{cores: 4})
	job := h.submit(collectJob(4))
	h.waitFor("4 launches", func() bool { return len(e1.launches())+len(e2.launches()) == 4 })
	all := map[*simExec][]*api.TaskLaunch{e1: e1.launches(), e2: e2.launches()}
	var slowOn *simExec
	var slow *api.TaskLaunch
	for e, ls := range all {
		for _, tl := range ls {
			if slow == nil || tl.Id.Partition > slow.Id.Partition {
				slow, slowOn = tl, e
			}
		}
	}
	for e, ls := range all {
		for _, tl := range ls {
			if tl != slow {
				e.report(finished(tl, 10))
			}
		}
	}
	copyOn := e1
	if slowOn == e1 {
		copyOn = e2
	}
	before := len(copyOn.launches())
	h.advance(50 * time.Millisecond) // under the 100ms minimum runtime
	if len(copyOn.launches()) != before {
		t.Fatal("copied before the minimum runtime")
	}
	h.advance(60 * time.Millisecond)
	ls := copyOn.waitLaunches(before + 1)
	cp := ls[len(ls)-1]
	if cp.Id.Partition != slow.Id.Partition || cp.Id.Task == slow.Id.Task {
		t.Fatalf("copy %+v of straggler %+v", cp.Id, slow.Id)
	}
	copyOn.report(finished(cp, 10))
	h.waitFor("the straggler's kill", func() bool { return slices.Contains(slowOn.kills(), slow.Id.Task) })
	h.waitJob(job, dag.JobSucceeded)
}

// TestExclusionKeepsAFailedTaskOffItsExecutor (Spark's
// excludeOnFailure.task.maxTaskAttemptsPerExecutor = 1): a task that
// failed on an executor waits for a slot elsewhere rather than run there
// again.
func TestExclusionKeepsAFailedTaskOffItsExecutor(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	e2 := h.connect("e2", helloOpts{cores: 1})
	job := h.submit(collectJob(2))
	h.waitFor("2 launches", func() bool { return len(e1.launches())+len(e2.launches()) == 2 })
	bad, good := e1, e2
	e1.report(failed(e1.launches()[0], api.FailureKind_FAILURE_KIND_EXCEPTION, "boom"))
	h.advance(time.Second)
	if n := len(bad.launches()); n != 1 {
		t.Fatalf("the failed task ran again on the executor it failed on (%d launches)", n)
	}
	good.report(finished(good.launches()[0], 5))
	retry := good.waitLaunches(2)[1]
	if retry.Id.Partition != bad.launches()[0].Id.Partition || retry.Id.Attempt != 1 {
		t.Fatalf("retry %+v, want attempt 1 of the failed partition", retry.Id)
	}
	good.report(finished(retry, 5))
	h.waitJob(job, dag.JobSucceeded)
}

// TestCommitDecisions (Spark's OutputCommitCoordinatorSuite): the first
// attempt of a partition to ask may commit, and asking again says yes
// again; another attempt is denied; a decision that could not be logged
// is no decision: the session ends and the executor asks again.
func TestCommitDecisions(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	h.submit(collectJob(1))
	tl := e1.waitLaunches(1)[0]
	ask := func(e *simExec, id *api.TaskID) *api.CommitDecision {
		e.mu.Lock()
		n := len(e.commits)
		e.mu.Unlock()
		e.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Commit{Commit: &api.CommitRequest{Id: id}}})
		h.waitFor("a commit decision", func() bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return len(e.commits) > n
		})
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.commits[n]
	}
	if d := ask(e1, tl.Id); !d.Authorized || d.Term != tl.Term {
		t.Fatalf("first asker: %+v", d)
	}
	if d := ask(e1, tl.Id); !d.Authorized {
		t.Fatalf("the authorised attempt asking again: %+v", d)
	}
	other := &api.TaskID{Task: tl.Id.Task + 1000, Job: tl.Id.Job, Stage: tl.Id.Stage, Partition: tl.Id.Partition, Attempt: 1}
	if d := ask(e1, other); d.Authorized {
		t.Fatalf("a second attempt of the partition was authorised: %+v", d)
	}

	h.log.mu.Lock()
	h.log.fail = func(cmds []dag.Command) (error, bool) {
		if _, ok := cmds[0].(*dag.AuthorizeCommit); ok {
			return errNotLeader, false
		}
		return nil, false
	}
	h.log.mu.Unlock()
	e1.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Commit{Commit: &api.CommitRequest{Id: tl.Id}}})
	h.waitFor("the session to end", func() bool { return len(e1.served) > 0 })
	e1.mu.Lock()
	defer e1.mu.Unlock()
	if len(e1.commits) != 3 {
		t.Fatalf("%d decisions, want none for the request that was not logged", len(e1.commits)-3)
	}
}

// TestFencingByTicketsAndTerms: launches carry the leader's term and
// task ids from it; a deposed leader's sessions end with NotLeader; after
// a takeover an attempt with no valid ticket (no leader launched it to
// that executor) is killed, not adopted, and its end is not logged.
func TestFencingByTicketsAndTerms(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h := newHarness(t, Options{TicketKey: func() []byte { return key }})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 2})
	h.submit(collectJob(2))
	ls := e1.waitLaunches(2)
	term1 := ls[0].Term
	if ls[0].Id.Task>>40 != term1 || len(ls[0].Id.Ticket) == 0 {
		t.Fatalf("launch %+v: the task id starts with the term and carries a ticket", ls[0].Id)
	}
	h.depose()
	h.waitFor("NotLeader on the old session", func() bool { e1.mu.Lock(); defer e1.mu.Unlock(); return e1.notLead })

	h.lead()
	forged := &api.TaskID{Task: 77, Job: ls[1].Id.Job, Stage: ls[1].Id.Stage, Partition: ls[1].Id.Partition, Ticket: []byte("not a ticket")}
	again := h.connect("e1", helloOpts{cores: 2, running: []*api.TaskID{ls[0].Id, forged}})
	h.waitFor("the forged attempt's kill", func() bool { return slices.Contains(again.kills(), forged.Task) })
	relaunch := again.waitLaunches(1)[0]
	if relaunch.Term <= term1 || relaunch.Id.Task>>40 != relaunch.Term || relaunch.Id.Partition != ls[1].Id.Partition {
		t.Fatalf("relaunch %+v under term %d, want partition %d in a later term", relaunch.Id, relaunch.Term, ls[1].Id.Partition)
	}
	endsBefore := len(h.ends())
	again.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: []*api.TaskStatus{
		{Id: forged, State: api.TaskState_TASK_STATE_FINISHED, Result: []byte("lie")}}}}})
	h.waitFor("the forged end's acknowledgement", func() bool { return again.isAcked(forged.Task) })
	h.settle()
	if n := len(h.ends()); n != endsBefore {
		t.Fatalf("a forged end was logged (%d ends, had %d)", n, endsBefore)
	}
}

// TestOneSessionsEndsCommitInOrder: status batches of one executor are
// logged in the order it sent them; those that arrive while one is being
// logged go together in the next entry.
func TestOneSessionsEndsCommitInOrder(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 3})
	h.submit(collectJob(3))
	ls := e1.waitLaunches(3)
	hold := make(chan struct{})
	h.log.mu.Lock()
	h.log.hold = hold
	h.log.mu.Unlock()
	for _, tl := range ls {
		e1.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: []*api.TaskStatus{finished(tl, 5)}}}})
	}
	l := h.d.current()
	h.waitFor("two batches queued behind the first", func() bool {
		n := 0
		l.ask(func() { n = len(l.conns["e1"].commits) })
		return n == 2
	})
	h.log.mu.Lock()
	h.log.hold = nil
	h.log.mu.Unlock()
	close(hold)
	h.waitFor("every end acknowledged", func() bool {
		return e1.isAcked(ls[0].Id.Task) && e1.isAcked(ls[1].Id.Task) && e1.isAcked(ls[2].Id.Task)
	})
	var order []uint64
	var entries [][]dag.Command
	h.log.mu.Lock()
	entries = append(entries, h.log.entries...)
	h.log.mu.Unlock()
	last := 0
	for i, e := range entries {
		for _, c := range e {
			if te, ok := c.(*dag.TaskEnded); ok {
				order = append(order, uint64(te.Task))
				last = i
			}
		}
	}
	if !slices.Equal(order, []uint64{ls[0].Id.Task, ls[1].Id.Task, ls[2].Id.Task}) {
		t.Fatalf("ends logged in order %v", order)
	}
	if n := len(entries[last]); n != 2 {
		t.Fatalf("the two queued batches took %d commands in the last entry, want 2 together", n)
	}
}

// TestASessionThatStopsReadingBlocksNoOne: an executor that stops reading
// never blocks the loop: its messages queue up to maxOutbox, then its
// session is closed, and other executors are served.
func TestASessionThatStopsReadingBlocksNoOne(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	stuck := h.dial("e1", helloOpts{cores: 1, stuck: true})
	l := h.d.current()
	h.waitFor("the stuck session attached", func() bool {
		ok := false
		l.ask(func() { ok = l.conns["e1"] != nil })
		return ok
	})
	// The sender takes what is queued once, then blocks for good: twice
	// the outbox's bound fills it whatever it took.
	for i := 0; i <= 2*maxOutbox+1; i++ {
		h.d.Dropped(&dag.Dropped{Shuffles: []dag.ShuffleID{dag.ShuffleID(i)}})
	}
	h.waitFor("the stuck session closed", func() bool { return len(stuck.served) > 0 })
	e2 := h.connect("e2", helloOpts{cores: 1})
	h.submit(collectJob(1))
	e2.report(finished(e2.waitLaunches(1)[0], 5))
	var err error
	select {
	case err = <-stuck.served:
	default:
	}
	if errors.Is(err, errNotLeading) {
		t.Fatalf("the stuck session ended with %v", err)
	}
}

// TestANewSessionGetsTheGraphAgain: the graph goes with the first launch
// of each session that needs it: an executor that reconnected (a new
// session, which has not got the graphs) gets it again.
func TestANewSessionGetsTheGraphAgain(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	h.submit(collectJob(2))
	first := e1.waitLaunches(1)[0]
	if first.Graph == nil {
		t.Fatal("the first launch of a session came without its graph")
	}
	e1.hangUp()
	again := h.connect("e1", helloOpts{cores: 1, running: []*api.TaskID{first.Id}})
	again.report(finished(first, 5))
	next := again.waitLaunches(1)[0]
	if next.Graph == nil || next.GraphKey != first.GraphKey {
		t.Fatalf("the new session's first launch: graph %t, key %q (want %q)", next.Graph != nil, next.GraphKey, first.GraphKey)
	}
}

// TestAFailedTaskIsRetriedBeforeTasksNotYetLaunched (Spark's
// TaskSetManager re-queues a failed task where it is taken next): the
// launch rounds look for candidates past a cursor, so a failed
// partition, below it, must send the cursor back, or its retry would
// wait for the stage's tail (past what a round looks at: 3,000 tasks).
func TestAFailedTaskIsRetriedBeforeTasksNotYetLaunched(t *testing.T) {
	h := newHarness(t, Options{})
	h.lead()
	e1 := h.connect("e1", helloOpts{cores: 1})
	e2 := h.connect("e2", helloOpts{cores: 1})
	job := h.submit(collectJob(3000)) // more than a round looks at
	h.waitFor("2 launches", func() bool { return len(e1.launches())+len(e2.launches()) == 2 })
	failedPart := e1.launches()[0].Id.Partition
	e1.report(failed(e1.launches()[0], api.FailureKind_FAILURE_KIND_EXCEPTION, "boom"))
	h.waitFor("e1's next launch", func() bool { return len(e1.launches()) == 2 })
	if p := e1.launches()[1].Id.Partition; p == failedPart {
		t.Fatalf("partition %d ran again on the executor it failed on", p)
	}
	e2.report(finished(e2.launches()[0], 5))
	retry := e2.waitLaunches(2)[1]
	if retry.Id.Partition != failedPart || retry.Id.Attempt != 1 {
		t.Fatalf("e2's next launch is partition %d attempt %d, want the retry of partition %d (attempt 1)", retry.Id.Partition, retry.Id.Attempt, failedPart)
	}
	// Finish the job: every launch so far and those that follow.
	done := map[uint64]bool{}
	h.waitFor("the job to end", func() bool {
		for _, e := range []*simExec{e1, e2} {
			for _, l := range e.launches() {
				if !done[l.Id.Task] {
					done[l.Id.Task] = true
					if l.Id.Task != e1.launches()[0].Id.Task {
						e.report(finished(l, 5))
					}
				}
			}
		}
		return h.job(job).Status == dag.JobSucceeded
	})
}

// TestAnExecutorThatTakesTaskSetsGetsThem: an executor whose hello says
// task_sets gets its launches packed in task sets (one per stage attempt
// per message), which expand to valid launches (their tickets hold) and
// finish the job; one that does not say so gets one launch per task.
func TestAnExecutorThatTakesTaskSetsGetsThem(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h := newHarness(t, Options{TicketKey: func() []byte { return key }})
	h.lead()
	sets := h.connect("e1", helloOpts{cores: 4, taskSets: true})
	plain := h.connect("e2", helloOpts{cores: 4})
	job := h.submit(collectJob(40))
	done := map[uint64]bool{}
	h.waitFor("the job to end", func() bool {
		for _, e := range []*simExec{sets, plain} {
			for _, l := range e.launches() {
				if !done[l.Id.Task] {
					done[l.Id.Task] = true
					if !validTicket(key, l.Id, e.id) {
						t.Errorf("launch of task %d to %s: its ticket does not hold", l.Id.Task, e.id)
					}
					e.report(finished(l, 0))
				}
			}
		}
		return h.job(job).Status == dag.JobSucceeded
	})
	sets.mu.Lock()
	s, u := sets.sets, sets.unpacked
	sets.mu.Unlock()
	plain.mu.Lock()
	ps, pu := plain.sets, plain.unpacked
	plain.mu.Unlock()
	if s == 0 || u != 0 || len(sets.launches()) <= s {
		t.Errorf("the task-set executor got %d sets and %d one-task launches for %d tasks", s, u, len(sets.launches()))
	}
	if ps != 0 || pu == 0 {
		t.Errorf("the other executor got %d sets and %d one-task launches", ps, pu)
	}
}
