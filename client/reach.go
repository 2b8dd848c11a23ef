package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/internal/grpcdial"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// Errors a call gives up with when the quorum cannot serve it; both come
// wrapped in an *UnavailableError that says which members answered.
var (
	// ErrUnreachable: no member answered at all (refused, unresolvable,
	// silent, or not a Baton API).
	ErrUnreachable = errors.New("client: no member reachable")
	// ErrNoLeader: members answered, but the quorum has no leader (too
	// few members are up for an election).
	ErrNoLeader = errors.New("client: no leader")
)

// UnavailableError is a call that gave up because the quorum could not
// serve it: Unwrap gives ErrUnreachable or ErrNoLeader.
type UnavailableError struct {
	// NoLeader: some member answered, none knows a leader.
	NoLeader bool
	// Reachable and Members count the quorum's members, as the member
	// that answered sees them (NoLeader only).
	Reachable, Members int
	// Addrs are the addresses that did not answer, Reasons why (plain
	// words: "connection refused"), index for index.
	Addrs, Reasons []string
	// Last is the last error a member gave.
	Last error
}

func (e *UnavailableError) Error() string {
	if e.NoLeader {
		return fmt.Sprintf("no leader: %d of %d members reachable", e.Reachable, e.Members)
	}
	if len(e.Addrs) == 1 {
		return fmt.Sprintf("cannot reach %s: %s", e.Addrs[0], e.Reasons[0])
	}
	parts := make([]string, len(e.Addrs))
	for i := range e.Addrs {
		parts[i] = e.Addrs[i] + ": " + e.Reasons[i]
	}
	return "cannot reach any member (" + strings.Join(parts, "; ") + ")"
}

func (e *UnavailableError) Unwrap() error {
	if e.NoLeader {
		return ErrNoLeader
	}
	return ErrUnreachable
}

// answerKey marks a call's context with a flag the stats handler sets
// when the member's server answered it (sent headers or trailers), which
// tells a member that is down or speaks another protocol from a member
// that answered with an error.
type answerKey struct{}

func withAnswerFlag(ctx context.Context) (context.Context, *atomic.Bool) {
	f := new(atomic.Bool)
	return context.WithValue(ctx, answerKey{}, f), f
}

// answerStats is the stats handler that sets the flag.
type answerStats struct{}

func (answerStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (answerStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.InHeader, *stats.InTrailer, *stats.InPayload:
		if f, ok := ctx.Value(answerKey{}).(*atomic.Bool); ok {
			f.Store(true)
		}
	}
}

func (answerStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (answerStats) HandleConn(context.Context, stats.ConnStats)                       {}

// plainReason says in a few words why a member did not answer.
func plainReason(err error) string { return grpcdial.Plain(err) }

// tracker follows one call's attempts across members and decides when
// the quorum is unavailable for good: no member answered for DownFor, or
// members answered without a leader for NoLeaderFor.
type tracker struct {
	c        *Client
	start    time.Time
	answered map[int]bool
	reasons  map[int]string
	// diagnosed: the answering member was asked whether it knows a
	// leader (once per call).
	diagnosed bool
}

func (c *Client) newTracker() *tracker {
	return &tracker{c: c, start: time.Now(), answered: map[int]bool{}, reasons: map[int]string{}}
}

// failed records a retryable failure of member i (answered: its server
// answered) and returns a final error when the call should stop now.
func (t *tracker) failed(ctx context.Context, i int, err error, answered bool) error {
	if answered {
		t.answered[i] = true
		delete(t.reasons, i)
	} else if !t.answered[i] {
		t.reasons[i] = plainReason(err)
	}
	if len(t.answered)+len(t.reasons) < len(t.c.conns) {
		return nil // every member tried at least once first
	}
	since := time.Since(t.start)
	if len(t.answered) == 0 && since >= t.c.opts.DownFor {
		return t.unreachable(err)
	}
	if len(t.answered) > 0 && since >= t.c.opts.NoLeaderFor && !t.diagnosed {
		t.diagnosed = true
		for m := range t.answered {
			if ue, _ := t.c.noLeader(ctx, t.c.conns[m]); ue != nil {
				ue.Last = err
				return ue
			}
			break
		}
	}
	return nil
}

func (t *tracker) unreachable(last error) *UnavailableError {
	ue := &UnavailableError{Last: last}
	for i, a := range t.c.addrs {
		if r, ok := t.reasons[i]; ok {
			ue.Addrs, ue.Reasons = append(ue.Addrs, a), append(ue.Reasons, r)
		}
	}
	return ue
}

// noLeader asks a member whether it knows a leader and returns the error
// to give up with when it does not (nil when it does, or cannot tell);
// answered reports whether the member answered.
func (c *Client) noLeader(ctx context.Context, cc *grpc.ClientConn) (ue *UnavailableError, answered bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := api.NewOperatorClient(cc).Status(ctx, &api.StatusRequest{})
	if err != nil {
		return nil, false
	}
	if st.LeaderId != "" {
		return nil, true
	}
	ue = &UnavailableError{NoLeader: true, Members: len(st.Peers)}
	for _, p := range st.Peers {
		if p.Reachable {
			ue.Reachable++
		}
	}
	return ue, true
}

// NoLeader reports, as the first member that answers sees it, whether
// the quorum lacks a leader: an *UnavailableError (ErrNoLeader) saying
// how many members are reachable, or nil.
func (c *Client) NoLeader(ctx context.Context) error {
	for _, cc := range c.conns {
		if ue, answered := c.noLeader(ctx, cc); answered {
			if ue != nil {
				return ue
			}
			return nil
		}
	}
	return nil
}
