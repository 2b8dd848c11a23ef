package raftnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// cluster is n in-process nodes over real TCP on loopback, with real bbolt
// stores in temporary directories.
type cluster struct {
	t     testing.TB
	nodes []*Node
	fsms  []*testFSM
	dirs  []string
	addrs []string
}

func freeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// freeAddrs returns n distinct free loopback addresses: every listener is
// held open until all are chosen, so two nodes never get the same port.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	var peers []Peer
	c.addrs = freeAddrs(t, n)
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: c.addrs[i]})
	}
	c.nodes = make([]*Node, n)
	c.fsms = make([]*testFSM, n)
	for i := range c.nodes {
		c.start(i, peers)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd != nil {
				nd.Kill()
			}
		}
	})
	return c
}

func (c *cluster) start(i int, bootstrap []Peer) {
	c.t.Helper()
	c.fsms[i] = newTestFSM()
	nd, err := Open(Options{
		ID: fmt.Sprintf("n%d", i), DataDir: c.dirs[i], RaftAddr: c.addrs[i], Bootstrap: bootstrap,
		FSM: c.fsms[i], SnapshotThreshold: 64, TrailingLogs: 32, SnapshotInterval: 100 * time.Millisecond,
		// Generous timeouts: a loaded machine must not look like a dead one.
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = nd
}

func (c *cluster) leader() (int, *Node) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return i, n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader within 10s")
	return -1, nil
}

// propose commits an idempotent command through whichever node leads,
// riding through leader changes: a command whose outcome is unknown, or
// that reached a node no longer leading, is made again on the next leader
// (the commands are idempotent, so twice is the same as once).
func (c *cluster) propose(cmd []byte) error {
	for try := 0; ; try++ {
		leader := c.waitLeader()
		if leader == nil {
			return errors.New("no leader within 20s")
		}
		_, err := leader.Apply(cmd, 5*time.Second)
		if err == nil {
			return nil
		}
		if try == 20 || !(errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader)) {
			return err
		}
	}
}

// mustPropose is propose on the test's goroutine.
func (c *cluster) mustPropose(cmd []byte) {
	c.t.Helper()
	if err := c.propose(cmd); err != nil {
		c.t.Fatalf("propose: %v", err)
	}
}

// waitLeader returns the leader, waiting up to 20s; nil if there is none.
// Safe off the test's goroutine.
func (c *cluster) waitLeader() *Node {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// register is a test command: applying it twice is applying it once
// (testFSM.distinct).
func register(id string) []byte { return []byte("register " + id) }

// executors is how many different commands f applied.
func executors(f *testFSM) int { return f.distinct() }

// waitApplied waits until a node's state machine has applied index idx.
// Raft's AppliedIndex is not enough: it moves when entries are handed to
// the FSM goroutine, before they are applied.
func waitApplied(t testing.TB, nd *Node, idx uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	applied := func() uint64 {
		if f, ok := nd.opts.FSM.(*testFSM); ok {
			return f.Applied()
		}
		return nd.Raft().AppliedIndex()
	}
	for applied() < idx {
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not apply index %d (at %d)", nd.ID(), idx, applied())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestQuorumElectsReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	c := newCluster(t, 3)
	for i := 0; i < 50; i++ {
		c.mustPropose(register(fmt.Sprintf("e%d", i)))
	}
	li, _ := c.leader()

	// A follower refuses writes with ErrNotLeader, waited for or not
	// (ApplyAsync's future reports this package's errors too).
	fi := (li + 1) % 3
	if _, err := c.nodes[fi].Apply(register("x"), time.Second); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply on a follower: %v, want ErrNotLeader", err)
	}
	if err := c.nodes[fi].ApplyAsync(register("x"), time.Second).Error(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ApplyAsync on a follower: %v, want ErrNotLeader", err)
	}

	// Kill the leader: another is elected and takes writes.
	start := time.Now()
	c.nodes[li].Kill()
	c.nodes[li] = nil
	ni, _ := c.leader()
	t.Logf("new leader n%d after %s", ni, time.Since(start))
	for i := 50; i < 300; i++ {
		c.mustPropose(register(fmt.Sprintf("e%d", i)))
	}

	// Restart the killed node from its data directory (no bootstrap
	// flags needed): it catches up (by snapshot: the log was compacted).
	c.start(li, nil)
	_, next := c.leader()
	for _, nd := range c.nodes {
		waitApplied(t, nd, next.Raft().AppliedIndex())
	}
	for i, f := range c.fsms {
		if got := executors(f); got != 300 {
			t.Errorf("node %d has %d executors, want 300", i, got)
		}
	}

	// Linearizable read on the leader; a follower refuses.
	waitFor(t, "a linearizable read on the leader", func() bool {
		_, next := c.leader()
		return next.ReadIndex(context.Background()) == nil
	})
	for _, nd := range c.nodes {
		if !nd.IsLeader() {
			if err := nd.ReadIndex(context.Background()); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("ReadIndex on a follower: %v", err)
			}
			break
		}
	}
}

func TestMembershipAndLeadershipTransfer(t *testing.T) {
	c := newCluster(t, 3)
	li, leader := c.leader()
	victim := (li + 1) % 3
	if err := leader.RemoveServer(c.nodes[victim].ID(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	servers, _ := leader.Servers()
	if len(servers) != 2 {
		t.Fatalf("after remove: %+v", servers)
	}
	c.nodes[victim].Kill()
	// Re-add with a fresh data directory, as an operator would.
	c.dirs[victim] = t.TempDir()
	c.start(victim, nil)
	if err := leader.AddVoter(c.nodes[victim].ID(), c.nodes[victim].Addr(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	servers, _ = leader.Servers()
	if len(servers) != 3 {
		t.Fatalf("after add: %+v", servers)
	}
	// Transfer leadership to the re-added node, once it has caught up.
	waitApplied(t, c.nodes[victim], leader.Raft().AppliedIndex())
	target := c.nodes[victim].ID()
	if err := leader.TransferLeadership(target); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !c.nodes[victim].IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("leadership was not transferred")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	f := newTestFSM()
	n, err := Open(Options{ID: "a", DataDir: dir, RaftAddr: addr, FSM: f, Bootstrap: []Peer{{ID: "a", Addr: addr}}})
	if err != nil {
		t.Fatal(err)
	}
	// The address is in use.
	_, err = Open(Options{ID: "b", DataDir: t.TempDir(), RaftAddr: addr, FSM: newTestFSM()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second node on the same address: %v", err)
	}
	// Another process (here: another node) cannot open the same directory.
	if _, err := Open(Options{ID: "a", DataDir: dir, RaftAddr: freeAddr(t), FSM: newTestFSM()}); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("a second node on a directory in use: %v", err)
	}
	n.Shutdown()
	// The data directory belongs to node a.
	_, err = Open(Options{ID: "b", DataDir: dir, RaftAddr: freeAddr(t), FSM: newTestFSM()})
	if !errors.Is(err, ErrWrongNode) {
		t.Fatalf("node b on node a's data directory: %v", err)
	}
	for _, o := range []Options{
		{DataDir: dir, RaftAddr: addr, FSM: f},
		{ID: "a", RaftAddr: addr, FSM: f},
		{ID: "a", DataDir: dir, FSM: f},
		{ID: "a", DataDir: dir, RaftAddr: addr},
		{ID: "a", DataDir: dir, RaftAddr: addr, FSM: f, Bootstrap: []Peer{{ID: "z", Addr: addr}}},
	} {
		if _, err := Open(o); err == nil {
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
	if _, err := ParsePeers("a=127.0.0.1:1,b"); err == nil {
		t.Error("ParsePeers accepted a peer without an address")
	}
	if _, err := ParsePeers("a=127.0.0.1:1,a=127.0.0.1:2"); err == nil {
		t.Error("ParsePeers accepted a duplicate id")
	}
	peers, err := ParsePeers("a=127.0.0.1:1, b=127.0.0.1:2")
	if err != nil || len(peers) != 2 || peers[1] != (Peer{"b", "127.0.0.1:2"}) {
		t.Errorf("ParsePeers = %+v, %v", peers, err)
	}
}
