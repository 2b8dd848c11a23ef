package blockstore

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/baton-sched/baton/ops"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A map output written in segments reads back as its segments in order,
// locally and from another executor, through a fetch window far smaller
// than the output (the fetcher holds at most about a window ahead); an
// aborted writer leaves nothing, and a later attempt replaces an earlier
// one whole.
func TestSegmentedMapOutputsStreamInOrder(t *testing.T) {
	local, _ := Open("l", &Options{FS: vfs.NewMem()})
	remote, _ := Open("r", &Options{FS: vfs.NewMem()})
	defer local.Close()
	defer remote.Close()
	write := func(s *Store, mapIdx, segs int, tag string) {
		w, err := s.NewMapWriter(9, mapIdx, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < segs-1; i++ {
			if err := w.Segment([][]byte{[]byte(fmt.Sprintf("%s%d-r0-s%d;", tag, mapIdx, i)), bytes.Repeat([]byte{'x'}, 10_000)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Finish([][]byte{[]byte(fmt.Sprintf("%s%d-r0-last;", tag, mapIdx)), nil}); err != nil {
			t.Fatal(err)
		}
	}
	write(local, 0, 3, "a")
	write(remote, 1, 1, "a")
	write(remote, 2, 4, "a")
	// An attempt that was aborted leaves nothing; one ingested later
	// replaces an earlier one whole (here with fewer segments).
	w, _ := remote.NewMapWriter(9, 3, 2)
	w.Segment([][]byte{[]byte("junk"), nil})
	w.Abort()
	if _, err := remote.ShuffleBlock(9, 3, 0); err == nil {
		t.Fatal("an aborted output is readable")
	}
	write(remote, 3, 5, "old")
	write(remote, 3, 2, "a")

	addr := serve(t, remote)
	conns := &Conns{}
	defer conns.Close()
	f := &Fetcher{Local: local, LocalID: "L", Conns: conns, Window: 4096}
	in := ops.ShuffleInput{ID: 9, Maps: 4, Locations: []ops.MapLocation{{Map: 0, Executor: "L"}, {Map: 1, Executor: "R", Addr: addr}, {Map: 2, Executor: "R", Addr: addr}, {Map: 3, Executor: "R", Addr: addr}}}
	var got bytes.Buffer
	last := -1
	if err := f.Fetch(context.Background(), in, 0, func(m int, b []byte) error {
		if m < last {
			t.Fatalf("map %d after %d", m, last)
		}
		last = m
		got.Write(b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := "a0-r0-s0;a0-r0-s1;a0-r0-last;a1-r0-last;a2-r0-s0;a2-r0-s1;a2-r0-s2;a2-r0-last;a3-r0-s0;a3-r0-last;"
	if got.String() != want {
		t.Fatalf("reducer 0 read\n%s\nwant\n%s", got.String(), want)
	}
	var n int
	if err := f.Fetch(context.Background(), in, 1, func(m int, b []byte) error { n += len(b); return nil }); err != nil {
		t.Fatal(err)
	}
	if n != (2+0+3+1)*10_000 {
		t.Fatalf("reducer 1 read %d bytes", n)
	}
	if b, err := local.ShuffleBlock(9, 0, 0); err != nil || string(b) != "a0-r0-s0;a0-r0-s1;a0-r0-last;" {
		t.Fatalf("ShuffleBlock joins the segments: %q %v", b, err)
	}
}
