package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
)

// Fetcher reads shuffle blocks from the local store and from other
// executors' block services (ops.Fetcher).
type Fetcher struct {
	Local   *Store
	LocalID string
	Conns   *Conns
	// Observe, if set, is told of every block read (its size) and every
	// fetch failure.
	Observe func(bytes int, failed bool)
	// Window bounds the bytes fetched ahead of the reducer, across the
	// executors a reducer reads from at once (Spark's
	// spark.reducer.maxSizeInFlight). Default 48 MiB.
	Window int
}

// DefaultWindow is Fetcher.Window's default.
const DefaultWindow = 48 << 20

// Fetch implements ops.Fetcher: every map output's block for a reducer,
// segment by segment, in ascending map order, fetched from each executor
// in parallel but never more than Window bytes ahead of fn. A map output
// without a location, a block that is missing or corrupt, or an executor
// that cannot be reached makes it return an *ops.FetchFailedError naming
// the block.
func (f *Fetcher) Fetch(ctx context.Context, in ops.ShuffleInput, reduce int, fn func(int, []byte) error) error {
	byExec := map[string][]ops.MapLocation{}
	located := make([]bool, in.Maps)
	for _, l := range in.Locations {
		if l.Map < 0 || l.Map >= in.Maps || located[l.Map] {
			continue
		}
		located[l.Map] = true
		byExec[l.Executor] = append(byExec[l.Executor], l)
	}
	for m, ok := range located {
		if !ok {
			f.observe(0, true)
			return &ops.FetchFailedError{Shuffle: in.ID, Map: -1, Reduce: reduce, Err: fmt.Errorf("no location for map output %d", m)}
		}
	}
	window := f.Window
	if window <= 0 {
		window = DefaultWindow
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := &fetchQueue{maps: make([]mapQueue, in.Maps), window: window}
	q.cond = sync.NewCond(&q.mu)
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cancelled = true
		q.mu.Unlock()
		q.cond.Broadcast()
	})
	defer stop()
	var wg sync.WaitGroup
	for exec, locs := range byExec {
		sort.Slice(locs, func(a, b int) bool { return locs[a].Map < locs[b].Map })
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if exec == f.LocalID && f.Local != nil {
				err = f.fetchLocal(in.ID, reduce, exec, locs, q)
			} else {
				err = f.fetchRemote(ctx, in.ID, in.Grant, reduce, exec, locs, q)
			}
			if err != nil {
				q.fail(err)
				cancel()
			}
		}()
	}
	err := q.consume(fn, f.observe)
	cancel()
	wg.Wait()
	var ff *ops.FetchFailedError
	if errors.As(err, &ff) {
		f.observe(0, true)
	}
	return err
}

func (f *Fetcher) observe(n int, failed bool) {
	if f.Observe != nil {
		f.Observe(n, failed)
	}
}

// mapQueue holds one map output's segments fetched and not yet consumed.
type mapQueue struct {
	segs [][]byte
	done bool
}

// fetchQueue hands segments from the fetching goroutines to the reducer
// in map order, holding at most window bytes ahead of it (the segment the
// reducer waits for is always let through).
type fetchQueue struct {
	mu        sync.Mutex
	cond      *sync.Cond
	maps      []mapQueue
	next      int // the map the reducer reads
	held      int // bytes queued
	window    int
	err       error
	cancelled bool
}

// put queues a segment of map m, waiting while the window is full unless
// m is the map the reducer reads.
func (q *fetchQueue) put(m int, data []byte, last bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.held+len(data) > q.window && m != q.next && q.held > 0 && q.err == nil && !q.cancelled {
		q.cond.Wait()
	}
	if q.err != nil || q.cancelled {
		return context.Canceled
	}
	q.maps[m].segs = append(q.maps[m].segs, data)
	q.maps[m].done = last
	q.held += len(data)
	q.cond.Broadcast()
	return nil
}

func (q *fetchQueue) fail(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

// consume gives the segments to fn in map order.
func (q *fetchQueue) consume(fn func(int, []byte) error, observe func(int, bool)) error {
	for m := range q.maps {
		for {
			q.mu.Lock()
			for len(q.maps[m].segs) == 0 && !q.maps[m].done && q.err == nil && !q.cancelled {
				q.cond.Wait()
			}
			if q.err != nil {
				q.mu.Unlock()
				return q.err
			}
			if len(q.maps[m].segs) == 0 && !q.maps[m].done {
				q.mu.Unlock()
				return context.Canceled
			}
			var seg []byte
			have := len(q.maps[m].segs) > 0
			if have {
				seg = q.maps[m].segs[0]
				q.maps[m].segs[0] = nil
				q.maps[m].segs = q.maps[m].segs[1:]
				q.held -= len(seg)
			}
			finished := len(q.maps[m].segs) == 0 && q.maps[m].done
			if finished {
				q.next = m + 1
			}
			q.mu.Unlock()
			q.cond.Broadcast()
			if have {
				observe(len(seg), false)
				if err := fn(m, seg); err != nil {
					return err
				}
			}
			if finished {
				break
			}
		}
	}
	return nil
}

func (f *Fetcher) fetchLocal(shuffle uint64, reduce int, exec string, locs []ops.MapLocation, q *fetchQueue) error {
	for _, l := range locs {
		err := f.Local.ShuffleSegments(shuffle, l.Map, reduce, func(data []byte, last bool) error {
			return q.put(l.Map, data, last)
		})
		if errors.Is(err, context.Canceled) {
			return err
		}
		if err != nil {
			return &ops.FetchFailedError{Executor: exec, Shuffle: shuffle, Map: l.Map, Reduce: reduce, Err: err}
		}
	}
	return nil
}

func (f *Fetcher) fetchRemote(ctx context.Context, shuffle uint64, grant []byte, reduce int, exec string, locs []ops.MapLocation, q *fetchQueue) error {
	failed := func(m int, err error) error {
		return &ops.FetchFailedError{Executor: exec, Shuffle: shuffle, Map: m, Reduce: reduce, Err: err}
	}
	cl, err := f.Conns.ready(ctx, locs[0].Addr)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return failed(locs[0].Map, err)
	}
	req := &api.FetchShuffleRequest{Shuffle: shuffle, Reduce: int32(reduce), Grant: grant, Holder: f.LocalID}
	for _, l := range locs {
		req.Maps = append(req.Maps, int32(l.Map))
	}
	stream, err := cl.FetchShuffle(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return failed(locs[0].Map, err)
	}
	for _, l := range locs {
		for {
			m, data, more, blockErr, err := readSegment(stream)
			if err == io.EOF {
				return failed(l.Map, fmt.Errorf("executor %s ended the stream early", exec))
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return failed(l.Map, err)
			}
			if blockErr != nil {
				return failed(int(m), blockErr)
			}
			if int(m) != l.Map {
				return failed(l.Map, fmt.Errorf("executor %s sent map %d, want %d", exec, m, l.Map))
			}
			if err := q.put(l.Map, data, !more); err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	return nil
}
