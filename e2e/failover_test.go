package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/baton-sched/baton/tlsconf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/drill"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
)

// runDrill runs a drill on real processes and checks every answer is
// exact and no task ran again because of a scheduler failover.
func runDrill(t *testing.T, opts drill.Options) *drill.Report {
	t.Helper()
	opts.Bin = binDir
	// Kept when the drill fails: the processes' logs say what happened.
	dir, err := os.MkdirTemp("", "baton-e2e-drill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the drill's files are kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	opts.Dir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := drill.Run(ctx, opts)
	if rep != nil {
		var b strings.Builder
		rep.Print(&b)
		t.Logf("drill report:\n%s", b.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rounds {
		if !r.Exact || r.Error != "" {
			t.Errorf("round %d (%s, %s at %s): exact %t, error %q", r.N, r.Job, r.Target, r.At, r.Exact, r.Error)
		}
		if r.RerunFailover != 0 {
			t.Errorf("round %d (%s, %s at %s): %d tasks ran again because of the failover", r.N, r.Job, r.Target, r.At, r.RerunFailover)
		}
	}
	return rep
}

func TestLeaderKilledDuringEachStage(t *testing.T) {
	for _, at := range []string{"map", "reduce", "collect"} {
		t.Run(at, func(t *testing.T) {
			rep := runDrill(t, drill.Options{Rounds: 2, Kill: "leader", At: at, Seed: 1})
			for _, r := range rep.Rounds {
				if r.NewLeader == "" || r.NewLeader == strings.TrimPrefix(r.Target, "leader ") {
					t.Errorf("round %d: no new leader after killing %s", r.N, r.Target)
				}
			}
		})
	}
}

func TestFollowerAndExecutorKilled(t *testing.T) {
	t.Run("follower", func(t *testing.T) {
		runDrill(t, drill.Options{Rounds: 2, Kill: "follower", At: "random", Seed: 2})
	})
	t.Run("executor", func(t *testing.T) {
		rep := runDrill(t, drill.Options{Rounds: 2, Kill: "executor", At: "reduce", Seed: 3})
		lost := int64(0)
		for _, r := range rep.Rounds {
			lost += r.RerunDataLoss
		}
		if lost == 0 {
			t.Errorf("killing executors mid-reduce recomputed nothing: the kills did not take data away")
		}
	})
}

// slowCluster starts 3 schedd and 2 execd and a slow word count.
func slowCluster(t *testing.T, sched ...string) (*localcluster.Cluster, *client.Client) {
	t.Helper()
	c, err := localcluster.Start(context.Background(), localcluster.Options{Bin: binDir, Dir: debugDir(t),
		SchedFlags: append([]string{"-heartbeat-interval", "200ms", "-executor-timeout", "10s"}, sched...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl
}

func slowWordCount(glob string, sleepMS int) *plan.Plan {
	return wordCountPlan(glob, fmt.Sprintf(`,
		"out": {"op": "mapPartitions", "input": "counts", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}}`, sleepMS))
}

func execStats(t *testing.T, c *localcluster.Cluster) []*api.ExecutorStats {
	t.Helper()
	var out []*api.ExecutorStats
	for _, p := range c.Execs {
		out = append(out, statsAt(t, p.Name, p.Addr))
	}
	return out
}

// execStatsOf returns the stats of some executors of a test cluster.
func execStatsOf(t *testing.T, c *cluster, names ...string) []*api.ExecutorStats {
	t.Helper()
	var out []*api.ExecutorStats
	for _, n := range names {
		out = append(out, statsAt(t, n, c.execs[n].addr))
	}
	return out
}

func statsAt(t *testing.T, name, addr string) *api.ExecutorStats {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(dialCreds(t, tlsconf.RoleExecutor)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := api.NewBlocksClient(cc).Stats(ctx, &api.ExecutorStatsRequest{})
	if err != nil {
		t.Fatalf("stats of %s: %v", name, err)
	}
	return st
}

// TestFrozenLeaderIsFenced freezes the leader (SIGSTOP) past the election
// timeout, lets another take over, then resumes it (SIGCONT): no executor
// obeys an order of the old term after the resume (the refusal itself is
// pinned by the executor's TestFencing and TestDeposedWelcomeRefused: here
// the executors have left the frozen leader before it wakes), the job
// finishes with the exact answer, and no task runs twice.
func TestFrozenLeaderIsFenced(t *testing.T) {
	c, cl := slowCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 8, 2000, 11)
	ctx := context.Background()
	id, err := cl.Submit(ctx, slowWordCount(filepath.Join(dir, "*.txt"), 150), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitMapStage(t, cl, id)
	old, term, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(old, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	next, err := c.WaitLeader(ctx, old, term)
	if err != nil {
		c.Signal(old, syscall.SIGCONT)
		t.Fatal(err)
	}
	// Executors follow the new leader.
	waitFor(t, "executors to obey the new term", func() bool {
		for _, st := range execStats(t, c) {
			if st.HighestTerm <= term {
				return false
			}
		}
		return true
	})
	resumed := time.Now()
	if err := c.Signal(old, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("froze leader %s (term %d); %s took over; resumed the old leader", old.Name, term, next.Name)
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	recs, err := cl.Answer(ctx2, id)
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	for _, st := range execStats(t, c) {
		if last, ok := st.LastLaunchByTerm[term]; ok && last > resumed.UnixNano() {
			t.Errorf("executor %s obeyed a launch of the deposed leader's term %d after it resumed", st.ExecutorId, term)
		}
	}
	j, err := cl.Job(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if tasks := countTasks(j); j.TaskSuccesses != tasks {
		t.Errorf("%d task successes for %d tasks: tasks ran twice", j.TaskSuccesses, tasks)
	}
	waitFor(t, "the old leader to step down", func() bool {
		st, err := c.NodeStatus(ctx, old)
		return err == nil && st.State == "Follower"
	})
}

func countTasks(j *api.Job) int64 {
	var n int64
	for _, s := range j.Stages {
		n += int64(s.Tasks)
	}
	return n
}

// TestQuorumLossAndRecovery: with two of three schedd down nothing is
// scheduled and nothing is lost; executors keep their work; when a second
// node returns the job finishes with the exact answer.
func TestQuorumLossAndRecovery(t *testing.T) {
	c, cl := slowCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 8, 2000, 12)
	ctx := context.Background()
	id, err := cl.Submit(ctx, slowWordCount(filepath.Join(dir, "*.txt"), 150), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitMapStage(t, cl, id)
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Stop the leader and one follower; the other follower survives.
	down := []*localcluster.Proc{leader}
	var survivor *localcluster.Proc
	for _, p := range c.Scheds {
		switch {
		case p == leader:
		case len(down) == 1:
			down = append(down, p)
		default:
			survivor = p
		}
	}
	if survivor == nil || len(down) != 2 {
		t.Fatalf("could not pick two nodes to stop: %v", down)
	}
	for _, p := range down {
		if err := c.Kill(p); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is scheduled: no leader, and the survivor's state stands still.
	// Once the survivor has lost its leader and applied all it knows to
	// be committed, nothing more can commit.
	waitFor(t, "the survivor to lose its leader and apply what was committed", func() bool {
		st, err := c.NodeStatus(ctx, survivor)
		return err == nil && st.LeaderId == "" && st.AppliedIndex >= st.CommitIndex
	})
	before := jobOn(t, c, survivor, id)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.NodeStatus(ctx, survivor)
		if err == nil && st.State == "Leader" {
			t.Fatal("a lone node became leader")
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := jobOn(t, c, survivor, id)
	if before.Finished != after.Finished || before.TaskSuccesses != after.TaskSuccesses {
		t.Fatalf("the job progressed without a quorum: %d -> %d results", before.Finished, after.Finished)
	}
	held := int32(0)
	for _, st := range execStats(t, c) {
		held += st.Running + st.Unacked
	}
	t.Logf("without a quorum: %d results, executors hold %d attempts (running or unacknowledged)", after.Finished, held)
	// A second node returns: the job finishes.
	if err := c.Restart(down[0]); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	recs, err := cl.Answer(ctx2, id)
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	j, err := cl.Job(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if tasks := countTasks(j); j.TaskSuccesses != tasks {
		t.Errorf("%d task successes for %d tasks: tasks ran twice", j.TaskSuccesses, tasks)
	}
}

// jobOn reads a job from one node's own replica.
func jobOn(t *testing.T, c *localcluster.Cluster, p *localcluster.Proc, id uint64) *api.Job {
	t.Helper()
	cl, err := client.Dial([]string{p.APIAddr}, client.Options{RetryFor: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	j, err := cl.Job(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestSubmitWaitRidesThroughLeaderKill: batonctl submit -wait keeps
// waiting across a leader kill, prints the exact answer, and the job is
// submitted once.
func TestSubmitWaitRidesThroughLeaderKill(t *testing.T) {
	c, cl := slowCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 6, 2000, 13)
	p := slowWordCount(filepath.Join(dir, "*.txt"), 100)
	p.Name = "ride-through"
	planFile := filepath.Join(dir, "plan.json")
	b, _ := json.Marshal(p)
	os.WriteFile(planFile, b, 0o644)
	cmd := exec.Command(filepath.Join(binDir, "batonctl"), "-addr", strings.Join(c.APIAddrs(), ","), "submit", "-f", planFile, "-wait", "-o", "json")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, "the job to start", func() bool {
		jobs, err := cl.Jobs(ctx, false)
		return err == nil && len(jobs) == 1
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
	c.Restart(leader)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("batonctl submit -wait: %v\n%s", err, out.String())
	}
	var res struct {
		State   string       `json:"state"`
		Results [][2]*string `json:"results"`
	}
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil || res.State != "succeeded" {
		t.Fatalf("output: %v\n%s", err, out.String())
	}
	got := map[string]int{}
	for _, kv := range res.Results {
		var n int
		fmt.Sscan(*kv[1], &n)
		got[*kv[0]] = n
	}
	sameCounts(t, got, want)
	jobs, err := cl.Jobs(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	sort.Strings(names)
	if len(jobs) != 1 {
		t.Fatalf("jobs after the ride-through: %v (submitted more than once?)", names)
	}
}

// TestSigtermLeaderHandsOver: SIGTERM on the leader mid-job hands
// leadership to a follower, tells executors where it went, and exits; the
// new leader adopts the running tasks, so the job finishes exactly with
// no task run twice.
func TestSigtermLeaderHandsOver(t *testing.T) {
	c, cl := slowCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 8, 1500, 31)
	p := slowWordCount(filepath.Join(dir, "*.txt"), 300)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reduce stage to run", func() bool {
		j, err := cl.Job(ctx, id, false)
		return err == nil && len(j.Stages) == 2 && j.Stages[0].State == "complete" && j.Stages[1].State == "running"
	})
	leader, term, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Signal(leader, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Logf("the leader exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if _, err := c.WaitLeader(ctx, leader, term); err != nil {
		t.Fatal(err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v", j.GetState(), err)
	}
	recs, err := cl.Collect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	if j.TaskSuccesses != 8+4 || j.TaskFailures != 0 {
		t.Errorf("%d task successes and %d failures, want 12 and 0: tasks ran again after the handover", j.TaskSuccesses, j.TaskFailures)
	}
}

// TestExecutorLeavesAFrozenLeaderAtOnce: an executor whose next member to
// try is the frozen ex-leader used to wait out its hello timeout there
// (2 s) while the new leader's grace period ended, and the new leader ran
// the executor's running tasks again elsewhere. Executors now ask every
// member at once who leads, and are back within the grace period: their
// tasks are adopted and none runs twice.
func TestExecutorLeavesAFrozenLeaderAtOnce(t *testing.T) {
	c := newCluster(t, 3, "-heartbeat-interval", "200ms", "-executor-timeout", "20s")
	t.Cleanup(c.stopExecs)
	leader, _ := c.waitLeader("")
	var others []string
	for _, id := range c.order {
		if id != leader {
			others = append(others, c.nodes[id].apiAddr)
		}
	}
	la := c.nodes[leader].apiAddr
	// e1 tries the leader first, and after losing it, the leader again.
	c.startExec("e1", "-schedulers", strings.Join(append([]string{la, la}, others...), ","))
	cl := c.client()
	waitFor(t, "e1", func() bool {
		ex, err := cl.Executors(context.Background())
		return err == nil && len(ex) == 1 && ex[0].Alive
	})
	p, err := plan.Parse([]byte(`{"datasets":{"r":{"op":"range","n":4,"partitions":4},
		"s":{"op":"mapPartitions","input":"r","fn":{"name":"chaos.sleep","args":{"ms":4000}}}},"action":{"op":"count","input":"s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "e1 to run the four tasks", func() bool { return execStatsOf(t, c, "e1")[0].Running == 4 })
	// e2 joins with free slots: a new leader that gives up on e1 runs
	// e1's tasks there.
	c.startExec("e2", "-schedulers", strings.Join(append(others, la), ","))
	waitFor(t, "e2", func() bool {
		ex, err := cl.Executors(context.Background())
		return err == nil && len(ex) == 2 && ex[0].Alive && ex[1].Alive
	})
	term := nodeTerm(t, c, leader)
	c.nodes[leader].cmd.Process.Signal(syscall.SIGSTOP)
	defer func() {
		if c.nodes[leader].cmd != nil {
			c.nodes[leader].cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	var next string
	waitFor(t, "a new leader", func() bool {
		for _, nid := range c.order {
			if nid == leader {
				continue
			}
			if st, err := nodeSelf(c, nid); err == nil && st.State == "Leader" && st.Term > term {
				next = nid
				return true
			}
		}
		return false
	})
	j, err := c.client(next).Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v", j.GetState(), err)
	}
	c.nodes[leader].cmd.Process.Signal(syscall.SIGCONT)
	if tasks := countTasks(j); j.TaskSuccesses != tasks {
		t.Fatalf("%d task successes for %d tasks: tasks ran twice", j.TaskSuccesses, tasks)
	}
	if st := execStatsOf(t, c, "e2")[0]; st.LaunchesByJob[id] != 0 {
		t.Fatalf("e2 ran %d of e1's tasks again", st.LaunchesByJob[id])
	}
}

func nodeTerm(t *testing.T, c *cluster, id string) uint64 {
	t.Helper()
	st, err := c.nodeStatus(id)
	if err != nil {
		t.Fatal(err)
	}
	return st.Term
}

// nodeSelf asks one node for its own Raft status only (not its peers':
// a frozen peer would hold the answer).
func nodeSelf(c *cluster, id string) (*api.NodeStatus, error) {
	cc, err := grpc.NewClient(c.nodes[id].apiAddr, grpc.WithTransportCredentials(dialCreds(c.t, tlsconf.RoleServer)))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return api.NewOperatorClient(cc).GetNodeStatus(ctx, &api.NodeStatusRequest{})
}

// TestDrillGoesOnWhenARestartCannotBind: a drill used to abort the whole
// batch when a killed process could not bind its old port on restart
// (another process took it while it was down). A restart now retries
// while the port is taken; a round whose target cannot be restarted fails
// alone, and the next round brings it back.
func TestDrillGoesOnWhenARestartCannotBind(t *testing.T) {
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	take := func(addr string, d time.Duration) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("taking %s: %v", addr, err)
			return
		}
		held = append(held, ln)
		time.AfterFunc(d, func() { ln.Close() })
	}
	opts := drill.Options{Rounds: 3, Kill: "follower", At: "map", Seed: 4, Bin: binDir, Dir: t.TempDir(),
		OnKill: func(round int, p *localcluster.Proc) {
			switch round {
			case 1: // taken for a moment: the restart retries and succeeds
				take(p.APIAddr, 1500*time.Millisecond)
			case 2: // taken past every retry: this round fails
				take(p.APIAddr, 12*time.Second)
			}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := drill.Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Logf("drill report:\n%s", b.String())
	if len(rep.Rounds) != 3 {
		t.Fatalf("%d rounds reported, want 3", len(rep.Rounds))
	}
	for _, r := range rep.Rounds {
		switch r.N {
		case 2:
			if !strings.Contains(r.Error, "could not restart") || !strings.Contains(r.Error, "address already in use") {
				t.Errorf("round 2: error %q, want the restart's failure", r.Error)
			}
		default:
			if !r.Exact || r.Error != "" {
				t.Errorf("round %d: exact %t, error %q", r.N, r.Exact, r.Error)
			}
		}
	}
}
