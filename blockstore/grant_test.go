package blockstore

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/tlsconf"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

func fetchCode(err error) codes.Code {
	var ff *ops.FetchFailedError
	if errors.As(err, &ff) {
		return status.Code(ff.Err)
	}
	return status.Code(err)
}

// serveGrants serves a store holding shuffle 5's map 0 and job 3's result
// of task 9, its grant key set by the returned pointer.
func serveGrants(t *testing.T, opts ...grpc.ServerOption) (string, *atomic.Pointer[[]byte]) {
	remote, _ := Open("r", &Options{FS: vfs.NewMem()})
	t.Cleanup(func() { remote.Close() })
	remote.PutMapOutput(5, 0, [][]byte{[]byte("m0r0")})
	remote.PutResult(3, 9, []byte("result"))
	var key atomic.Pointer[[]byte]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	api.RegisterBlocksServer(g, &Service{Store: remote, Key: func() ([]byte, bool) {
		if k := key.Load(); k != nil {
			return *k, true
		}
		return nil, false
	}})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String(), &key
}

// TestBlocksNeedAGrant: with a grant key, a fetch of a shuffle's blocks
// without a grant made for that shuffle and that executor, or of a job's
// results without a member's grant, is refused; before the executor
// knows its key it serves no one. The key it holds checks grants but
// cannot make them.
func TestBlocksNeedAGrant(t *testing.T) {
	addr, key := serveGrants(t)
	conns := &Conns{}
	defer conns.Close()
	f := &Fetcher{LocalID: "L", Conns: conns}
	fetch := func(grant []byte) error {
		in := ops.ShuffleInput{ID: 5, Maps: 1, Grant: grant, Locations: []ops.MapLocation{{Map: 0, Executor: "R", Addr: addr}}}
		return f.Fetch(context.Background(), in, 0, func(int, []byte) error { return nil })
	}
	if c := fetchCode(fetch(nil)); c != codes.Unavailable {
		t.Fatalf("before the key is known: %v", c)
	}
	sg := NewSigner([]byte("members' secret, 32 bytes long.."))
	pub := sg.Public()
	key.Store(&pub)
	if c := fetchCode(fetch(nil)); c != codes.PermissionDenied {
		t.Fatalf("no grant: %v", c)
	}
	if c := fetchCode(fetch(sg.ShuffleGrant(6, "L"))); c != codes.PermissionDenied {
		t.Fatalf("another shuffle's grant: %v", c)
	}
	if c := fetchCode(fetch(sg.ShuffleGrant(5, "M"))); c != codes.PermissionDenied {
		t.Fatalf("a grant made for another executor: %v", c)
	}
	if c := fetchCode(fetch(sg.ResultGrant(5))); c != codes.PermissionDenied {
		t.Fatalf("a result grant for a shuffle: %v", c)
	}
	// A "grant" made with what an executor holds (the public key, as an
	// HMAC key would have been) is refused.
	forged := NewSigner(pub).ShuffleGrant(5, "L")
	if c := fetchCode(fetch(forged)); c != codes.PermissionDenied {
		t.Fatalf("a grant made from the executor's key: %v", c)
	}
	for range 2 { // the second is remembered
		if err := fetch(sg.ShuffleGrant(5, "L")); err != nil {
			t.Fatalf("with the grant: %v", err)
		}
	}
	if _, err := conns.FetchResult(context.Background(), addr, 3, 9); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a result without a grant: %v", err)
	}
	conns.ResultGrant = sg.ResultGrant
	if b, err := conns.FetchResult(context.Background(), addr, 3, 9); err != nil || string(b) != "result" {
		t.Fatalf("a result with a member's grant: %q %v", b, err)
	}
	other := NewSigner([]byte("another cluster's secret........")).Public()
	key.Store(&other)
	if c := fetchCode(fetch(sg.ShuffleGrant(5, "L"))); c != codes.PermissionDenied {
		t.Fatalf("a grant checked under a new key: %v", c)
	}
	empty := []byte{}
	key.Store(&empty)
	if err := fetch(nil); err != nil {
		t.Fatalf("ACLs off (empty key): %v", err)
	}
}

// TestGrantsAreBoundToTheHoldersCertificate: over mutual TLS a grant is
// served only to the executor whose certificate it names; results only
// to members.
func TestGrantsAreBoundToTheHoldersCertificate(t *testing.T) {
	files, err := tlsconf.TestPKI(t.TempDir(),
		tlsconf.CertRequest{Role: tlsconf.RoleExecutor, Name: "R"},
		tlsconf.CertRequest{Role: tlsconf.RoleExecutor, Name: "L"},
		tlsconf.CertRequest{Role: tlsconf.RoleExecutor, Name: "M"},
		tlsconf.CertRequest{Role: tlsconf.RoleServer, Name: "s1"})
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
	addr, key := serveGrants(t, grpc.Creds(credentials.NewTLS(load("executor/R").Server(true))))
	sg := NewSigner([]byte("members' secret, 32 bytes long.."))
	pub := sg.Public()
	key.Store(&pub)
	as := func(k, local string) (*Fetcher, *Conns) {
		conns := &Conns{Creds: credentials.NewTLS(load(k).Client(tlsconf.RoleExecutor))}
		t.Cleanup(func() { conns.Close() })
		return &Fetcher{LocalID: local, Conns: conns}, conns
	}
	fetch := func(f *Fetcher, grant []byte) error {
		in := ops.ShuffleInput{ID: 5, Maps: 1, Grant: grant, Locations: []ops.MapLocation{{Map: 0, Executor: "R", Addr: addr}}}
		return f.Fetch(context.Background(), in, 0, func(int, []byte) error { return nil })
	}
	l, _ := as("executor/L", "L")
	if err := fetch(l, sg.ShuffleGrant(5, "L")); err != nil {
		t.Fatalf("L with its own grant: %v", err)
	}
	// M holds L's grant (it leaked) and claims to be L: its certificate
	// says otherwise.
	m, mconns := as("executor/M", "L")
	if c := fetchCode(fetch(m, sg.ShuffleGrant(5, "L"))); c != codes.PermissionDenied {
		t.Fatalf("M with L's grant: %v", c)
	}
	mconns.ResultGrant = sg.ResultGrant
	if _, err := mconns.FetchResult(context.Background(), addr, 3, 9); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("an executor reading results with a member's grant: %v", err)
	}
	_, sconns := as("server/s1", "")
	sconns.ResultGrant = sg.ResultGrant
	if b, err := sconns.FetchResult(context.Background(), addr, 3, 9); err != nil || string(b) != "result" {
		t.Fatalf("a member reading results: %q %v", b, err)
	}
}
