package blockstore

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
)

func serve(t *testing.T, s *Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	api.RegisterBlocksServer(g, &Service{Store: s})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

func TestFetcherReadsLocalAndRemoteBlocks(t *testing.T) {
	local, _ := Open("l", &Options{FS: vfs.NewMem()})
	remote, _ := Open("r", &Options{FS: vfs.NewMem()})
	defer local.Close()
	defer remote.Close()
	big := bytes.Repeat([]byte("z"), 3*chunkSize+17) // several chunks
	local.PutMapOutput(5, 0, [][]byte{[]byte("m0r0"), []byte("m0r1")})
	remote.PutMapOutput(5, 1, [][]byte{[]byte("m1r0"), big})
	remote.PutMapOutput(5, 2, [][]byte{[]byte("m2r0"), []byte("m2r1")})
	addr := serve(t, remote)
	conns := &Conns{}
	defer conns.Close()
	f := &Fetcher{Local: local, LocalID: "L", Conns: conns}
	in := ops.ShuffleInput{ID: 5, Maps: 3, Locations: []ops.MapLocation{{Map: 0, Executor: "L"}, {Map: 2, Executor: "R", Addr: addr}, {Map: 1, Executor: "R", Addr: addr}}}
	var got [][]byte
	if err := f.Fetch(context.Background(), in, 1, func(m int, b []byte) error {
		if m != len(got) {
			t.Fatalf("map %d out of order", m)
		}
		got = append(got, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if string(got[0]) != "m0r1" || !bytes.Equal(got[1], big) || string(got[2]) != "m2r1" {
		t.Fatalf("blocks %q %d %q", got[0], len(got[1]), got[2])
	}

	// A missing block, an unknown location and a dead executor all give a
	// FetchFailedError naming the block.
	var ff *ops.FetchFailedError
	in.Locations[1].Map = 2
	missing := ops.ShuffleInput{ID: 6, Maps: 1, Locations: []ops.MapLocation{{Map: 0, Executor: "R", Addr: addr}}}
	if err := f.Fetch(context.Background(), missing, 0, func(int, []byte) error { return nil }); !errors.As(err, &ff) || ff.Map != 0 || ff.Executor != "R" || !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing block: %v", err)
	}
	unlocated := ops.ShuffleInput{ID: 5, Maps: 2, Locations: []ops.MapLocation{{Map: 0, Executor: "L"}}}
	if err := f.Fetch(context.Background(), unlocated, 0, func(int, []byte) error { return nil }); !errors.As(err, &ff) || ff.Map != -1 {
		t.Fatalf("unlocated map output: %v", err)
	}
	dead := ops.ShuffleInput{ID: 5, Maps: 1, Locations: []ops.MapLocation{{Map: 0, Executor: "D", Addr: "127.0.0.1:1"}}}
	if err := f.Fetch(context.Background(), dead, 0, func(int, []byte) error { return nil }); !errors.As(err, &ff) || ff.Executor != "D" {
		t.Fatalf("dead executor: %v", err)
	}

	remote.PutResult(3, 44, big)
	if data, err := conns.FetchResult(context.Background(), addr, 3, 44); err != nil || !bytes.Equal(data, big) {
		t.Fatalf("FetchResult: %v, %d bytes", err, len(data))
	}
	if _, err := conns.FetchResult(context.Background(), addr, 3, 45); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing result: %v", err)
	}
}
