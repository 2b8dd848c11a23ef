package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// savePlan is a word count saved as text files; sleepMS slows every result
// task down so a kill lands while tasks write and commit.
func savePlan(glob, out string, sleepMS int) *plan.Plan {
	p := slowWordCount(glob, sleepMS)
	p.Name = "save"
	p.Action = plan.Action{Op: "saveAsTextFile", Input: "out", Path: out}
	return p
}

// readOutput reads a saveAsTextFile directory: the word counts in its part
// files, checking no word is written twice, and the part names.
func readOutput(t *testing.T, dir string) (map[string]int, []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if !strings.HasPrefix(e.Name(), "part-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if line == "" {
				continue
			}
			k, v, ok := strings.Cut(line, "\t")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				t.Fatalf("%s: line %q is not word<TAB>count", e.Name(), line)
			}
			if _, dup := got[k]; dup {
				t.Fatalf("%s: %q written twice", e.Name(), k)
			}
			got[k] = n
		}
	}
	sort.Strings(names)
	return got, names
}

// checkSaved checks a finished saveAsTextFile: one part file a partition,
// _SUCCESS, no temporary files left, and the exact counts.
func checkSaved(t *testing.T, out string, parts int, want map[string]int) {
	t.Helper()
	got, names := readOutput(t, out)
	wantNames := []string{"_SUCCESS"}
	for i := 0; i < parts; i++ {
		wantNames = append(wantNames, fmt.Sprintf("part-%05d", i))
	}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Fatalf("output directory holds %v, want %v", names, wantNames)
	}
	sameCounts(t, got, want)
}

// TestSaveAsTextFile: the output directory holds a part file a partition
// and _SUCCESS; the answer is the number of records written; an existing
// output directory and a relative path are refused.
func TestSaveAsTextFile(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	dir := t.TempDir()
	want := genText(t, dir, 4, 500, 21)
	out := filepath.Join(t.TempDir(), "out")
	p := savePlan(filepath.Join(dir, "*.txt"), out, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	recs, err := cl.Run(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Value) != strconv.Itoa(len(want)) {
		t.Errorf("answer %v, want the %d records written", recs, len(want))
	}
	checkSaved(t, out, 4, want)

	_, err = cl.Submit(ctx, p, client.SubmitOptions{})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("saving into a non-empty directory: %v, want AlreadyExists", err)
	}
	p.Action.Path = "relative/out"
	_, err = cl.Submit(ctx, p, client.SubmitOptions{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("saving into a relative path: %v, want InvalidArgument", err)
	}
}

// TestSaveAsTextFileExactlyOnce kills the leader, then an executor, while
// result tasks write and ask to commit: every partition is in the output
// once, whole, with nothing left in _temporary.
func TestSaveAsTextFileExactlyOnce(t *testing.T) {
	for _, kill := range []string{"leader", "executor"} {
		t.Run(kill, func(t *testing.T) {
			c, cl := slowCluster(t)
			dir := t.TempDir()
			want := genText(t, dir, 8, 1500, 22)
			out := filepath.Join(t.TempDir(), "out")
			p := savePlan(filepath.Join(dir, "*.txt"), out, 300)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			id, err := cl.Submit(ctx, p, client.SubmitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Wait until attempts are writing under _temporary.
			waitFor(t, "result tasks to write", func() bool {
				e, err := os.ReadDir(filepath.Join(out, "_temporary", fmt.Sprint(id)))
				return err == nil && len(e) > 0
			})
			var victim *localcluster.Proc
			switch kill {
			case "leader":
				leader, term, err := c.Leader(ctx)
				if err != nil {
					t.Fatal(err)
				}
				victim = leader
				if err := c.Kill(leader); err != nil {
					t.Fatal(err)
				}
				if _, err := c.WaitLeader(ctx, leader, term); err != nil {
					t.Fatal(err)
				}
			case "executor":
				victim = c.Execs[0]
				if err := c.Kill(victim); err != nil {
					t.Fatal(err)
				}
			}
			j, err := cl.Wait(ctx, id, nil)
			if err != nil {
				t.Fatal(err)
			}
			if j.State != api.JobState_JOB_STATE_SUCCEEDED {
				t.Fatalf("job %s: %s", j.State, j.Message)
			}
			checkSaved(t, out, 4, want)
			// The new leader finishes the commit after a leader kill; the
			// restarted process must not undo it.
			if err := c.Restart(victim); err != nil {
				t.Fatal(err)
			}
			recs, err := cl.Answer(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || string(recs[0].Value) != strconv.Itoa(len(want)) {
				t.Errorf("answer %v, want %d records written", recs, len(want))
			}
			checkSaved(t, out, 4, want)
		})
	}
}

// TestTakeReadsFewPartitions: take(n) reads one partition first and more
// only when it must (Spark's take), and finds records in late partitions.
func TestTakeReadsFewPartitions(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	parse := func(src string) *plan.Plan {
		p, err := plan.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tasksRun := func() int64 {
		jobs, err := cl.Jobs(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, j := range jobs {
			n += j.TaskSuccesses
		}
		return n
	}
	// Plenty in the first partition: one job of one task.
	before := tasksRun()
	recs, err := cl.Run(ctx, parse(`{"datasets": {"r": {"op": "range", "n": 1000, "partitions": 20}},
		"action": {"op": "take", "input": "r", "n": 5}}`), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatAll(recs); got != "0 1 2 3 4" {
		t.Errorf("take 5 = %q", got)
	}
	if n := tasksRun() - before; n != 1 {
		t.Errorf("take 5 of a full first partition ran %d tasks, want 1", n)
	}
	before = tasksRun()
	// Only the last partitions hold records: the jobs grow 1, 4, 20 ...
	// and stop at the partition count.
	recs, err = cl.Run(ctx, parse(`{"datasets": {"r": {"op": "range", "n": 1000, "partitions": 20},
		"late": {"op": "filter", "input": "r", "fn": {"name": "atLeast", "args": {"n": 980}}}},
		"action": {"op": "take", "input": "late", "n": 3}}`), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatAll(recs); got != "980 981 982" {
		t.Errorf("take 3 of the last partition = %q", got)
	}
	if n := tasksRun() - before; n != 1+1+4+14 {
		t.Errorf("take 3 of the last partition ran %d tasks, want 1 + 1, 4, 14 (the jobs grow fourfold up to the 20 partitions)", n)
	}
	before = tasksRun()
	// More than there is: every partition read, every record returned.
	recs, err = cl.Run(ctx, parse(`{"datasets": {"r": {"op": "range", "n": 7, "partitions": 3}},
		"action": {"op": "take", "input": "r", "n": 100}}`), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatAll(recs); got != "0 1 2 3 4 5 6" {
		t.Errorf("take 100 of 7 = %q", got)
	}
}

func formatAll(recs []ops.Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, ops.FormatRecord(r))
	}
	return strings.Join(out, " ")
}

func debugDir(t *testing.T) string {
	if d := os.Getenv("BATON_DEBUG_DIR"); d != "" {
		os.RemoveAll(d)
		return d
	}
	return t.TempDir()
}

// TestSaveAsTextFileCommitterDies: the executor the leader authorised to
// commit a partition dies before its rename (the worst moment). The
// authorisation is freed when the executor is declared lost, another
// attempt commits the partition, and the output is whole and exact.
func TestSaveAsTextFileCommitterDies(t *testing.T) {
	c := newCluster(t, 3, "-executor-timeout", "2s", "-heartbeat-interval", "200ms")
	t.Cleanup(c.stopExecs)
	c.waitLeader("")
	// Whichever executor runs partition 1 first exits after its commit is
	// authorised.
	c.startExec("e1", "-chaos-exit-before-rename", "1")
	c.startExec("e2", "-chaos-exit-before-rename", "1")
	cl := c.client()
	waitFor(t, "two executors", func() bool {
		ex, err := cl.Executors(context.Background())
		alive := 0
		for _, e := range ex {
			if e.Alive {
				alive++
			}
		}
		return err == nil && alive == 2
	})
	dir := t.TempDir()
	want := genText(t, dir, 4, 800, 23)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, savePlan(filepath.Join(dir, "*.txt"), out, 0), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v", j.GetState(), err)
	}
	dead := 0
	for _, e := range c.execs {
		select {
		case <-e.done:
			dead++
		default:
		}
	}
	if dead != 1 {
		t.Fatalf("%d executors exited; want the one authorised to commit partition 1", dead)
	}
	checkSaved(t, out, 4, want)
}

// TestSaveAsTextFileCancelled: cancelling a save job while its attempts
// write leaves no temporary files and no _SUCCESS (Spark's abortJob).
func TestSaveAsTextFileCancelled(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	dir := t.TempDir()
	genText(t, dir, 4, 500, 24)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, savePlan(filepath.Join(dir, "*.txt"), out, 60_000), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "result tasks to write", func() bool {
		e, err := os.ReadDir(filepath.Join(out, "_temporary", fmt.Sprint(id)))
		return err == nil && len(e) > 0
	})
	if err := cl.Cancel(ctx, id, "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the temporary files to go", func() bool {
		_, err := os.Stat(filepath.Join(out, "_temporary"))
		return os.IsNotExist(err)
	})
	if _, err := os.Stat(filepath.Join(out, "_SUCCESS")); !os.IsNotExist(err) {
		t.Errorf("a cancelled job's output has _SUCCESS: %v", err)
	}
}

// TestCommitterAndLeaderDieTogether: the executor authorised to commit a
// partition and the leader die at once, and the executor is back before
// -executor-timeout. The new leader never launched that attempt and the
// executor's hello no longer lists it: the authorisation used to be held
// forever (every new attempt denied, thousands of denials logged, no end).
// Now the vanished attempt is ended, its authorisation freed, and the job
// finishes whole.
func TestCommitterAndLeaderDieTogether(t *testing.T) {
	c := newCluster(t, 3, "-executor-timeout", "60s", "-heartbeat-interval", "200ms")
	t.Cleanup(c.stopExecs)
	c.waitLeader("")
	c.startExec("e1", "-chaos-exit-before-rename", "1")
	c.startExec("e2", "-chaos-exit-before-rename", "1")
	cl := c.client()
	waitFor(t, "two executors", func() bool {
		ex, err := cl.Executors(context.Background())
		alive := 0
		for _, e := range ex {
			if e.Alive {
				alive++
			}
		}
		return err == nil && alive == 2
	})
	dir := t.TempDir()
	want := genText(t, dir, 4, 800, 29)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, savePlan(filepath.Join(dir, "*.txt"), out, 0), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The moment the committer exits, the leader goes too; the executor
	// comes straight back, long before its timeout.
	var dead string
	waitFor(t, "the authorised committer to exit", func() bool {
		for name, e := range c.execs {
			select {
			case <-e.done:
				dead = name
				return true
			default:
			}
		}
		return false
	})
	leader, _ := c.waitLeader("")
	c.kill(leader)
	c.execs[dead].cmd = nil
	// (Without the chaos flag: the new leader numbers attempts afresh,
	// and the flag would make this one exit again.)
	c.startExec(dead)
	c.waitLeader(leader)
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v %s", j.GetState(), err, j.GetMessage())
	}
	checkSaved(t, out, 4, want)
}
