package fsm

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/internal/dagtest"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// node is one in-process Raft member: real bbolt log and stable stores and
// a file snapshot store in a temporary directory, an in-memory transport.
type node struct {
	id    raft.ServerID
	dir   string
	addr  raft.ServerAddress
	trans *raft.InmemTransport
	store *raftboltdb.BoltStore
	fsm   *FSM
	raft  *raft.Raft
}

func startNode(t *testing.T, id raft.ServerID, dir string, addr raft.ServerAddress) *node {
	t.Helper()
	n := &node{id: id, dir: dir}
	n.addr, n.trans = raft.NewInmemTransport(addr)
	var err error
	if n.store, err = raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	// Generous timeouts: a loaded machine must not look like a dead one
	// (the test also survives a leader change: see applyOnce).
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 500 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotThreshold = 64 // compact often: restarts replay snapshot plus log
	cfg.SnapshotInterval = 50 * time.Millisecond
	cfg.TrailingLogs = 16 // a node down for long needs InstallSnapshot
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	n.fsm = New(Options{})
	logs, err := raft.NewLogCache(256, n.store)
	if err != nil {
		t.Fatal(err)
	}
	if n.raft, err = raft.NewRaft(cfg, n.fsm, logs, n.store, snaps, n.trans); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	n.store.Close()
}

func connectAll(nodes []*node) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func leaderOf(nodes []*node) *node {
	for _, n := range nodes {
		if n != nil && n.raft.State() == raft.Leader {
			return n
		}
	}
	return nil
}

// TestReplicatedJobStream runs three in-process Raft nodes and replicates a
// simulated job command stream (with failures) through them: all three
// FSMs end byte-identical, and a node restarted from its snapshot plus log
// catches up to the same state.
func TestReplicatedJobStream(t *testing.T) {
	nodes := make([]*node, 3)
	var servers []raft.Server
	for i := range nodes {
		id := raft.ServerID(fmt.Sprintf("node%d", i))
		nodes[i] = startNode(t, id, t.TempDir(), raft.ServerAddress(id))
		servers = append(servers, raft.Server{ID: id, Address: nodes[i].addr})
	}
	connectAll(nodes)
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.stop(t)
			}
		}
	}()
	waitLeaderOf(t, nodes)

	sim := dagtest.New(dagtest.Options{Seed: 42, Faults: 1})
	propose := func(count int) {
		for count > 0 {
			batch := min(count, 8)
			cmds := make([]dag.Command, batch)
			want := make([]dag.Result, batch)
			for i := range cmds {
				cmds[i], want[i] = sim.Next()
			}
			data, err := Encode(time.Now().UnixNano(), cmds)
			if err != nil {
				t.Fatal(err)
			}
			resp := applyOnce(t, nodes, data)
			if resp == nil {
				// Committed, but its leader lost leadership before it
				// could answer: the results are unknown (the state has
				// them; the end of the test compares states).
				count -= batch
				continue
			}
			for i := range want {
				if (resp.Results[i].Err == nil) != (want[i].Err == nil) || resp.Results[i].Job != want[i].Job {
					t.Fatalf("command %T: replicated result %+v, simulation's %+v", cmds[i], resp.Results[i], want[i])
				}
			}
			count -= batch
		}
	}
	propose(3000)

	// Restart one follower from its data directory: snapshot plus log.
	var f *node
	var fi int
	for i, n := range nodes {
		if n.raft.State() != raft.Leader {
			f, fi = n, i
			break
		}
	}
	if err := f.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	f.stop(t)
	nodes[fi] = nil
	propose(1000) // the restarted node must catch up on these too
	nodes[fi] = startNode(t, f.id, f.dir, f.addr)
	connectAll(nodes)
	propose(500)

	last := waitLeaderOf(t, nodes).raft.AppliedIndex()
	waitFor(t, "every node to apply the stream", func() bool {
		for _, n := range nodes {
			if idx, _ := n.fsm.Applied(); idx < last {
				return false
			}
		}
		return true
	})
	snaps := make([][]byte, len(nodes))
	for i, n := range nodes {
		snaps[i] = stateBytes(t, n.fsm)
	}
	for i := 1; i < len(snaps); i++ {
		if !bytes.Equal(snaps[0], snaps[i]) {
			t.Fatalf("node %d's state differs from node 0's", i)
		}
	}
	jobs := 0
	nodes[0].fsm.Read(func(s *dag.State) { jobs = len(s.Jobs()) })
	t.Logf("3 nodes agree after %d log entries (%d jobs retained, state %d bytes)", last, jobs, len(snaps[0]))
}

// stateBytes returns the dag state's encoding (the snapshot header holds
// the applied index, which differs when a node is ahead).
func stateBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	var b []byte
	var err error
	f.Read(func(s *dag.State) { b, err = s.MarshalBinary() })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitLeaderOf waits for a leader among the nodes.
func waitLeaderOf(t *testing.T, nodes []*node) *node {
	t.Helper()
	var l *node
	waitFor(t, "a leader", func() bool { l = leaderOf(nodes); return l != nil })
	return l
}

// applyOnce commits an entry exactly once through whichever node leads,
// riding through leader changes: when an Apply's outcome is unknown (the
// leader lost leadership while committing), the next leader's log says
// whether the entry made it, and only if it did not is it applied again.
// It returns the entry's response, or nil when the entry was committed
// but its response was lost with the leadership.
func applyOnce(t *testing.T, nodes []*node, data []byte) *Response {
	t.Helper()
	for try := 0; try < 20; try++ {
		l := waitLeaderOf(t, nodes)
		f := l.raft.Apply(data, 10*time.Second)
		if err := f.Error(); err == nil {
			return f.Response().(*Response)
		} else if err != raft.ErrLeadershipLost && err != raft.ErrNotLeader && err != raft.ErrEnqueueTimeout {
			t.Fatal(err)
		}
		// Once the next leader has committed an entry of its own term,
		// its log is the committed log.
		next := waitLeaderOf(t, nodes)
		if err := next.raft.Barrier(10 * time.Second).Error(); err != nil {
			continue
		}
		lastIdx, err := next.store.LastIndex()
		if err != nil {
			t.Fatal(err)
		}
		for i := lastIdx; i > 0 && i+256 > lastIdx; i-- {
			var e raft.Log
			if next.store.GetLog(i, &e) == nil && bytes.Equal(e.Data, data) {
				return nil
			}
		}
	}
	t.Fatal("an entry could not be committed in 20 tries")
	return nil
}
