package propose

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/raftnet"
)

// cluster is n in-process raftnet nodes over real TCP on loopback, with
// real bbolt stores in temporary directories, each applying to a real
// fsm.FSM: the proposer's tests log scheduler commands.
type cluster struct {
	t     testing.TB
	nodes []*raftnet.Node
	fsms  []*fsm.FSM
	dirs  []string
	addrs []string
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
	c := &cluster{t: t, nodes: make([]*raftnet.Node, n), fsms: make([]*fsm.FSM, n), addrs: freeAddrs(t, n)}
	var peers []raftnet.Peer
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		peers = append(peers, raftnet.Peer{ID: fmt.Sprintf("n%d", i), Addr: c.addrs[i]})
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd != nil {
				nd.Kill()
			}
		}
	})
	for i := range c.nodes {
		c.start(i, peers)
	}
	return c
}

func (c *cluster) start(i int, bootstrap []raftnet.Peer) {
	c.t.Helper()
	c.fsms[i] = fsm.New(fsm.Options{})
	nd, err := raftnet.Open(raftnet.Options{
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

// waitLeader returns the index of the leader and the leader, waiting up
// to 20s; -1 and nil if there is none. Safe off the test's goroutine.
func (c *cluster) waitLeader() (int, *raftnet.Node) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return i, n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -1, nil
}

// leader is waitLeader on the test's goroutine: no leader fails the test.
func (c *cluster) leader() (int, *raftnet.Node) {
	c.t.Helper()
	i, n := c.waitLeader()
	if n == nil {
		c.t.Fatal("no leader within 20s")
	}
	return i, n
}

// propose commits idempotent commands through whichever node leads,
// riding through leader changes: a proposal whose outcome is unknown, or
// that reached a node no longer leading, is made again on the next leader
// (the commands are idempotent, so twice is the same as once).
func (c *cluster) propose(cmds ...dag.Command) ([]dag.Result, error) {
	for try := 0; ; try++ {
		_, leader := c.waitLeader()
		if leader == nil {
			return nil, errors.New("no leader within 20s")
		}
		p := New(leader, Options{})
		res, err := p.Propose(context.Background(), cmds...)
		p.Close()
		if err == nil {
			return res, nil
		}
		if try == 20 || !(errors.Is(err, raftnet.ErrOutcomeUnknown) || errors.Is(err, raftnet.ErrNotLeader) || errors.Is(err, raftnet.ErrNoLeader) || errors.Is(err, ErrClosed)) {
			return nil, err
		}
	}
}

// waitApplied waits until fsm i has applied index idx. Raft's
// AppliedIndex is not enough: it moves when entries are handed to the FSM
// goroutine, before they are applied.
func (c *cluster) waitApplied(i int, idx uint64) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := c.fsms[i].Applied()
		if got >= idx {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d did not apply index %d (at %d)", i, idx, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func register(id string) dag.Command {
	return &dag.RegisterExecutor{ID: dag.ExecutorID(id), Addr: "127.0.0.1:1", Cores: 1}
}

func executors(f *fsm.FSM) int {
	n := 0
	f.Read(func(s *dag.State) { n = len(s.Executors()) })
	return n
}
