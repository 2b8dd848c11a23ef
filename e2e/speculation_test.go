package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
)

// Speculation across a leader SIGKILL (issue 14, "A failover must not
// change what happens"): a copy running when the leader dies runs on, and
// a straggler the dead leader had not copied yet is copied by the next.
// Both run failoverRounds() rounds (BATON_E2E_ROUNDS; 10 for the issue).

// specDeadline bounds every wait of these tests: generous, for loaded
// 2-core CI machines; no wait sleeps for its condition to come true.
const specDeadline = 90 * time.Second

// specWait polls cond until it holds, failing after specDeadline with
// what it waited for and the last state cond described.
func specWait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(specDeadline)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", specDeadline, what, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// specOf returns a stage's attempts of one partition, in task order.
func specOf(d *api.StageDetail, part int32) []*api.TaskAttempt {
	var out []*api.TaskAttempt
	for _, ta := range d.Tasks {
		if ta.Partition == part {
			out = append(out, ta)
		}
	}
	return out
}

// specDone counts the partitions other than skip with a logged success.
func specDone(d *api.StageDetail, skip int32) int {
	done := map[int32]bool{}
	for _, ta := range d.Tasks {
		if ta.Partition != skip && ta.State == "success" {
			done[ta.Partition] = true
		}
	}
	return len(done)
}

func specAttempt(ta *api.TaskAttempt) string {
	if ta == nil {
		return "<none>"
	}
	s := fmt.Sprintf("task %d attempt %d on %s %s", ta.Task, ta.Attempt, ta.Executor, ta.State)
	if ta.Speculative {
		s += " (speculative)"
	}
	if ta.Ignored != "" {
		s += " ignored: " + ta.Ignored
	}
	if ta.Message != "" {
		s += ": " + ta.Message
	}
	return s
}

func specAttempts(tas []*api.TaskAttempt) string {
	var parts []string
	for _, ta := range tas {
		parts = append(parts, specAttempt(ta))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// specEnds returns, by task, the end a partition's history holds (the one
// the state did not ignore, if a report came twice), and how many of its
// attempts still run.
func specEnds(tas []*api.TaskAttempt) (ends map[uint64]*api.TaskAttempt, running int) {
	ends = map[uint64]*api.TaskAttempt{}
	for _, ta := range tas {
		switch {
		case ta.State == "running":
			running++
		case ends[ta.Task] == nil || ends[ta.Task].Ignored != "":
			ends[ta.Task] = ta
		}
	}
	return ends, running
}

// specSucceeded waits for the job's end and checks it succeeded with the
// count want.
func specSucceeded(t *testing.T, ctx context.Context, cl *client.Client, id uint64, round, want int) *api.Job {
	t.Helper()
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		t.Fatalf("round %d: the job did not end without its straggler: %v", round, err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("round %d: job %s: %s", round, j.State, j.Message)
	}
	if recs, err := cl.Answer(ctx, id); err != nil || len(recs) != 1 || string(recs[0].Value) != strconv.Itoa(want) {
		t.Fatalf("round %d: answer %v %v, want %d", round, recs, err, want)
	}
	return j
}

// specSettled waits until the new leader's history of the stage shows the
// partition's attempts as done says (ends by task, attempts still
// running), and returns them.
func specSettled(t *testing.T, ctx context.Context, leader *client.Client, name string, stage uint64, part int32, round int,
	done func(ends map[uint64]*api.TaskAttempt, running int) bool) ([]*api.TaskAttempt, map[uint64]*api.TaskAttempt) {
	t.Helper()
	var tas []*api.TaskAttempt
	var ends map[uint64]*api.TaskAttempt
	specWait(t, "the straggler's end logged", func() (bool, string) {
		d, err := leader.Stage(ctx, stage)
		if err != nil {
			return false, err.Error()
		}
		if !d.HistoryComplete {
			t.Fatalf("round %d: new leader %s's history of stage %d is not complete", round, name, stage)
		}
		tas = specOf(d, part)
		var running int
		ends, running = specEnds(tas)
		return done(ends, running), specAttempts(tas)
	})
	return tas, ends
}

// specStageOf returns the id of a one-stage job's stage.
func specStageOf(t *testing.T, ctx context.Context, cl *client.Client, id uint64) uint64 {
	t.Helper()
	var stage uint64
	specWait(t, fmt.Sprintf("job %d's stage", id), func() (bool, string) {
		j, err := cl.Job(ctx, id, false)
		if err != nil {
			return false, err.Error()
		}
		if len(j.Stages) != 1 {
			return false, fmt.Sprintf("%d stages", len(j.Stages))
		}
		stage = j.Stages[0].Id
		return true, ""
	})
	return stage
}

// specRunning returns how many attempts each executor runs, by its own
// account, and their sum.
func specRunning(t *testing.T, c *cluster, names ...string) (map[string]int32, int32) {
	t.Helper()
	out, sum := map[string]int32{}, int32(0)
	for i, st := range execStatsOf(t, c, names...) {
		out[names[i]] = st.Running
		sum += st.Running
	}
	return out, sum
}

// specLaunches returns how many launches of a job the executors accepted.
func specLaunches(t *testing.T, c *cluster, job uint64, names ...string) int64 {
	t.Helper()
	var n int64
	for _, st := range execStatsOf(t, c, names...) {
		n += st.LaunchesByJob[job]
	}
	return n
}

// specRejoin restarts a killed member and waits until it follows and has
// applied what the leader had committed, so that the next round's kill
// leaves a quorum of two that is up to date.
func specRejoin(t *testing.T, c *cluster, id string) {
	t.Helper()
	c.start(id)
	leader, _ := c.waitLeader(id)
	ls, err := c.nodeStatus(leader)
	if err != nil {
		t.Fatalf("status of leader %s: %v", leader, err)
	}
	specWait(t, "node "+id+" to rejoin", func() (bool, string) {
		c.checkAlive()
		st, err := c.nodeStatus(id)
		if err != nil {
			return false, err.Error()
		}
		return st.State == "Follower" && st.AppliedIndex >= ls.CommitIndex, fmt.Sprintf("%s, applied %d of %d", st.State, st.AppliedIndex, ls.CommitIndex)
	})
}

// specGateScript passes a partition's records through, but for the
// partition whose first record is $FIRST waits for the file $GATE first:
// the test decides when the copy of the straggler may finish, so the copy
// is certainly running when the leader is killed and when the next one
// adopts it. The wait never outlives the test: it gives up (failing the
// attempt) once the gate's directory is gone (the test's cleanup), its
// executor is (a SIGKILLed execd leaves its children behind, and they
// would hold whatever the test held, the e2e lock included), or after 10
// minutes.
const specGateScript = `if IFS= read -r first; then
	if [ "$first" = "$FIRST" ]; then
		n=0
		while [ ! -e "$GATE" ]; do
			if [ ! -d "${GATE%/*}" ] || ! kill -0 "$PPID" 2>/dev/null || [ "$n" -ge 12000 ]; then
				echo "gate: given up" >&2
				exit 1
			fi
			n=$((n + 1))
			sleep 0.05
		done
	fi
	printf '%s\n' "$first"
	cat
fi`

// TestARunningSpeculativeCopySurvivesAdoption: with speculation on, the
// first attempt of partition 5 of 16 straggles (chaos.sleep, 10 minutes
// on attempt 0) and gets a speculative copy on the other executor; the
// copy waits at a gate the test holds shut. With both running, the leader
// is SIGKILLed. The new leader must adopt both attempts (neither is
// killed, nothing is launched again); once the gate opens, the copy
// finishes and wins, the straggler is killed after it, and the job
// returns the exact count, long before the straggler would have ended.
//
// (Before 2889dc4, adoption kept one attempt per partition, the first an
// executor's hello reported, and killed the other "no longer needed":
// the kill's end shows in the new leader's history before the gate opens
// and the adoption wait fails; had the straggler been kept, nothing would
// have copied it again and the job would have waited for it.)
func TestARunningSpeculativeCopySurvivesAdoption(t *testing.T) {
	const parts, slowPart = 16, 5
	c := jobCluster(t, "-speculation", "-speculation-min-runtime", "200ms")
	cl := c.client()
	nodes := map[string]*client.Client{} // each member alone: its own history and, on the leader, its running attempts
	for _, id := range c.order {
		nodes[id] = c.client(id)
	}
	gates := t.TempDir()
	for round := range failoverRounds() {
		began := time.Now()
		gate := filepath.Join(gates, "open-"+strconv.Itoa(round))
		p := sleepJob(t, "copy-adopted-"+strconv.Itoa(round), parts, 50, "")
		p.Datasets["slow"] = &plan.Dataset{Op: "mapPartitions", Input: "s", Fn: &plan.Func{Name: "chaos.sleep", Args: []byte(fmt.Sprintf(`{"ms": 600000, "partitions": [%d], "attempts": 1}`, slowPart))}}
		// Partition 5 of range(160) in 16 starts at 50.
		p.Datasets["gated"] = &plan.Dataset{Op: "pipe", Input: "slow", Command: "sh", Args: []string{"-c", specGateScript},
			Env: map[string]string{"GATE": gate, "FIRST": strconv.Itoa(slowPart * 10)}}
		p.Action.Input = "gated"
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // the straggler sleeps 10 minutes
		defer cancel()
		id, err := cl.Submit(ctx, p, client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stage := specStageOf(t, ctx, cl, id)
		leader, _ := c.waitLeader("")

		// Both attempts running: the straggler (attempt 0) on one executor
		// and its copy on the other, each executor running just that one
		// (so each will name it in its hello), every other partition done.
		var orig, cp *api.TaskAttempt
		specWait(t, "the straggler and its speculative copy both running, every other partition done", func() (bool, string) {
			d, err := nodes[leader].Stage(ctx, stage)
			if err != nil {
				return false, err.Error()
			}
			tas := specOf(d, slowPart)
			orig, cp = nil, nil
			for _, ta := range tas {
				switch {
				case ta.State != "running":
					t.Fatalf("round %d: partition %d ended before the kill: %s", round, slowPart, specAttempts(tas))
				case ta.Speculative:
					cp = ta
				default:
					orig = ta
				}
			}
			done := specDone(d, slowPart)
			if orig == nil || cp == nil || len(tas) != 2 || done != parts-1 {
				return false, fmt.Sprintf("%d of %d other partitions done; partition %d: %s", done, parts-1, slowPart, specAttempts(tas))
			}
			run, sum := specRunning(t, c, "e1", "e2")
			return run[orig.Executor] == 1 && run[cp.Executor] == 1 && sum == 2, fmt.Sprintf("executors run %v; partition %d: %s", run, slowPart, specAttempts(tas))
		})
		if orig.Attempt != 0 || cp.Attempt == 0 || orig.Executor == cp.Executor {
			t.Fatalf("round %d: straggler %s, copy %s: want attempt 0 and a later attempt on another executor", round, specAttempt(orig), specAttempt(cp))
		}
		launched := specLaunches(t, c, id, "e1", "e2")

		c.kill(leader)
		next, _ := c.waitLeader(leader)

		// The new leader adopts both: each running, nothing ended.
		specWait(t, fmt.Sprintf("new leader %s to adopt the straggler (task %d) and its copy (task %d)", next, orig.Task, cp.Task), func() (bool, string) {
			d, err := nodes[next].Stage(ctx, stage)
			if err != nil {
				return false, err.Error()
			}
			tas := specOf(d, slowPart)
			running := map[uint64]bool{}
			for _, ta := range tas {
				if ta.State != "running" {
					t.Fatalf("round %d: after the kill of %s, new leader %s ended an attempt of partition %d before its copy could finish (the gate was shut): %s",
						round, leader, next, slowPart, specAttempts(tas))
				}
				running[ta.Task] = true
			}
			return len(running) == 2 && running[orig.Task] && running[cp.Task], specAttempts(tas)
		})
		run, _ := specRunning(t, c, "e1", "e2")
		if run[orig.Executor] != 1 || run[cp.Executor] != 1 {
			t.Fatalf("round %d: after the adoption the executors run %v: want the straggler on %s and the copy on %s", round, run, orig.Executor, cp.Executor)
		}

		// The copy may finish now.
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		specSucceeded(t, ctx, cl, id, round, parts*10)

		// The copy won; the straggler was killed after it; nothing ran
		// again.
		tas, ends := specSettled(t, ctx, nodes[next], next, stage, slowPart, round, func(ends map[uint64]*api.TaskAttempt, running int) bool {
			return ends[orig.Task] != nil && ends[cp.Task] != nil && running == 0
		})
		if len(ends) != 2 {
			t.Fatalf("round %d: partition %d had attempts %s: want only the straggler (task %d) and its copy (task %d)", round, slowPart, specAttempts(tas), orig.Task, cp.Task)
		}
		won, lost := ends[cp.Task], ends[orig.Task]
		if won.State != "success" || !won.Speculative || won.Executor != cp.Executor || won.Ignored != "" {
			t.Fatalf("round %d: the copy ended %s: want a registered success, speculative, on %s", round, specAttempt(won), cp.Executor)
		}
		if lost.State != "killed" || lost.Speculative || lost.Executor != orig.Executor {
			t.Fatalf("round %d: the straggler ended %s: want killed on %s", round, specAttempt(lost), orig.Executor)
		}
		if lost.EndedUnixNano < won.EndedUnixNano {
			t.Fatalf("round %d: the straggler's end (%d) was logged before the copy's success (%d): it was killed before the copy won", round, lost.EndedUnixNano, won.EndedUnixNano)
		}
		specWait(t, "the executors to run nothing", func() (bool, string) {
			run, sum := specRunning(t, c, "e1", "e2")
			return sum == 0, fmt.Sprint(run)
		})
		if n := specLaunches(t, c, id, "e1", "e2"); n != launched {
			t.Fatalf("round %d: the executors accepted %d launches of the job, %d before the kill: the new leader launched tasks again", round, n, launched)
		}
		t.Logf("round %d: straggler on %s, copy on %s; leader %s killed, %s adopted both; the copy won; %d launches; %v",
			round, orig.Executor, cp.Executor, leader, next, launched, time.Since(began).Round(time.Millisecond))
		cancel()
		specRejoin(t, c, leader)
	}
}

// TestSpeculationSurvivesALeaderKill: the leader is SIGKILLed with 7 of 8
// results logged and the eighth (partition 7, chaos.sleep 10 minutes on
// attempt 0) still running on e1, the only executor, so the dead leader
// could not copy it. e2 joins after the kill. The new leader knows the
// seven durations (they are in the log) and how long the straggler has
// run (e1's hello says), so it copies the straggler onto e2: the copy,
// launched in a later term, wins, the straggler is killed, and the job
// returns the exact count with no task run again. (Before 2889dc4, a new
// leader knew no durations, never copied the straggler, and the job
// waited for it.)
func TestSpeculationSurvivesALeaderKill(t *testing.T) {
	const parts, slowPart = 8, 7
	c := newCluster(t, 3, "-executor-timeout", "2s", "-heartbeat-interval", "200ms", "-speculation", "-speculation-min-runtime", "200ms")
	t.Cleanup(c.stopExecs)
	c.waitLeader("")
	c.startExec("e1")
	cl := c.client()
	nodes := map[string]*client.Client{}
	for _, id := range c.order {
		nodes[id] = c.client(id)
	}
	alive := func(want string) func() (bool, string) {
		return func() (bool, string) {
			ex, err := cl.Executors(context.Background())
			if err != nil {
				return false, err.Error()
			}
			var ids []string
			for _, e := range ex {
				if e.Alive {
					ids = append(ids, e.Id)
				}
			}
			sort.Strings(ids)
			got := strings.Join(ids, ",")
			return got == want, "alive: " + got
		}
	}
	specWait(t, "e1 alone", alive("e1"))
	for round := range failoverRounds() {
		began := time.Now()
		p := sleepJob(t, "speculated-"+strconv.Itoa(round), parts, 100, "")
		p.Datasets["slow"] = &plan.Dataset{Op: "mapPartitions", Input: "s", Fn: &plan.Func{Name: "chaos.sleep", Args: []byte(fmt.Sprintf(`{"ms": 600000, "partitions": [%d], "attempts": 1}`, slowPart))}}
		p.Action.Input = "slow"
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // the straggler sleeps 10 minutes
		defer cancel()
		id, err := cl.Submit(ctx, p, client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stage := specStageOf(t, ctx, cl, id)
		leader, _ := c.waitLeader("")

		var orig *api.TaskAttempt
		specWait(t, "7 of 8 results logged and the straggler running on e1", func() (bool, string) {
			j, err := cl.Job(ctx, id, false)
			if err != nil {
				return false, err.Error()
			}
			d, err := nodes[leader].Stage(ctx, stage)
			if err != nil {
				return false, err.Error()
			}
			tas := specOf(d, slowPart)
			for _, ta := range tas {
				if ta.State != "running" || ta.Speculative {
					t.Fatalf("round %d: partition %d before the kill: %s", round, slowPart, specAttempts(tas))
				}
			}
			run, _ := specRunning(t, c, "e1")
			what := fmt.Sprintf("%d successes; e1 runs %d; partition %d: %s", j.TaskSuccesses, run["e1"], slowPart, specAttempts(tas))
			if j.TaskSuccesses != parts-1 || specDone(d, slowPart) != parts-1 || len(tas) != 1 || run["e1"] != 1 {
				return false, what
			}
			orig = tas[0]
			return true, what
		})
		if orig.Attempt != 0 || orig.Executor != "e1" {
			t.Fatalf("round %d: the straggler is %s: want attempt 0 on e1", round, specAttempt(orig))
		}
		term := nodeTerm(t, c, leader)

		c.kill(leader)
		c.startExec("e2")
		next, _ := c.waitLeader(leader)
		specWait(t, fmt.Sprintf("new leader %s to copy the straggler (task %d) onto e2", next, orig.Task), func() (bool, string) {
			d, err := nodes[next].Stage(ctx, stage)
			if err != nil {
				return false, err.Error()
			}
			tas := specOf(d, slowPart)
			for _, ta := range tas {
				if ta.Task != orig.Task && ta.Speculative && ta.Executor == "e2" {
					return true, ""
				}
			}
			return false, specAttempts(tas)
		})

		j := specSucceeded(t, ctx, cl, id, round, parts*10)

		tas, ends := specSettled(t, ctx, nodes[next], next, stage, slowPart, round, func(ends map[uint64]*api.TaskAttempt, running int) bool {
			return ends[orig.Task] != nil && len(ends) >= 2 && running == 0
		})
		if len(ends) != 2 {
			t.Fatalf("round %d: partition %d had attempts %s: want the straggler (task %d) and one copy", round, slowPart, specAttempts(tas), orig.Task)
		}
		var won *api.TaskAttempt
		for task, ta := range ends {
			if task != orig.Task {
				won = ta
			}
		}
		lost := ends[orig.Task]
		if won.State != "success" || !won.Speculative || won.Executor != "e2" || won.Ignored != "" {
			t.Fatalf("round %d: the partition's other attempt ended %s: want a registered speculative success on e2", round, specAttempt(won))
		}
		if lost.State != "killed" || lost.Executor != "e1" {
			t.Fatalf("round %d: the straggler ended %s: want killed on e1", round, specAttempt(lost))
		}
		if lost.EndedUnixNano < won.EndedUnixNano {
			t.Fatalf("round %d: the straggler's end was logged before the copy's success: it was killed before the copy won", round)
		}
		// The copy was launched after the kill, by a later term; nothing
		// else ran again.
		st := execStatsOf(t, c, "e1", "e2")
		if st[1].LaunchesByJob[id] != 1 || len(st[1].FirstLaunchByTerm) == 0 {
			t.Fatalf("round %d: e2 accepted %d launches of the job: want the copy alone", round, st[1].LaunchesByJob[id])
		}
		for tm := range st[1].FirstLaunchByTerm {
			if tm <= term {
				t.Fatalf("round %d: e2 (started after the kill of %s, term %d) accepted a launch of term %d", round, leader, term, tm)
			}
		}
		if st[0].LaunchesByJob[id] != parts {
			t.Fatalf("round %d: e1 accepted %d launches of the job: want its %d first attempts and no more", round, st[0].LaunchesByJob[id], parts)
		}
		if j.TaskSuccesses != parts {
			t.Fatalf("round %d: %d task successes for %d tasks", round, j.TaskSuccesses, parts)
		}
		specWait(t, "the executors to run nothing", func() (bool, string) {
			run, sum := specRunning(t, c, "e1", "e2")
			return sum == 0, fmt.Sprint(run)
		})
		t.Logf("round %d: leader %s (term %d) killed at %d of %d results; %s copied the straggler onto e2 as attempt %d and it won; %v",
			round, leader, term, parts-1, parts, next, won.Attempt, time.Since(began).Round(time.Millisecond))
		cancel()

		// e2 goes again, so that the next round's leader has e1 alone.
		c.signalExec("e2", syscall.SIGKILL)
		specWait(t, "e2 lost", alive("e1"))
		specRejoin(t, c, leader)
	}
}
