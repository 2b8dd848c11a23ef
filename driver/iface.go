package driver

import (
	"context"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// The driver depends on these small interfaces, declared here where they
// are used (as Nomad's scheduler depends on State and Planner): the
// server wires in the real fsm, Raft node and group-commit proposer; the
// harness in the tests wires in the real fsm and dag with a log in
// memory, simulated executors and a fake clock.

// State is the replicated scheduler state the driver reads (fsm.FSM).
type State interface {
	// Read calls fn with the state under its read lock; fn must not keep
	// the state, or anything aliasing it, beyond the call.
	Read(fn func(s *dag.State))
	// Changed returns a channel closed at the next change of the state.
	Changed() <-chan struct{}
}

// Proposer logs scheduler commands, in order, in one entry, and returns
// their results (propose.Proposer). It fails on a node that does not
// lead, or when ctx ends; an error leaves the outcome unknown.
type Proposer interface {
	Propose(ctx context.Context, cmds ...dag.Command) ([]dag.Result, error)
}

// Raft is the consensus the driver follows (raftnet.Node).
type Raft interface {
	// ID is this node's id.
	ID() string
	// Subscribe reports leadership changes (true: this node leads).
	Subscribe() (<-chan bool, func())
	IsLeader() bool
	// Term is the node's current term.
	Term() uint64
	// Barrier waits until every entry committed before it is applied.
	Barrier(timeout time.Duration) error
	// Apply logs an encoded fsm command (the takeover record).
	Apply(data []byte, timeout time.Duration) (any, error)
}

// Stream is one executor's session (a gRPC bidirectional stream of
// api.Executors.Connect).
type Stream interface {
	Context() context.Context
	Send(*api.DriverMessage) error
	Recv() (*api.ExecutorMessage, error)
}

// Clock is the driver's time: liveness, the grace period, locality
// waits, the resubmit delay, speculation and exclusion all read it. The
// harness's fake clock moves only when a test says.
type Clock interface {
	Now() time.Time
	// NewTicker returns a channel receiving the time every d, and a stop.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// realClock is the machine's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
