package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
)

// testPlan is a small job; without executors it stays running, which is
// all these tests need: a write whose effect they can read back.
func testPlan(name string) *plan.Plan {
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": %q, "datasets": {
		"r": {"op": "range", "n": 1000, "partitions": 4},
		"k": {"op": "map", "input": "r", "fn": "pairWithOne"},
		"g": {"op": "groupByKey", "input": "k", "partitions": 2}},
		"action": {"op": "count", "input": "g"}}`, name)))
	if err != nil {
		panic(err)
	}
	return p
}

func submit(t *testing.T, cl *client.Client, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := cl.Submit(ctx, testPlan(name), client.SubmitOptions{})
	if err != nil {
		t.Fatalf("submit %s: %v", name, err)
	}
	return id
}

// localJobs reads the jobs from one node's own replica.
func (c *cluster) localJobs(id string) map[string]bool {
	cl, err := c.dialOne(c.nodes[id].apiAddr, time.Second)
	if err != nil {
		return nil
	}
	defer cl.Close()
	jobs, err := cl.Jobs(context.Background(), false)
	if err != nil {
		return nil
	}
	names := map[string]bool{}
	for _, j := range jobs {
		names[j.Name] = true
	}
	return names
}

func (c *cluster) waitJobs(id string, names ...string) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("node %s to hold jobs %v", id, names), func() bool {
		c.checkAlive()
		have := c.localJobs(id)
		for _, n := range names {
			if !have[n] {
				return false
			}
		}
		return true
	})
}

func TestQuorumFailoverAndRecovery(t *testing.T) {
	c := newCluster(t, 3)
	leader, took := c.waitLeader("")
	t.Logf("bootstrap: %s leads after %s", leader, took)
	cl := c.client()
	submit(t, cl, "before-kill")

	// SIGKILL the leader: a new one is elected.
	c.kill(leader)
	next, took := c.waitLeader(leader)
	t.Logf("leader %s killed: %s leads after %s", leader, next, took)

	// A write sent to a follower only succeeds (forwarded to the leader).
	var follower string
	for _, id := range c.order {
		if id != leader && id != next {
			follower = id
		}
	}
	// The same client reads its own write at once on the follower
	// (read-your-writes: reads carry the write's log index).
	fc := c.client(follower)
	id := submit(t, fc, "via-follower")
	if j, err := fc.Job(context.Background(), id, false); err != nil || j.Name != "via-follower" {
		t.Fatalf("reading the job just submitted through the follower: %v %v", j, err)
	}
	c.waitJobs(follower, "before-kill", "via-follower")

	// The killed node restarts from its data directory with the flags it
	// first ran with (-bootstrap included: it has state, so it ignores
	// it) and catches up from the log.
	c.start(leader)
	c.waitJobs(leader, "before-kill", "via-follower")

	// SIGTERM on the leader: it hands leadership over and stops cleanly.
	cur, _ := c.waitLeader("")
	c.term(cur)
	if err := c.nodes[cur].exit; err != nil {
		t.Fatalf("SIGTERM: schedd exited with %v", err)
	}
	after, _ := c.waitLeader(cur)
	t.Logf("leader %s stopped with SIGTERM: %s leads", cur, after)
	c.start(cur)
	c.waitJobs(cur, "before-kill", "via-follower")
}

func TestCatchUpFromSnapshot(t *testing.T) {
	c := newCluster(t, 3, "-snapshot-threshold", "8", "-trailing-logs", "4", "-snapshot-interval", "100ms")
	leader, _ := c.waitLeader("")
	var victim string
	for _, id := range c.order {
		if id != leader {
			victim = id
			break
		}
	}
	before, err := c.nodeStatus(victim)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(victim)
	cl := c.client(leader)
	var names []string
	for i := 0; i < 40; i++ {
		names = append(names, fmt.Sprintf("job-%d", i))
		submit(t, cl, names[i])
	}
	// Wait until the leader has compacted its log past what the victim has.
	waitFor(t, "the leader to snapshot", func() bool {
		st, err := c.nodeStatus(leader)
		return err == nil && st.LastSnapshotIndex > before.LastIndex+4
	})
	c.start(victim)
	c.waitJobs(victim, names...)
	st, err := c.nodeStatus(victim)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSnapshotIndex <= before.LastIndex {
		t.Fatalf("the restarted node's last snapshot is at %d, before its last entry %d: it did not install the leader's snapshot", st.LastSnapshotIndex, before.LastIndex)
	}
	t.Logf("node %s was at index %d, installed a snapshot at %d", victim, before.LastIndex, st.LastSnapshotIndex)
}

func TestWholeClusterRestart(t *testing.T) {
	c := newCluster(t, 3)
	c.waitLeader("")
	cl := c.client()
	a := submit(t, cl, "kept-1")
	submit(t, cl, "kept-2")
	if err := cl.Cancel(context.Background(), a, "test"); err != nil {
		t.Fatal(err)
	}
	// Everything committed survives SIGKILL of every node at once.
	for _, id := range c.order {
		c.kill(id)
	}
	for _, id := range c.order {
		c.start(id)
	}
	c.waitLeader("")
	for _, id := range c.order {
		c.waitJobs(id, "kept-1", "kept-2")
	}
	j, err := c.client().Job(context.Background(), a, true)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("job %d is %s after the restart, want cancelled", a, j.State)
	}
}

func TestRemoveAndReAddNode(t *testing.T) {
	c := newCluster(t, 3)
	leader, _ := c.waitLeader("")
	var victim string
	for _, id := range c.order {
		if id != leader {
			victim = id
			break
		}
	}
	addr := c.nodes[leader].apiAddr
	out, errOut, code := batonctl(t, "-addr", addr, "operator", "raft", "remove-peer", victim)
	if code != 0 {
		t.Fatalf("remove-peer: %d %s %s", code, out, errOut)
	}
	c.kill(victim)
	peers, err := c.client(leader).Peers(context.Background())
	if err != nil || len(peers) != 2 {
		t.Fatalf("after removal: %v %v", peers, err)
	}
	submit(t, c.client(leader), "while-removed")

	// Re-add it with a fresh data directory through -join.
	os.RemoveAll(c.nodes[victim].dir)
	c.flags = c.flags[:len(c.flags)-2] // no -bootstrap
	join := []string{"-join", c.nodes[leader].apiAddr}
	if c.secure {
		join = append(join, "-token", c.copts.Token) // an operator's token: ACLs are on
	}
	c.start(victim, join...)
	waitFor(t, "three peers again", func() bool {
		peers, err := c.client(leader).Peers(context.Background())
		return err == nil && len(peers) == 3
	})
	c.waitJobs(victim, "while-removed")
}

func TestBatonctlStatus(t *testing.T) {
	c := newCluster(t, 3)
	leader, _ := c.waitLeader("")
	waitFor(t, "every member's addresses to be known", func() bool {
		peers, err := c.client().Peers(context.Background())
		if err != nil || len(peers) != 3 {
			return false
		}
		for _, p := range peers {
			if p.ApiAddr == "" || !p.Reachable {
				return false
			}
		}
		return true
	})
	var addrs []string
	for _, id := range c.order {
		addrs = append(addrs, c.nodes[id].apiAddr)
	}
	// One status is a moment: on a loaded machine it may fall inside an
	// election. Ask until one names the leader that leads before and
	// after it, then check that one.
	var out string
	waitFor(t, "a status taken while one leader leads", func() bool {
		o, errOut, code := batonctl(t, "-addr", strings.Join(addrs, ","), "status")
		if code != 0 {
			t.Logf("status: exit %d: %s", code, errOut)
			return false
		}
		before := leader
		leader, _ = c.waitLeader("")
		out = o
		return before == leader && strings.Contains(o, "Leader     "+leader+"\n")
	})
	t.Logf("batonctl status:\n%s", out)
	for _, want := range []string{"Leader     " + leader, "Term", "PEER", "LAST CONTACT", leader + " *", "leader", "follower"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q", want)
		}
	}
	// JSON output parses and names the leader.
	var st struct {
		LeaderID string `json:"leader_id"`
		Peers    []any  `json:"peers"`
	}
	waitFor(t, "a JSON status naming the leader", func() bool {
		o, _, code := batonctl(t, "-addr", c.nodes["b"].apiAddr, "status", "-o", "json")
		if code != 0 || json.Unmarshal([]byte(o), &st) != nil || len(st.Peers) != 3 {
			t.Fatalf("status -o json: exit %d, %+v:\n%s", code, st, o)
		}
		leader, _ = c.waitLeader("")
		return st.LeaderID == leader
	})
	// BATON_ADDR works, usage errors exit 2, failures exit 1.
	cmd := []string{"jobs"}
	t.Setenv("BATON_ADDR", c.nodes["c"].apiAddr)
	if _, errOut, code := batonctl(t, cmd...); code != 0 {
		t.Fatalf("jobs with BATON_ADDR: %d %s", code, errOut)
	}
	if _, _, code := batonctl(t, "job", "status"); code != 2 {
		t.Errorf("job status without an id: exit %d, want 2", code)
	}
	if _, _, code := batonctl(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if _, errOut, code := batonctl(t, "job", "status", "999"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("missing job: exit %d %q, want 1 and not found", code, errOut)
	}
}

func TestScheddErrors(t *testing.T) {
	dir := t.TempDir()
	raftAddr, apiAddr := freePort(t), freePort(t)
	c := &cluster{t: t, root: t.TempDir(), nodes: map[string]*node{}}
	c.nodes["a"] = &node{id: "a", dir: filepath.Join(dir, "a"), raft: raftAddr, apiAddr: apiAddr, httpA: freePort(t)}
	c.order = []string{"a"}
	c.start("a", "-bootstrap", "a="+raftAddr)
	t.Cleanup(c.stopAll)
	c.waitLeader("")

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad flag", []string{"-frobnicate"}, 2, "flag provided but not defined"},
		{"no id", []string{"-data-dir", dir}, 2, "-id is required"},
		{"bad bootstrap", []string{"-id", "x", "-data-dir", t.TempDir(), "-bootstrap", "x"}, 2, "want id=host:port"},
		{"lease above heartbeat", []string{"-id", "x", "-data-dir", t.TempDir(), "-leader-lease-timeout", "1s"}, 2, "exceeds -heartbeat-timeout"},
		{"API address in use", []string{"-id", "x", "-data-dir", t.TempDir(), "-raft-addr", freePort(t), "-api-addr", apiAddr, "-http-addr", ""}, 1, "address already in use"},
		{"raft address in use", []string{"-id", "x", "-data-dir", t.TempDir(), "-raft-addr", raftAddr, "-api-addr", freePort(t), "-http-addr", ""}, 1, "address already in use"},
		{"data directory in use", []string{"-id", "a", "-data-dir", filepath.Join(dir, "a"), "-raft-addr", freePort(t), "-api-addr", freePort(t), "-http-addr", ""}, 1, "in use by another process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := schedd(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tt.code, tt.want)
			}
		})
	}

	// A data directory that belongs to another node id.
	c.kill("a")
	out, code := schedd(t, "-id", "b", "-data-dir", filepath.Join(dir, "a"), "-raft-addr", freePort(t), "-api-addr", freePort(t), "-http-addr", "")
	if code != 1 || !strings.Contains(out, `belongs to node "a", not "b"`) {
		t.Fatalf("wrong node id: exit %d:\n%s", code, out)
	}
}

// TestLeaderChurnIsWarned: a leader that keeps changing is something an
// operator must hear of: after a few changes, batonctl status warns with
// the likely cause.
func TestLeaderChurnIsWarned(t *testing.T) {
	c := newCluster(t, 3)
	c.waitLeader("")
	cl := c.client()
	if out, _, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "status"); code != 0 || strings.Contains(out, "Warning") {
		t.Fatalf("a calm quorum's status warns (exit %d):\n%s", code, out)
	}
	for i := 0; i < 3; i++ {
		before, _ := c.waitLeader("")
		if _, err := cl.TransferLeadership(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a new leader", func() bool { l, _ := c.waitLeader(""); return l != before })
	}
	waitFor(t, "the status to warn of the leader changes", func() bool {
		out, _, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "status")
		return code == 0 && strings.Contains(out, "Warning    the leader changed") && strings.Contains(out, "-raft-multiplier")
	})
}
