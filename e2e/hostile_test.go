package e2e

// Hostile input: requests, plans and files that must be refused with a
// clear error and change nothing, on real processes.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// lastIndex returns a node's last log index, once its driver leads and
// its takeover record is logged (so the index stands still).
func settledIndex(t *testing.T, c *cluster, cl *client.Client, leader string) uint64 {
	t.Helper()
	var idx uint64
	waitFor(t, "the leader's driver and its takeover record", func() bool {
		st, err := c.nodeStatus(leader)
		if err != nil || !st.Driving {
			return false
		}
		peers, err := cl.Peers(context.Background())
		if err != nil {
			return false
		}
		for _, p := range peers {
			if p.ApiAddr == "" {
				return false
			}
		}
		hist, err := cl.LeaderHistory(context.Background())
		if err != nil || len(hist) == 0 || hist[len(hist)-1].Term != st.Term {
			return false
		}
		st, err = c.nodeStatus(leader)
		if err != nil {
			return false
		}
		idx = st.LastIndex
		return true
	})
	return idx
}

// TestPoisonPlansAreRefusedAndEveryReplicaLives: a plan asking for a
// billion partitions used to be logged and then kill every replica (out
// of memory applying it, again at every restart). Plans past each
// admission limit are refused with the limit's name and flag, counts that
// do not fit are refused rather than truncated, and nothing is logged.
func TestPoisonPlansAreRefusedAndEveryReplicaLives(t *testing.T) {
	c := newCluster(t, 3, "-max-plan-datasets", "5", "-max-inline-records", "10", "-max-fn-arg-bytes", "100",
		"-max-plan-bytes", "20000", "-max-pending-jobs", "2")
	leader, _ := c.waitLeader("")
	cl := c.client()
	before := settledIndex(t, c, cl, leader)
	dir := t.TempDir()
	many := func(n int) string {
		var recs []string
		for i := 0; i < n; i++ {
			recs = append(recs, fmt.Sprintf("%q", fmt.Sprint("record-", i)))
		}
		return strings.Join(recs, ",")
	}
	var datasets []string
	for i := 0; i < 6; i++ {
		datasets = append(datasets, fmt.Sprintf(`"d%d": {"op": "range", "n": 1, "partitions": 1}`, i))
	}
	for _, tc := range []struct{ name, plan, want string }{
		{"a billion partitions", `{"name":"x","datasets":{"r":{"op":"range","n":1,"partitions":1000000000}},"action":{"op":"count","input":"r"}}`,
			"tasks per job: 1,000,000,000 is over the limit of 1,000,000 (schedd -max-job-tasks)"},
		{"partitions past 32 bits", `{"datasets":{"r":{"op":"range","n":1,"partitions":4294967297}},"action":{"op":"count","input":"r"}}`,
			"partitions 4294967297 out of range (at most 2147483647)"},
		{"ten billion partitions", `{"datasets":{"r":{"op":"range","n":1,"partitions":10000000000}},"action":{"op":"count","input":"r"}}`,
			"partitions 10000000000 out of range"},
		{"a billion reducers", `{"datasets":{"r":{"op":"range","n":10,"partitions":2},"k":{"op":"map","input":"r","fn":"pairWithOne"},"g":{"op":"groupByKey","input":"k","partitions":999999999}},"action":{"op":"count","input":"g"}}`,
			"tasks per job: 999,999,999 is over the limit"},
		{"too many datasets", `{"datasets":{` + strings.Join(datasets, ",") + `},"action":{"op":"count","input":"d0"}}`,
			"datasets per plan: 6 is over the limit of 5 (schedd -max-plan-datasets)"},
		{"too many inline records", `{"datasets":{"p":{"op":"parallelize","partitions":1,"records":[` + many(11) + `]}},"action":{"op":"count","input":"p"}}`,
			"inline records per plan: 11 is over the limit of 10 (schedd -max-inline-records)"},
		{"a plan too large", `{"datasets":{"p":{"op":"parallelize","partitions":1,"records":["` + strings.Repeat("x", 30000) + `"]}},"action":{"op":"count","input":"p"}}`,
			"is over the limit of 20000 plan bytes (schedd -max-plan-bytes)"},
		{"function arguments too large", `{"datasets":{"r":{"op":"range","n":3,"partitions":1},"f":{"op":"map","input":"r","fn":{"name":"field","args":{"i":1,"sep":"` + strings.Repeat(",", 200) + `"}}}},"action":{"op":"count","input":"f"}}`,
			"function argument bytes: 216 is over the limit of 100 (schedd -max-fn-arg-bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(f, []byte(tc.plan), 0o644); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := batonctl(t, "-addr", c.nodes[leader].apiAddr, "submit", "-f", f)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("submit: exit %d, stderr %q; want a refusal saying %q", code, stderr, tc.want)
			}
		})
	}
	c.checkAlive()
	st, err := c.nodeStatus(leader)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastIndex != before {
		t.Fatalf("refused plans reached the log: last index %d -> %d", before, st.LastIndex)
	}

	// Pending jobs: with no executor, jobs stay running; the third is
	// refused until one ends.
	p, err := plan.Parse([]byte(`{"datasets":{"r":{"op":"range","n":1,"partitions":1}},"action":{"op":"count","input":"r"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := 0; i < 2; i++ {
		id, err := cl.Submit(context.Background(), p, client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := cl.Submit(context.Background(), p, client.SubmitOptions{}); err == nil || !strings.Contains(err.Error(), "(schedd -max-pending-jobs)") {
		t.Fatalf("third pending job: %v, want a refusal naming -max-pending-jobs", err)
	}
	if err := cl.Cancel(context.Background(), ids[0], "make room"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Submit(context.Background(), p, client.SubmitOptions{}); err != nil {
		t.Fatalf("a job once another ended: %v", err)
	}
	c.checkAlive()
	// Every replica has the same, sane state.
	for _, id := range c.order {
		var jobs []*api.Job
		waitFor(t, "node "+id+" to hold the three jobs", func() bool {
			cln := c.client(id)
			var err error
			jobs, err = cln.Jobs(context.Background(), false)
			return err == nil && len(jobs) == 3
		})
	}
}

// followerOf returns a live node that is not the leader.
func followerOf(c *cluster, leader string) string {
	for _, id := range c.order {
		if id != leader && c.nodes[id].cmd != nil {
			return id
		}
	}
	return ""
}

// waitExit waits for a node's process to exit by itself and returns its
// log.
func waitExit(t *testing.T, c *cluster, id string) string {
	t.Helper()
	nd := c.nodes[id]
	select {
	case <-nd.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s did not stop", id)
	}
	nd.cmd = nil
	b, _ := os.ReadFile(filepath.Join(c.root, id+".log"))
	return string(b)
}

// TestChangedByteInTheLogStopsTheNode: one byte changed in a stopped
// follower's raft.db ({"n":7} became {"n":9} in a job's graph) used to be
// replayed silently, and made leader that node answered wrong. Every log
// entry now carries a checksum, verified at apply: the node stops with an
// error naming the entry, and the others go on with the right answer.
func TestChangedByteInTheLogStopsTheNode(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	p, err := plan.Parse([]byte(`{"datasets":{"r":{"op":"range","n":7,"partitions":3}},"action":{"op":"count","input":"r"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := countJob(t, cl, p); n != 7 {
		t.Fatalf("count = %d, want 7", n)
	}
	leader, _ := c.waitLeader("")
	victim := followerOf(c, leader)
	// The follower must hold the entry before it stops.
	waitFor(t, "the follower to apply the job", func() bool {
		jobs, err := c.client(victim).Jobs(context.Background(), false)
		return err == nil && len(jobs) == 1
	})
	c.term(victim)
	db := filepath.Join(c.nodes[victim].dir, "raft", "raft.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// (bbolt's copy-on-write may leave an old copy of the page in a free
	// one: change every copy.)
	if n := bytes.Count(b, []byte(`{"n":7}`)); n == 0 {
		t.Fatal(`{"n":7} is not in raft.db`)
	}
	b = bytes.ReplaceAll(b, []byte(`{"n":7}`), []byte(`{"n":9}`))
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	out := waitExit(t, c, victim)
	if !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "log entry") || strings.Contains(out, "goroutine ") {
		t.Fatalf("node %s stopped without a clear error naming the entry:\n%s", victim, tail(out, 10))
	}
	// The others are unharmed and still answer right.
	if n := countJob(t, cl, p); n != 7 {
		t.Fatalf("count after the corrupt node stopped = %d, want 7", n)
	}
	c.checkAlive()
}

// TestTruncatedLogIsAClearError: a raft.db cut short stops schedd at start
// with what to do, not a bbolt assertion's stack trace.
func TestTruncatedLogIsAClearError(t *testing.T) {
	c := newCluster(t, 3)
	leader, _ := c.waitLeader("")
	cl := c.client()
	settledIndex(t, c, cl, leader)
	victim := followerOf(c, leader)
	c.term(victim)
	db := filepath.Join(c.nodes[victim].dir, "raft", "raft.db")
	if err := os.Truncate(db, 3*4096); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	out := waitExit(t, c, victim)
	if !strings.Contains(out, "the Raft log store is damaged") || !strings.Contains(out, "join the quorum again") || strings.Contains(out, "goroutine ") {
		t.Fatalf("node %s did not stop with a clear error:\n%s", victim, tail(out, 10))
	}
	if ee, ok := c.nodes[victim].exit.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1", c.nodes[victim].exit)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// countJob runs a count job and returns its answer.
func countJob(t *testing.T, cl *client.Client, p *plan.Plan) int {
	t.Helper()
	j, recs := runJob(t, cl, p, client.SubmitOptions{})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %d: %v %s", j.Id, j.State, j.Message)
	}
	n := 0
	for _, r := range recs {
		v, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}

// tinyDisk mounts a tmpfs of mb MiB (root only: skipped elsewhere).
func tinyDisk(t *testing.T, mb int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mb), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestFullExecutorDisk: an executor whose disk fills used to stall its map
// tasks, log the same error hundreds of times a second and die in a Pebble
// panic. Now a write that does not fit fails its task with the reason (it
// runs elsewhere), the executor stays up and says it is unhealthy (so it
// gets no tasks), and once space returns it works again.
func TestFullExecutorDisk(t *testing.T) {
	disk := tinyDisk(t, 48)
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, 30<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 3, "-executor-timeout", "3s", "-heartbeat-interval", "200ms")
	t.Cleanup(c.stopExecs)
	c.waitLeader("")
	c.execs = map[string]*execNode{"e1": {name: "e1", dir: filepath.Join(disk, "exec-e1"), addr: freePort(t)}}
	c.startExec("e1", "-min-free-disk", "8MiB")
	c.startExec("e2")
	cl := c.client()
	alive := func() map[string]*api.Executor {
		out := map[string]*api.Executor{}
		ex, _ := cl.Executors(context.Background())
		for _, e := range ex {
			if e.Alive {
				out[e.Id] = e
			}
		}
		return out
	}
	waitFor(t, "two executors", func() bool { return len(alive()) == 2 })
	blobs := func(n, size int) *plan.Plan {
		p, err := plan.Parse([]byte(fmt.Sprintf(`{"datasets":{"r":{"op":"range","n":%d,"partitions":%d},
			"b":{"op":"mapPartitions","input":"r","fn":{"name":"chaos.blob","args":{"bytes":%d}}},
			"g":{"op":"repartition","input":"b","partitions":2}},"action":{"op":"count","input":"g"}}`, n, n, size)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// 8 map outputs of 3 MB: e1 has room for about two.
	if n := countJob(t, cl, blobs(8, 3_000_000)); n != 8 {
		t.Fatalf("count = %d, want 8", n)
	}
	c.checkAlive()
	select {
	case <-c.execs["e1"].done:
		t.Fatal("the executor with the full disk exited")
	default:
	}
	var sick *api.Executor
	waitFor(t, "e1 to say it is unhealthy", func() bool {
		sick = alive()["e1"]
		return sick != nil && strings.Contains(sick.Unhealthy, "no space left on device")
	})
	out, _, code := batonctl(t, "-addr", c.nodes[c.order[0]].apiAddr, "executors")
	if code != 0 || !strings.Contains(out, "executor e1 is unhealthy and gets no tasks: no space left on device") {
		t.Fatalf("batonctl executors (exit %d):\n%s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(c.root, "exec-e1.log"))
	if n := strings.Count(string(b), "no space left"); n > 10 {
		t.Fatalf("e1 logged %q %d times:\n%s", "no space left", n, tail(string(b), 20))
	}
	// Space returns: e1 is healthy again and runs a job alone.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "e1 to be healthy again", func() bool {
		e := alive()["e1"]
		return e != nil && e.Unhealthy == ""
	})
	c.signalExec("e2", syscall.SIGKILL)
	waitFor(t, "e2 to be lost", func() bool { _, ok := alive()["e2"]; return !ok })
	if n := countJob(t, cl, blobs(4, 200_000)); n != 4 {
		t.Fatalf("count on e1 alone = %d, want 4", n)
	}
}

// TestLaggingMemberNeverSaysNotFound: a member whose replica is behind
// (here: restarted, not yet caught up) used to answer that an existing job
// did not exist. A read that names an object now catches up with the
// leader before it says "not found"; until it can tell, it says to retry.
func TestLaggingMemberNeverSaysNotFound(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	leader, _ := c.waitLeader("")
	lagger := followerOf(c, leader)
	c.kill(lagger)
	p, err := plan.Parse([]byte(`{"datasets":{"r":{"op":"range","n":5,"partitions":2}},"action":{"op":"count","input":"r"}}`))
	if err != nil {
		t.Fatal(err)
	}
	// Jobs run for a few seconds while it is down: the replica has
	// entries to catch up on, and the leader's retries to reach it have
	// backed off (it hears from the leader a while after it is back).
	var id uint64
	for start := time.Now(); time.Since(start) < 5*time.Second; {
		j, _ := runJob(t, cl, p, client.SubmitOptions{})
		id = j.Id
	}
	c.start(lagger)
	addr := c.nodes[lagger].apiAddr
	deadline := time.Now().Add(20 * time.Second)
	answered := 0
	for time.Now().Before(deadline) && answered < 20 {
		one, err := c.dialOne(addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, jerr := one.Job(ctx, id, false)
		recs, cerr := one.Collect(ctx, id)
		cancel()
		one.Close()
		for _, err := range []error{jerr, cerr} {
			if err != nil && status.Code(err) == codes.NotFound {
				t.Fatalf("the lagging member says job %d does not exist: %v", id, err)
			}
		}
		if jerr == nil && cerr == nil {
			if len(recs) != 2 {
				t.Fatalf("results: %v", recs)
			}
			answered++
		}
	}
	if answered == 0 {
		t.Fatal("the restarted member never answered")
	}
}
