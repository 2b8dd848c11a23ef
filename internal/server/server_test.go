package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/raftnet"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// singleNode is the configuration of a one-member quorum in dir.
func singleNode(t *testing.T, dir string) Config {
	a, b := freeAddr(t), freeAddr(t)
	for a == b {
		b = freeAddr(t)
	}
	raftAddr := a
	return Config{ID: "a", DataDir: dir, RaftAddr: raftAddr, APIAddr: b, HTTPAddr: "",
		Bootstrap: []raftnet.Peer{{ID: "a", Addr: raftAddr}}}
}

func waitDriving(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !s.drv.Driving() {
		if time.Now().After(deadline) {
			t.Fatal("the node never drove")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestartReplaysBeforeTheDriverExists: Raft starts applying the log
// while New is still building the node; a hook that used the driver then
// crashed schedd at start (seen under load on a follower's restart; a
// delay at that point made it crash every time). Nothing the hooks use may
// be missing while Raft applies.
func TestRestartReplaysBeforeTheDriverExists(t *testing.T) {
	dir := t.TempDir()
	cfg := singleNode(t, dir)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitDriving(t, s)
	g := &plan.Graph{Nodes: []plan.Node{{Op: "range", Params: []byte(`{"n":1}`), Partitions: 2}}, Action: plan.GraphAction{Op: "count"}}
	if _, _, err := s.propose(context.Background(), &dag.SubmitJob{Graph: g}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Restarted with a wide window between Raft opening (and replaying
	// the job's entry, whose events the hooks log) and the driver.
	testHookAfterRaftOpen = func() { time.Sleep(2 * time.Second) }
	defer func() { testHookAfterRaftOpen = nil }()
	s, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	waitDriving(t, s)
	jobs := 0
	s.fsm.Read(func(st *dag.State) { jobs = len(st.Jobs()) })
	if jobs != 1 {
		t.Fatalf("%d jobs after the restart, want 1", jobs)
	}
}
