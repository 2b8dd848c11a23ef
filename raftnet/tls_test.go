package raftnet

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestRaftOverTLSServesOnlyMembers: a quorum over mutual TLS replicates;
// a process that is not a member, whether it holds a server certificate of
// the CA under another name, a client's certificate, one of another CA,
// or none, cannot make a Raft call: its forged AppendEntries is refused
// and changes nothing.
func TestRaftOverTLSServesOnlyMembers(t *testing.T) {
	pki := newTestPKI(t)
	c := &cluster{t: t}
	var peers []Peer
	c.addrs = freeAddrs(t, 3)
	for i := 0; i < 3; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: c.addrs[i]})
	}
	c.nodes = make([]*Node, 3)
	c.fsms = make([]*testFSM, 3)
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd != nil {
				nd.Kill()
			}
		}
	})
	for i := range c.nodes {
		c.fsms[i] = newTestFSM()
		id := fmt.Sprintf("n%d", i)
		nd, err := Open(Options{ID: id, DataDir: c.dirs[i], RaftAddr: c.addrs[i], Bootstrap: peers, FSM: c.fsms[i],
			TLS: pki.tls(t, testServerRole, id), HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[i] = nd
	}
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
	stream := func(cfg *TLS) raft.StreamLayer {
		return &tlsStream{streamLayer: streamLayer{Listener: listen()}, tls: cfg, members: &members{}, log: c.nodes[0].opts.Logger}
	}
	// A server certificate of the right name but another CA: the dial
	// trusts the cluster's CA, so only the certificate it presents is
	// foreign.
	foreign := newTestPKI(t).tls(t, testServerRole, "n0")
	foreign.Client.RootCAs = pki.pool
	for name, stream := range map[string]raft.StreamLayer{
		"a server certificate of another name": stream(pki.tls(t, testServerRole, "mallory")),
		"a client's certificate":               stream(pki.tls(t, testClientRole, "ops")),
		"a member's name from another CA":      stream(foreign),
		"no TLS":                               &streamLayer{Listener: listen()},
	} {
		if err := forge(stream, 1000); err == nil {
			t.Errorf("%s: a forged AppendEntries was answered", name)
		}
	}
	// The control: a member's certificate is served (a stale term, so the
	// follower answers no and changes nothing).
	if err := forge(stream(pki.tls(t, testServerRole, "n0")), 0); err != nil {
		t.Fatalf("a member's call was refused: %v", err)
	}
	if got := target.Raft().LastIndex(); got != before {
		t.Fatalf("the forged entries reached the log: last index %d -> %d", before, got)
	}
	// The quorum goes on.
	c.mustPropose(register("after"))
	waitApplied(t, c.nodes[li], c.nodes[li].Raft().AppliedIndex())
	if n := executors(c.fsms[li]); n != 21 {
		t.Fatalf("%d commands applied, want 21", n)
	}
}

// TestTLSOptionsAreChecked: Open refuses TLS options that would serve
// callers without verifying them, or could not identify them.
func TestTLSOptionsAreChecked(t *testing.T) {
	pki := newTestPKI(t)
	for name, edit := range map[string]func(*TLS){
		"no client certificate required": func(c *TLS) { c.Server.ClientAuth = tls.VerifyClientCertIfGiven },
		"no server configuration":        func(c *TLS) { c.Server = nil },
		"no client configuration":        func(c *TLS) { c.Client = nil },
		"no Identify":                    func(c *TLS) { c.Identify = nil },
	} {
		cfg := pki.tls(t, testServerRole, "a")
		edit(cfg)
		addr := freeAddr(t)
		_, err := Open(Options{ID: "a", DataDir: t.TempDir(), RaftAddr: addr, FSM: newTestFSM(), TLS: cfg, Bootstrap: []Peer{{ID: "a", Addr: addr}}})
		if err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Errorf("%s: Open: %v", name, err)
		}
	}
}
