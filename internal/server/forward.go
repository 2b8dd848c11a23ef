package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/internal/grpcdial"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/propose"
	"github.com/baton-sched/baton/raftnet"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// forwardedKey marks a request a follower forwarded, so that it is never
// forwarded twice (two nodes with stale views could bounce it forever).
const forwardedKey = "baton-forwarded-by"

// maxMessage is the largest gRPC message the API sends or receives.
const maxMessage = grpcdial.MaxMessageSize

// forwarder keeps one client connection per peer API address.
type forwarder struct {
	creds credentials.TransportCredentials
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newForwarder(creds credentials.TransportCredentials) *forwarder {
	return &forwarder{creds: creds, conns: map[string]*grpc.ClientConn{}}
}

func (f *forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cc, ok := f.conns[addr]; ok {
		return cc, nil
	}
	// Forwarded replies may be as large as the server sends (a page of a
	// big job, a stage's attempts): not gRPC's 4 MB default.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(f.creds), grpcdial.ConnectParams(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cannot reach %s: %v", addr, err)
	}
	f.conns[addr] = cc
	return cc, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cc := range f.conns {
		cc.Close()
	}
	f.conns = map[string]*grpc.ClientConn{}
}

// leaderConn returns a connection to the leader's API.
func (s *Server) leaderConn() (*grpc.ClientConn, error) { return s.router().leaderConn() }

// rpcError turns an error into a gRPC status error with the right code.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var pe *plan.Error
	switch {
	case errors.Is(err, raftnet.ErrOutcomeUnknown):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, raftnet.ErrNotLeader), errors.Is(err, raftnet.ErrNoLeader),
		errors.Is(err, raftnet.ErrShutdown), errors.Is(err, propose.ErrClosed):
		return status.Error(codes.Unavailable, err.Error()+"; retry")
	case errors.Is(err, dag.ErrUnknownJob), errors.Is(err, dag.ErrUnknownExecutor), errors.Is(err, dag.ErrUnknownStage),
		errors.Is(err, dag.ErrNotPersisted):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, dag.ErrJobNotRunning), errors.Is(err, dag.ErrJobNotEnded):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, dag.ErrTooManyJobs), errors.Is(err, dag.ErrTooManyTasks):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, dag.ErrInvalidGraph), errors.Is(err, dag.ErrInvalidCommand), errors.Is(err, dag.ErrTooLarge), errors.As(err, &pe):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// propose commits scheduler commands through the leader's proposer and
// returns the first command's result, its business error as a gRPC error.
func (s *Server) propose(ctx context.Context, cmds ...dag.Command) (dag.Result, uint64, error) {
	res, index, err := s.prop.ProposeIndex(ctx, cmds...)
	if err != nil {
		return dag.Result{}, 0, rpcError(err)
	}
	if res[0].Err != nil {
		return res[0], index, rpcError(res[0].Err)
	}
	return res[0], index, nil
}

// waitIndex waits until this node's replica has applied a write the
// caller has seen (its min_index), so a read on any member sees it.
func (s *Server) waitIndex(ctx context.Context, index uint64) error {
	if index == 0 {
		return nil
	}
	if err := s.fsm.WaitApplied(ctx, index); err != nil {
		return status.Errorf(codes.Unavailable, "node %s has not caught up to index %d: %v", s.cfg.ID, index, err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}

// catchUp brings this replica up to the index the leader has committed,
// for a read that found nothing: a member whose replica lags must not say
// that an object the quorum holds does not exist. It fails (Unavailable,
// retryable) when it cannot tell.
func (s *Server) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s.node.IsLeader() {
		// A barrier returns once the state has applied every entry
		// committed before it.
		if err := s.node.ReadIndex(ctx); err != nil {
			return status.Errorf(codes.Unavailable, "node %s cannot tell whether its replica is behind: %v; retry", s.cfg.ID, err)
		}
		return nil
	}
	cc, err := s.leaderConn()
	if err != nil {
		return status.Errorf(codes.Unavailable, "node %s cannot tell whether its replica is behind: %v", s.cfg.ID, status.Convert(err).Message())
	}
	st, err := api.NewOperatorClient(cc).GetNodeStatus(ctx, &api.NodeStatusRequest{})
	if err != nil {
		return status.Errorf(codes.Unavailable, "node %s cannot tell whether its replica is behind: the leader did not answer (%v); retry", s.cfg.ID, status.Convert(err).Message())
	}
	// Everything the leader's state holds: its state's last index (the
	// commit index may count entries the state never sees, a new
	// leader's no-op, and Raft's applied index runs ahead of the state).
	return s.waitIndex(ctx, st.StateIndex)
}

// lookup runs find against this replica and, when it finds nothing, once
// more after catching up with the leader (see catchUp). It reports whether
// find found the object.
func (s *Server) lookup(ctx context.Context, find func() bool) (bool, error) {
	if find() {
		return true, nil
	}
	if err := s.catchUp(ctx); err != nil {
		return false, err
	}
	return find(), nil
}
