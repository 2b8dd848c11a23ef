// Command coredemo shows the scheduler core surviving a leader's death: three
// Raft nodes in this process, talking TCP on loopback with bbolt logs in a
// temporary directory, replicate the command stream of a simulated driver
// running jobs; half way through, the leader is shut down, a new leader is
// elected, the driver carries on against it, the jobs finish, and the two
// surviving replicas are compared byte for byte.
//
// It is what `make demo` runs until the executors and the real driver land;
// then `make demo` runs real processes.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/internal/dagtest"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func main() { os.Exit(run()) }

type node struct {
	id    raft.ServerID
	fsm   *fsm.FSM
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
}

func run() int {
	dir, err := os.MkdirTemp("", "baton-coredemo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "coredemo:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := demo(dir); err != nil {
		fmt.Fprintln(os.Stderr, "coredemo:", err)
		return 1
	}
	return 0
}

func demo(dir string) error {
	var nodes []*node
	var servers []raft.Server
	defer func() {
		for _, n := range nodes {
			if n.raft != nil {
				n.raft.Shutdown().Error()
				n.store.Close()
			}
		}
	}()
	for i := 0; i < 3; i++ {
		n, err := startNode(filepath.Join(dir, fmt.Sprintf("node%d", i)), raft.ServerID(fmt.Sprintf("node%d", i)))
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.trans.LocalAddr()})
		fmt.Printf("started %s on %s (bbolt log in %s)\n", n.id, n.trans.LocalAddr(), filepath.Join(dir, string(n.id)))
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return err
	}
	leader, err := waitLeader(nodes, nil)
	if err != nil {
		return err
	}
	fmt.Printf("%s is the leader\n", leader.id)

	sim := dagtest.New(dagtest.Options{Seed: 1, Faults: 0.5, MaxJobs: 2})
	const total = 6000
	killed := false
	for sent := 0; sent < total; {
		batch := make([]dag.Command, 0, 16)
		for len(batch) < 16 && sent < total {
			c, _ := sim.Next()
			batch = append(batch, c)
			sent++
		}
		data, err := fsm.Encode(time.Now().UnixNano(), batch)
		if err != nil {
			return err
		}
		if err := leader.raft.Apply(data, 5*time.Second).Error(); err != nil {
			return fmt.Errorf("apply on %s: %w", leader.id, err)
		}
		if !killed && sent >= total/2 {
			killed = true
			report(leader, "before the kill")
			fmt.Printf("killing the leader %s\n", leader.id)
			start := time.Now()
			old := leader
			old.raft.Shutdown().Error()
			old.store.Close()
			old.raft = nil
			if leader, err = waitLeader(nodes, old); err != nil {
				return err
			}
			fmt.Printf("%s took over in %s; the driver goes on against it\n", leader.id, time.Since(start).Round(time.Millisecond))
		}
	}
	sim.Drain()
	for sim.Running() > 0 {
		c, _ := sim.Next()
		data, _ := fsm.Encode(time.Now().UnixNano(), []dag.Command{c})
		if err := leader.raft.Apply(data, 5*time.Second).Error(); err != nil {
			return err
		}
	}
	if err := leader.raft.Barrier(5 * time.Second).Error(); err != nil {
		return err
	}
	report(leader, "after the drain")
	last := leader.raft.LastIndex()
	var states [][]byte
	for _, n := range nodes {
		if n.raft == nil {
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for n.raft.AppliedIndex() < last {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not catch up", n.id)
			}
			time.Sleep(10 * time.Millisecond)
		}
		var b []byte
		n.fsm.Read(func(s *dag.State) { b, _ = s.MarshalBinary() })
		states = append(states, b)
	}
	if !bytes.Equal(states[0], states[1]) {
		return fmt.Errorf("the surviving replicas differ")
	}
	fmt.Printf("the two surviving replicas are byte-identical (%d bytes of state, %d log entries)\n", len(states[0]), last)
	return nil
}

func report(n *node, when string) {
	counts := map[dag.JobStatus]int{}
	n.fsm.Read(func(s *dag.State) {
		for _, j := range s.Jobs() {
			counts[j.Status]++
		}
	})
	fmt.Printf("jobs %s: %d running, %d succeeded, %d failed, %d cancelled (as %s's replica sees them)\n",
		when, counts[dag.JobRunning], counts[dag.JobSucceeded], counts[dag.JobFailed], counts[dag.JobCancelled], n.id)
}

func startNode(dir string, id raft.ServerID) (*node, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := &node{id: id, fsm: fsm.New(fsm.Options{})}
	var err error
	if n.store, err = raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db")); err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.trans = raft.NewNetworkTransport(&tcpLayer{ln}, 3, 2*time.Second, io.Discard)
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	logs, err := raft.NewLogCache(512, n.store)
	if err != nil {
		return nil, err
	}
	n.raft, err = raft.NewRaft(cfg, n.fsm, logs, n.store, snaps, n.trans)
	return n, err
}

func waitLeader(nodes []*node, not *node) (*node, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n != not && n.raft != nil && n.raft.State() == raft.Leader {
				return n, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, fmt.Errorf("no leader elected within 10s")
}

// tcpLayer adapts a listener to raft.StreamLayer.
type tcpLayer struct{ net.Listener }

func (l *tcpLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}
