package raftnet

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/baton-sched/baton/tlsconf"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestRaftOverTLSServesOnlyMembers: a quorum over mutual TLS replicates;
// a process that is not a member, whether it holds a server certificate of
// the CA under another name, a client's certificate, or none, cannot make
// a Raft call: its forged AppendEntries is refused and changes nothing.
func TestRaftOverTLSServesOnlyMembers(t *testing.T) {
	pki := t.TempDir()
	var reqs []tlsconf.CertRequest
	for i := 0; i < 3; i++ {
		reqs = append(reqs, tlsconf.CertRequest{Role: tlsconf.RoleServer, Name: fmt.Sprintf("n%d", i)})
	}
	reqs = append(reqs, tlsconf.CertRequest{Role: tlsconf.RoleServer, Name: "mallory"}, tlsconf.CertRequest{Role: tlsconf.RoleClient, Name: "ops"})
	files, err := tlsconf.TestPKI(pki, reqs...)
	if err != nil {
		t.Fatal(err)
	}
	load := func(k string) *tlsconf.Config {
		c, err := tlsconf.Load(files[k])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := &cluster{t: t}
	var peers []Peer
	c.addrs = freeAddrs(t, 3)
	for i := 0; i < 3; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: c.addrs[i]})
	}
	c.nodes = make([]*Node, 3)
	c.fsms = make([]*testFSM, 3)
	for i := range c.nodes {
		c.fsms[i] = newTestFSM()
		nd, err := Open(Options{ID: fmt.Sprintf("n%d", i), DataDir: c.dirs[i], RaftAddr: c.addrs[i], Bootstrap: peers, FSM: c.fsms[i],
			TLS: load(fmt.Sprintf("server/n%d", i)), HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[i] = nd
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.Kill()
		}
	})
	for i := 0; i < 20; i++ {
		c.mustPropose(register(fmt.Sprintf("e%d", i)))
	}
	li, leader := c.leader()
	target := c.nodes[(li+1)%3]
	waitApplied(t, target, leader.Raft().AppliedIndex())
	before := target.Raft().LastIndex()

	forge := func(stream raft.StreamLayer, term uint64) error {
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: 3 * time.Second,
			Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})})
		defer trans.Close()
		data := []byte{2, 0xde, 0xad, 0xbe, 0xef}
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte("127.0.0.1:1")},
			Term: term, PrevLogEntry: before, PrevLogTerm: leader.Status().Term, LeaderCommitIndex: before + 1,
			Entries: []*raft.Log{{Index: before + 1, Term: 1000, Type: raft.LogCommand, Data: data}}}
		var resp raft.AppendEntriesResponse
		return trans.AppendEntries(raft.ServerID(target.ID()), raft.ServerAddress(target.Addr()), req, &resp)
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	for name, stream := range map[string]raft.StreamLayer{
		"a server certificate of another name": &tlsStream{streamLayer: streamLayer{Listener: listen()}, tls: load("server/mallory"), members: &members{}, log: c.nodes[0].opts.Logger},
		"a client's certificate":               &tlsStream{streamLayer: streamLayer{Listener: listen()}, tls: load("client/ops"), members: &members{}, log: c.nodes[0].opts.Logger},
		"no TLS":                               &streamLayer{Listener: listen()},
	} {
		if err := forge(stream, 1000); err == nil {
			t.Errorf("%s: a forged AppendEntries was answered", name)
		}
	}
	// The control: a member's certificate is served (a stale term, so the
	// follower answers no and changes nothing).
	if err := forge(&tlsStream{streamLayer: streamLayer{Listener: listen()}, tls: load("server/n0"), members: &members{}, log: c.nodes[0].opts.Logger}, 0); err != nil {
		t.Fatalf("a member's call was refused: %v", err)
	}
	if got := target.Raft().LastIndex(); got != before {
		t.Fatalf("the forged entries reached the log: last index %d -> %d", before, got)
	}
	// The quorum goes on.
	c.mustPropose(register("after"))
	if n := executors(c.fsms[li]); n != 21 {
		t.Fatalf("%d executors, want 21", n)
	}
}
