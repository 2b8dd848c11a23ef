package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/fsm"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Streams outlive the check made when they opened: an executor's session
// or a job watch may run for hours. When the ACL system changes (a token
// deleted, the ACLs bootstrapped, a backup restored) every open stream is
// checked again, and those whose token no longer allows the call end with
// Unauthenticated or PermissionDenied: an executor that joined before the
// bootstrap, or with a token since deleted, must come back with a live
// one.

// longLived are the streams an ACL change ends: those that run for as
// long as their caller wants. The others end of themselves (and a
// restore, which replaces the ACL system, must not be ended by it).
var longLived = map[string]bool{
	api.Executors_Connect_FullMethodName:  true,
	api.Scheduler_WatchJob_FullMethodName: true,
}

// errRevoked ends a stream whose credentials an ACL change took away.
var errRevoked = errors.New("acl")

// openStreams are the streams an ACL change may end.
type openStreams struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]*openStream
}

type openStream struct {
	method, secret, need string
	cancel               context.CancelCauseFunc
}

func (o *openStreams) add(st *openStream) (remove func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[uint64]*openStream{}
	}
	o.next++
	id := o.next
	o.m[id] = st
	return func() {
		o.mu.Lock()
		delete(o.m, id)
		o.mu.Unlock()
	}
}

func (o *openStreams) list() []*openStream {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*openStream, 0, len(o.m))
	for _, st := range o.m {
		out = append(out, st)
	}
	return out
}

// aclChanged is the FSM's OnACLChange hook (under the FSM's lock: it only
// signals the recheck loop).
func (s *Server) aclChanged() {
	select {
	case s.aclChange <- struct{}{}:
	default:
	}
}

// recheckLoop checks the open streams again after each ACL change.
func (s *Server) recheckLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-s.aclChange:
			s.recheckStreams()
		}
	}
}

func (s *Server) recheckStreams() {
	for _, st := range s.streams.list() {
		id, on, ok := s.identify(st.secret)
		switch {
		case !on:
		case !ok && st.secret == "":
			st.cancel(fmt.Errorf("%w: ACLs were bootstrapped and this stream carries no token: open it again with one", errRevoked))
		case !ok:
			st.cancel(fmt.Errorf("%w: the token of this stream was deleted", errRevoked))
		case !allows(id.Policy, st.need):
			st.cancel(fmt.Errorf("%w: token %q (policy %s) may no longer call %s, which needs %s", errRevoked, id.Name, id.Policy, shortMethod(st.method), st.need))
		default:
			continue
		}
		s.log.Info("stream ended by an ACL change", "method", shortMethod(st.method), "token", id.Name)
	}
}

// serveTracked runs a stream's handler, ending it when an ACL change
// takes its credentials away.
func (s *Server) serveTracked(srv any, ss grpc.ServerStream, ctx context.Context, method, secret string, handler grpc.StreamHandler) error {
	need, listed := needs[method]
	if !listed {
		need = fsm.PolicyManagement
	}
	if need == "" || !longLived[method] {
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	remove := s.streams.add(&openStream{method: method, secret: secret, need: need, cancel: cancel})
	defer remove()
	err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	if cause := context.Cause(ctx); errors.Is(cause, errRevoked) {
		code := codes.Unauthenticated
		if _, _, ok := s.identify(secret); ok {
			code = codes.PermissionDenied
		}
		return status.Error(code, cause.Error())
	}
	return err
}
