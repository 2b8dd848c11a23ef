package raftnet

import (
	"context"
	"log/slog"
	"time"
)

// Membership is what a node does, beyond Raft, to take and keep its place
// in the quorum: join it when it holds no configuration, and keep the
// caller's member table (where the others find this node's other
// addresses) up to date. raftnet decides when and how often; the actions
// are the caller's, since raftnet knows neither how peers are asked nor
// what the table holds.
type Membership struct {
	// Join asks peers to add this node to the quorum and reports whether
	// one did. It is called every 250ms while the node holds no Raft
	// configuration, and never again once it holds one. nil: the node
	// waits to be added.
	Join func() bool
	// Registered reports whether the member table holds this node's
	// current addresses. Required.
	Registered func() bool
	// Register asks the leader to record this node's addresses, within
	// ctx (2s). Required.
	Register func(ctx context.Context) error
	// Publish records this node's addresses itself, on the leader, once
	// its log is applied after an election. Required.
	Publish func() error
	// Logger receives the loops' messages; nil discards them.
	Logger *slog.Logger
}

// RunMembership runs the membership loops until stop is closed or the
// node shuts down, and returns when both have ended:
//
//   - a leader, once it has won, waits for a barrier (everything
//     committed before it applied here) and then Publishes, again every
//     second while it leads until that succeeds;
//   - a node without a configuration Joins; one that is not (or no
//     longer) in its configuration, having been removed, does nothing;
//     a member checks every 2s that it is Registered and, while it is
//     not, Registers every 250ms. The check is periodic, not once: a
//     failed removal or a restore can take the entry away.
func (n *Node) RunMembership(stop <-chan struct{}, m Membership) {
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.leaderLoop(stop, m)
	}()
	n.memberLoop(stop, m)
	<-done
}

// leaderLoop publishes this node's addresses each time it wins an
// election. It is the one reader of its subscription.
func (n *Node) leaderLoop(stop <-chan struct{}, m Membership) {
	ch, cancel := n.Subscribe()
	defer cancel()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	published := false
	for {
		select {
		case <-stop:
			return
		case <-n.done:
			return
		case leader := <-ch:
			published = false
			if !leader {
				m.Logger.Info("lost leadership")
				continue
			}
			m.Logger.Info("won leadership", "term", n.Status().Term)
		case <-retry.C:
			// Keep trying while leader until the addresses are out.
		}
		if published || !n.IsLeader() {
			continue
		}
		if err := n.Barrier(10 * time.Second); err != nil {
			m.Logger.Warn("barrier after election failed", "err", err)
			continue
		}
		if err := m.Publish(); err != nil {
			m.Logger.Warn("could not publish own addresses", "err", err)
			continue
		}
		published = true
	}
}

// memberLoop joins the quorum when the node holds no configuration, then
// keeps this node registered while it is a member.
func (n *Node) memberLoop(stop <-chan struct{}, m Membership) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	wait := func(c <-chan time.Time) bool {
		select {
		case <-stop:
			return false
		case <-n.done:
			return false
		case <-c:
			return true
		}
	}
	joined := false
	for {
		if !joined {
			servers, err := n.Servers()
			joined = err == nil && len(servers) > 0
			if !joined && m.Join != nil {
				joined = m.Join()
			}
		}
		if joined && !n.isMember() {
			// Removed from the quorum: nothing to register.
			if !wait(time.After(2 * time.Second)) {
				return
			}
			continue
		}
		if joined {
			if m.Registered() {
				if !wait(time.After(2 * time.Second)) {
					return
				}
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := m.Register(ctx)
			cancel()
			if err != nil {
				m.Logger.Debug("registering own addresses", "err", err)
			}
		}
		if !wait(t.C) {
			return
		}
	}
}

// isMember reports whether this node is in its Raft configuration.
func (n *Node) isMember() bool {
	servers, err := n.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID == n.opts.ID {
			return true
		}
	}
	return false
}
