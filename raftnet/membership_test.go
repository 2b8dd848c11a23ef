package raftnet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMember records the membership loops' calls. Its actions default to
// success, with the table never holding the node (so a member registers
// every 250ms).
type fakeMember struct {
	joins, registers, publishes atomic.Int32

	mu         sync.Mutex
	join       func(call int) bool
	registered func() bool
	publish    func(call int) error
}

func (f *fakeMember) membership() Membership {
	m := Membership{
		Registered: func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.registered != nil && f.registered()
		},
		Register: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return fmt.Errorf("Register without a deadline")
			}
			f.registers.Add(1)
			return nil
		},
		Publish: func() error {
			call := int(f.publishes.Add(1))
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.publish != nil {
				return f.publish(call)
			}
			return nil
		},
	}
	if f.join != nil {
		m.Join = func() bool { return f.join(int(f.joins.Add(1))) }
	}
	return m
}

// runMembership runs nd's membership loops until the test ends, and
// checks that they return when told to stop.
func runMembership(t *testing.T, nd *Node, f *fakeMember) {
	t.Helper()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		nd.RunMembership(stop, f.membership())
	}()
	t.Cleanup(func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("RunMembership of %s did not return after stop", nd.ID())
		}
	})
}

// TestMembershipJoinsUntilItHoldsAConfiguration: a node started without
// state calls Join until the leader's configuration reaches it (here the
// third call adds it but reports failure, as a lost reply would), then
// never again, and registers; the leader publishes once it has won, again
// after a failure, and not after a success.
func TestMembershipJoinsUntilItHoldsAConfiguration(t *testing.T) {
	c := newCluster(t, 1)
	_, leader := c.leader()
	lf := &fakeMember{publish: func(call int) error {
		if call == 1 {
			return fmt.Errorf("the first publication fails")
		}
		return nil
	}}
	runMembership(t, leader, lf)

	c.addrs = append(c.addrs, freeAddr(t))
	c.dirs = append(c.dirs, t.TempDir())
	c.nodes = append(c.nodes, nil)
	c.fsms = append(c.fsms, nil)
	c.start(1, nil)
	joiner := c.nodes[1]
	jf := &fakeMember{join: func(call int) bool {
		if call >= 3 {
			if err := leader.AddVoter(joiner.ID(), joiner.Addr(), 5*time.Second); err != nil {
				t.Errorf("AddVoter: %v", err)
			}
		}
		return false
	}}
	runMembership(t, joiner, jf)

	waitFor(t, "the joiner to register", func() bool { return jf.registers.Load() > 0 })
	joins := jf.joins.Load()
	if joins < 3 {
		t.Fatalf("registered after %d calls of Join; the configuration came with the third", joins)
	}
	waitFor(t, "the joiner to register 4 times", func() bool { return jf.registers.Load() >= 4 })
	if got := jf.joins.Load(); got != joins {
		t.Fatalf("Join called %d times, %d of them after the node held a configuration", got, got-joins)
	}
	if servers, _ := leader.Servers(); len(servers) != 2 {
		t.Fatalf("configuration %+v, want 2 members", servers)
	}

	waitFor(t, "the leader to publish again after a failure", func() bool { return lf.publishes.Load() >= 2 })
	// A publication that succeeded is not repeated while leadership
	// lasts. The retry ticks every second; the joiner, registering every
	// 250ms, measures 3s.
	base := jf.registers.Load()
	waitFor(t, "12 more registrations of the joiner", func() bool { return jf.registers.Load() >= base+12 })
	if got := lf.publishes.Load(); got != 2 {
		t.Fatalf("the leader published %d times, want 2 (one failure, one success)", got)
	}
	if got := jf.publishes.Load(); got != 0 {
		t.Fatalf("a follower published %d times", got)
	}
}

// TestMembershipPublishesAfterBarrierAndStopsWhenRemoved: each new leader
// publishes once its log is applied (a leader that won by a transfer has
// applied every command before it); a member whose entry is in the table
// only checks it; a member removed from the quorum stops registering.
func TestMembershipPublishesAfterBarrierAndStopsWhenRemoved(t *testing.T) {
	c := newCluster(t, 3)
	fakes := make([]*fakeMember, 3)
	var applied [3]atomic.Int64
	for i := range fakes {
		fakes[i] = &fakeMember{publish: func(int) error {
			applied[i].Store(int64(c.fsms[i].distinct()))
			return nil
		}}
		runMembership(t, c.nodes[i], fakes[i])
	}
	li, leader := c.leader()
	waitFor(t, "the leader to publish", func() bool { return fakes[li].publishes.Load() >= 1 })
	const commands = 50
	for i := 0; i < commands; i++ {
		c.mustPropose(register(fmt.Sprintf("e%d", i)))
	}
	// Hand leadership to the other follower: it publishes having applied
	// every command (the barrier).
	li, leader = c.leader()
	next := (li + 1) % 3
	if err := leader.TransferLeadership(c.nodes[next].ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new leader to publish", func() bool { return fakes[next].publishes.Load() >= 1 })
	if got := applied[next].Load(); got != commands {
		t.Fatalf("the new leader published having applied %d of %d commands", got, commands)
	}

	// A member in the table only checks it (every 2s): it no longer
	// registers. The other two are not in the table.
	fakes[next].mu.Lock()
	fakes[next].registered = func() bool { return true }
	fakes[next].mu.Unlock()
	victim, other := (next+1)%3, (next+2)%3

	// Remove one of them: once it knows, it stops registering.
	_, leader = c.leader()
	if err := leader.RemoveServer(c.nodes[victim].ID(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed node to know it", func() bool { return !c.nodes[victim].isMember() })
	removed, registered := fakes[victim].registers.Load(), fakes[next].registers.Load()
	// The remaining member not in the table registers every 250ms: 8 more
	// of its calls are 2s, in which the others make at most the one they
	// may have had under way.
	base := fakes[other].registers.Load()
	waitFor(t, "8 more registrations of a member", func() bool { return fakes[other].registers.Load() >= base+8 })
	if got := fakes[victim].registers.Load(); got > removed+1 {
		t.Fatalf("the removed node registered %d times after it knew", got-removed)
	}
	if got := fakes[next].registers.Load(); got > registered+1 {
		t.Fatalf("a member in the table registered %d more times", got-registered)
	}
}
