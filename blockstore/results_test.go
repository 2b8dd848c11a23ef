package blockstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fakeResults is a job's results as a scheduler's state would give them:
// running until succeed is called, then refs; a reported loss makes the
// job run again until rerun is called.
type fakeResults struct {
	mu      sync.Mutex
	refs    []ResultRef
	running bool
	failed  error
	changed chan struct{}
	lost    []ResultRef
	// refuseLoss fails this many ResultLost calls (a leader that cannot
	// be reached) before taking one.
	refuseLoss int
}

func newFakeResults() *fakeResults { return &fakeResults{running: true, changed: make(chan struct{})} }

func (f *fakeResults) JobResults(job uint64) ([]ResultRef, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed != nil {
		return nil, nil, f.failed
	}
	if f.running {
		return nil, f.changed, nil
	}
	return append([]ResultRef(nil), f.refs...), nil, nil
}

func (f *fakeResults) ResultLost(ctx context.Context, ref ResultRef, cause error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuseLoss > 0 {
		f.refuseLoss--
		return errors.New("no leader")
	}
	f.lost = append(f.lost, ref)
	f.running = true
	return nil
}

// set ends a run with refs.
func (f *fakeResults) set(refs []ResultRef, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs, f.failed, f.running = refs, err, false
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeResults) isRunning() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadResultsRecoversALostResult: the reader waits for the job, reads
// direct and indirect results in partition order, reports an indirect
// result it cannot read (the block is gone) and reads it again once its
// partition ran again, without repeating the partitions it gave.
func TestReadResultsRecoversALostResult(t *testing.T) {
	st, err := Open("s", &Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addr := serve(t, st)
	if err := st.PutResult(7, 11, []byte("part one")); err != nil {
		t.Fatal(err)
	}
	conns := &Conns{}
	defer conns.Close()
	src := newFakeResults()
	src.refuseLoss = 1

	var mu sync.Mutex
	got := map[int]string{}
	var order []int
	done := make(chan error, 1)
	go func() {
		done <- conns.ReadResults(context.Background(), src, 7, func(p int, b []byte) error {
			mu.Lock()
			defer mu.Unlock()
			got[p] = string(b)
			order = append(order, p)
			return nil
		})
	}()
	// Partition 2's block (task 12) was never written: lost.
	src.set([]ResultRef{
		{Partition: 0, Job: 7, Task: 10, Data: []byte("part zero")},
		{Partition: 1, Job: 7, Task: 11, Indirect: true, Addr: addr},
		{Partition: 2, Job: 7, Task: 12, Indirect: true, Addr: addr},
	}, nil)
	waitFor(t, "the loss to be reported", func() bool { return src.isRunning() })
	if err := st.PutResult(7, 13, []byte("part two, again")); err != nil {
		t.Fatal(err)
	}
	src.set([]ResultRef{
		{Partition: 0, Job: 7, Task: 10, Data: []byte("part zero")},
		{Partition: 1, Job: 7, Task: 11, Indirect: true, Addr: addr},
		{Partition: 2, Job: 7, Task: 13, Indirect: true, Addr: addr},
	}, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[0 1 2]" || got[0] != "part zero" || got[1] != "part one" || got[2] != "part two, again" {
		t.Fatalf("read %v in order %v", got, order)
	}
	if len(src.lost) != 1 || src.lost[0].Task != 12 {
		t.Fatalf("losses reported: %+v, want task 12's", src.lost)
	}
}

// TestReadResultsEnds: a job that will never have results ends the read
// with the source's error, a cancelled caller with its context's, and
// fn's error is returned as it is.
func TestReadResultsEnds(t *testing.T) {
	conns := &Conns{}
	defer conns.Close()
	gone := errors.New("job 7 was released")
	src := newFakeResults()
	src.set(nil, gone)
	if err := conns.ReadResults(context.Background(), src, 7, func(int, []byte) error { return nil }); !errors.Is(err, gone) {
		t.Fatalf("released job: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := conns.ReadResults(ctx, newFakeResults(), 7, func(int, []byte) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read of a running job: %v", err)
	}
	stop := errors.New("stop")
	src = newFakeResults()
	src.set([]ResultRef{{Partition: 0, Data: []byte("x")}, {Partition: 1, Data: []byte("y")}}, nil)
	calls := 0
	if err := conns.ReadResults(context.Background(), src, 7, func(int, []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("fn's error: %v after %d calls", err, calls)
	}
}
