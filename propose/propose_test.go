package propose

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baton-sched/baton/raftnet"
)

func TestProposerBatchesConcurrentProposals(t *testing.T) {
	c := newCluster(t, 3)
	_, leader := c.leader()
	p := New(leader, Options{})
	defer p.Close()
	before := leader.Raft().LastIndex()
	const workers, each = 50, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				cmd := register(fmt.Sprintf("w%d-%d", w, i))
				res, err := p.Propose(context.Background(), cmd)
				if err != nil {
					// The leader changed (a loaded machine): again, on
					// the next one (registering is idempotent).
					if res, err = c.propose(cmd); err != nil {
						errs <- err
						return
					}
				}
				if len(res) != 1 || res[0].Err != nil {
					errs <- fmt.Errorf("propose: %+v", res)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	li, leader := c.leader()
	c.waitApplied(li, leader.Raft().LastIndex())
	entries := leader.Raft().LastIndex() - before
	if got := executors(c.fsms[li]); got != workers*each {
		t.Fatalf("%d executors registered, want %d", got, workers*each)
	}
	if entries >= workers*each {
		t.Fatalf("%d commands took %d entries: no batching", workers*each, entries)
	}
	t.Logf("%d commands in %d entries", workers*each, entries)
}

// TestProposerClose: proposals after Close fail at once, proposals racing
// with Close are answered, and Close may be called twice.
func TestProposerClose(t *testing.T) {
	c := newCluster(t, 1)
	_, leader := c.leader()
	for i := 0; i < 20; i++ {
		p := New(leader, Options{})
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := p.Propose(ctx, register(fmt.Sprintf("r%d", w)))
				if err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("propose racing with close: %v", err)
				}
			}()
		}
		p.Close()
		p.Close()
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := p.Propose(ctx, register("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("propose after close: %v", err)
		}
		cancel()
	}
}

// TestProposerPassesTheLogsErrors: on a follower, Propose fails with
// raftnet.ErrNotLeader (callers map it to "retry on the leader"), and
// after the node shuts down with raftnet.ErrShutdown.
func TestProposerPassesTheLogsErrors(t *testing.T) {
	c := newCluster(t, 3)
	li, _ := c.leader()
	fi := (li + 1) % 3
	p := New(c.nodes[fi], Options{})
	defer p.Close()
	if _, err := p.Propose(context.Background(), register("x")); !errors.Is(err, raftnet.ErrNotLeader) {
		t.Fatalf("propose on a follower: %v, want %v", err, raftnet.ErrNotLeader)
	}
	c.nodes[fi].Kill()
	if _, err := p.Propose(context.Background(), register("x")); !errors.Is(err, raftnet.ErrShutdown) {
		t.Fatalf("propose on a node shut down: %v, want %v", err, raftnet.ErrShutdown)
	}
	c.nodes[fi] = nil
}
