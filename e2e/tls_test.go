package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/tlsconf"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestSecureClusterRefusesStrangers: a cluster as `make demo` runs it
// (mutual TLS on every connection, ACLs on, executors joining with a
// token) runs a shuffle job exactly, and refuses: a client without a
// certificate, a certificate without a token, a Raft RPC from a
// certificate that is not a member's, an executor session whose
// certificate names another executor, and a block fetch with a client's
// certificate or without the job's grant. Nothing changes in the state.
func TestSecureClusterRefusesStrangers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := localcluster.Start(ctx, localcluster.Options{Bin: binDir, Dir: t.TempDir(), Secure: true, ExecFlags: []string{"-pprof"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	words := &plan.Plan{Name: "words", Datasets: map[string]*plan.Dataset{
		"w": {Op: "parallelize", Records: []plan.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("a")}, {Value: []byte("c")}, {Value: []byte("a")}}, Partitions: 3},
		"p": {Op: "map", Input: "w", Fn: &plan.Func{Name: "pairWithOne"}},
		"n": {Op: "reduceByKey", Input: "p", Fn: &plan.Func{Name: "sum"}, Partitions: 2},
	}, Action: plan.Action{Op: "collect", Input: "n"}}
	recs, err := cl.Run(ctx, words, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		got[string(r.Key)] = string(r.Value)
	}
	if got["a"] != "3" || got["b"] != "1" || got["c"] != "1" {
		t.Fatalf("word count over TLS: %v", got)
	}
	jobs, _ := cl.Jobs(ctx, true)
	before := len(jobs)

	pki := c.Dir() + "/pki"
	load := func(role, name string) *tlsconf.Config {
		cfg, err := tlsconf.Load(tlsconf.CertFiles(pki, role, name))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	operator := load(tlsconf.RoleClient, "localcluster")
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A client without a certificate: the handshake fails.
	plain, _ := client.Dial([]string{leader.APIAddr}, client.Options{RetryFor: time.Millisecond, CallTimeout: 2 * time.Second, Token: c.Token()})
	if _, err := plain.Jobs(ctx, false); err == nil {
		t.Fatal("a plaintext client was served")
	}
	plain.Close()
	noCert, _ := client.Dial([]string{leader.APIAddr}, client.Options{RetryFor: time.Millisecond, CallTimeout: 2 * time.Second,
		TLS: &tls.Config{RootCAs: operator.Pool(), ServerName: tlsconf.RoleName(tlsconf.RoleServer)}, Token: c.Token()})
	if _, err := noCert.Jobs(ctx, false); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	noCert.Close()
	// A certificate without a token.
	noToken, _ := client.Dial([]string{leader.APIAddr}, client.Options{RetryFor: time.Millisecond, CallTimeout: 2 * time.Second, TLS: operator.Client(tlsconf.RoleServer)})
	if _, err := noToken.Jobs(ctx, false); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a certificate without a token: %v", err)
	}
	noToken.Close()

	// A Raft RPC from a client's certificate.
	stream := &dialStream{tls: operator.Client(tlsconf.RoleServer)}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: 3 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})})
	var resp raft.AppendEntriesResponse
	target := c.Scheds[0]
	err = trans.AppendEntries(raft.ServerID(target.Name), raft.ServerAddress(target.RaftAddr), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte("127.0.0.1:1")},
		Term:      1 << 20, LeaderCommitIndex: 1 << 20, Entries: []*raft.Log{{Index: 1 << 20, Term: 1 << 20, Type: raft.LogCommand, Data: []byte{2, 0xde, 0xad}}}}, &resp)
	trans.Close()
	if err == nil {
		t.Fatal("a Raft RPC from a client's certificate was answered")
	}

	// An executor session under another executor's id.
	e1 := load(tlsconf.RoleExecutor, "e1")
	cc, err := grpc.NewClient(leader.APIAddr, grpc.WithTransportCredentials(credentials.NewTLS(e1.Client(tlsconf.RoleServer))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.Token())
	sess, err := api.NewExecutorsClient(cc).Connect(sctx)
	if err != nil {
		t.Fatal(err)
	}
	sess.Send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Hello{Hello: &api.Hello{ExecutorId: "e2", Addr: "127.0.0.1:9", Cores: 1}}})
	if _, err := sess.Recv(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "cannot speak for executor e2") {
		t.Fatalf("e1's certificate speaking for e2: %v", err)
	}

	// Block fetches: a client's certificate is refused; an executor's
	// certificate without the shuffle's grant too.
	fetch := func(cfg *tlsconf.Config) error {
		cc, err := grpc.NewClient(c.Execs[0].Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg.Client(tlsconf.RoleExecutor))))
		if err != nil {
			return err
		}
		defer cc.Close()
		st, err := api.NewBlocksClient(cc).FetchShuffle(ctx, &api.FetchShuffleRequest{Shuffle: 0, Reduce: 0, Maps: []int32{0, 1, 2}})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	if err := fetch(operator); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a block fetch with a client's certificate: %v", err)
	}
	if err := fetch(load(tlsconf.RoleExecutor, "e2")); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "grant") {
		t.Fatalf("a block fetch without a grant: %v", err)
	}
	// An executor's HTTP side: nothing without a certificate of the CA;
	// pprof not to another executor's.
	get := func(cfg *tls.Config, path string) (int, error) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + c.Execs[0].HTTPAddr + path)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	anon := &tls.Config{RootCAs: operator.Pool(), ServerName: tlsconf.RoleName(tlsconf.RoleExecutor)}
	if code, err := get(anon, "/metrics"); err == nil {
		t.Fatalf("an executor's metrics without a certificate: %d", code)
	}
	if code, err := get(operator.Client(tlsconf.RoleExecutor), "/metrics"); err != nil || code != http.StatusOK {
		t.Fatalf("an executor's metrics with a client's certificate: %d %v", code, err)
	}
	if code, err := get(load(tlsconf.RoleExecutor, "e2").Client(tlsconf.RoleExecutor), "/debug/pprof/cmdline"); err != nil || code != http.StatusForbidden {
		t.Fatalf("an executor's pprof with another executor's certificate: %d %v", code, err)
	}
	if code, err := get(operator.Client(tlsconf.RoleExecutor), "/debug/pprof/cmdline"); err != nil || code != http.StatusOK {
		t.Fatalf("an executor's pprof with a client's certificate: %d %v", code, err)
	}
	// A plaintext block fetch does not get a TLS handshake.
	pc, _ := grpc.NewClient(c.Execs[0].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if _, err := api.NewBlocksClient(pc).Stats(ctx, &api.ExecutorStatsRequest{}); err == nil {
		t.Fatal("a plaintext call to the block service was served")
	}
	pc.Close()

	// Nothing changed, and the cluster goes on.
	if recs, err := cl.Run(ctx, words, client.SubmitOptions{}); err != nil || len(recs) != 3 {
		t.Fatalf("after the attempts: %v %v", recs, err)
	}
	jobs, _ = cl.Jobs(ctx, true)
	if len(jobs) != before+1 {
		t.Fatalf("%d jobs, want %d", len(jobs), before+1)
	}
	peers, _ := cl.Peers(ctx)
	if len(peers) != 3 {
		t.Fatalf("%d peers", len(peers))
	}
}

// dialStream is a raft.StreamLayer that only dials, over TLS.
type dialStream struct {
	tls *tls.Config
	net.Listener
}

func (d *dialStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), d.tls)
}
func (d *dialStream) Accept() (net.Conn, error) { select {} }
func (d *dialStream) Close() error              { return nil }
func (d *dialStream) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
