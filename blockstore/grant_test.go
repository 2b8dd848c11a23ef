package blockstore

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestBlocksNeedAGrant: with a block key, a fetch of a shuffle's blocks
// or a job's results without that shuffle's or job's grant is refused;
// before the executor knows its key it serves no one.
func TestBlocksNeedAGrant(t *testing.T) {
	remote, _ := Open("r", &Options{FS: vfs.NewMem()})
	defer remote.Close()
	remote.PutMapOutput(5, 0, [][]byte{[]byte("m0r0")})
	var key atomic.Pointer[[]byte]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	api.RegisterBlocksServer(g, &Service{Store: remote, Key: func() ([]byte, bool) {
		if k := key.Load(); k != nil {
			return *k, true
		}
		return nil, false
	}})
	go g.Serve(ln)
	defer g.Stop()
	addr := ln.Addr().String()
	conns := &Conns{}
	defer conns.Close()
	f := &Fetcher{LocalID: "L", Conns: conns}
	fetch := func(grant []byte) error {
		in := ops.ShuffleInput{ID: 5, Maps: 1, Grant: grant, Locations: []ops.MapLocation{{Map: 0, Executor: "R", Addr: addr}}}
		return f.Fetch(context.Background(), in, 0, func(int, []byte) error { return nil })
	}
	code := func(err error) codes.Code {
		var ff *ops.FetchFailedError
		if errors.As(err, &ff) {
			return status.Code(ff.Err)
		}
		return status.Code(err)
	}
	if c := code(fetch(nil)); c != codes.Unavailable {
		t.Fatalf("before the key is known: %v", c)
	}
	k := Key([]byte("members' secret, 32 bytes long.."))
	key.Store(&k)
	if c := code(fetch(nil)); c != codes.PermissionDenied {
		t.Fatalf("no grant: %v", c)
	}
	if c := code(fetch(ShuffleGrant(k, 6))); c != codes.PermissionDenied {
		t.Fatalf("another shuffle's grant: %v", c)
	}
	if c := code(fetch(ResultGrant(k, 5))); c != codes.PermissionDenied {
		t.Fatalf("a result grant for a shuffle: %v", c)
	}
	if err := fetch(ShuffleGrant(k, 5)); err != nil {
		t.Fatalf("with the grant: %v", err)
	}
	if _, err := conns.FetchResult(context.Background(), addr, 3, 9); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a result without a grant: %v", err)
	}
	conns.ResultGrant = func(job uint64) []byte { return ResultGrant(k, job) }
	if _, err := conns.FetchResult(context.Background(), addr, 3, 9); status.Code(err) == codes.PermissionDenied {
		t.Fatalf("a result with its grant: %v", err)
	}
	empty := []byte{}
	key.Store(&empty)
	if err := fetch(nil); err != nil {
		t.Fatalf("ACLs off (empty key): %v", err)
	}
}
