package server

import (
	"context"

	"github.com/baton-sched/baton/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Forwarding to the leader is decided in one place: routes says, for each
// unary API method, whether a follower hands the call to the leader (as
// Consul's and Nomad's RPC layers keep one table), and forwardUnary, one
// interceptor, does it. A method not in routes is served by the member
// called (reads of its replica, its own status). Streams are never
// forwarded: a follower serves them from its replica or refuses them with
// the leader's address (see notLeader).

// forwardRule says when a follower forwards a call to the leader.
type forwardRule int

const (
	// onLeader: the leader serves the call (writes, and what only the
	// leader can do).
	onLeader forwardRule = iota + 1
	// onLeaderIfLinearizable: the leader serves the read when the request
	// asks for a linearizable one; otherwise the member called serves it
	// from its replica.
	onLeaderIfLinearizable
	// leaderPreferred: the leader serves the call; a follower that cannot
	// have it served there (no leader, unreachable, any error) answers
	// from its own replica.
	leaderPreferred
)

// route is one method's entry in routes.
type route struct {
	rule forwardRule
	// linearizable reports whether a request asks for a linearizable
	// read (onLeaderIfLinearizable only).
	linearizable func(req any) bool
	// reply makes an empty reply message of the method's output type,
	// for the leader's answer.
	reply func() proto.Message
}

// routes is the forwarding table. Every unary method of the Scheduler,
// Operator and ACL services is either here or in route_test.go's list of
// local methods (the test fails for a method in neither).
var routes = map[string]route{
	api.Scheduler_SubmitJob_FullMethodName:      {rule: onLeader, reply: func() proto.Message { return &api.SubmitJobResponse{} }},
	api.Scheduler_GetJob_FullMethodName:         {rule: onLeaderIfLinearizable, linearizable: getJobLinearizable, reply: func() proto.Message { return &api.Job{} }},
	api.Scheduler_ListJobs_FullMethodName:       {rule: onLeaderIfLinearizable, linearizable: listJobsLinearizable, reply: func() proto.Message { return &api.ListJobsResponse{} }},
	api.Scheduler_CancelJob_FullMethodName:      {rule: onLeader, reply: func() proto.Message { return &api.CancelJobResponse{} }},
	api.Scheduler_CancelJobGroup_FullMethodName: {rule: onLeader, reply: func() proto.Message { return &api.CancelJobsResponse{} }},
	api.Scheduler_CancelStage_FullMethodName:    {rule: onLeader, reply: func() proto.Message { return &api.CancelJobsResponse{} }},
	api.Scheduler_CancelAllJobs_FullMethodName:  {rule: onLeader, reply: func() proto.Message { return &api.CancelJobsResponse{} }},
	api.Scheduler_ReleaseJob_FullMethodName:     {rule: onLeader, reply: func() proto.Message { return &api.ReleaseJobResponse{} }},
	api.Scheduler_Unpersist_FullMethodName:      {rule: onLeader, reply: func() proto.Message { return &api.UnpersistResponse{} }},
	api.Scheduler_ListCached_FullMethodName:     {rule: onLeaderIfLinearizable, linearizable: listCachedLinearizable, reply: func() proto.Message { return &api.ListCachedResponse{} }},
	api.Scheduler_ListExecutors_FullMethodName:  {rule: leaderPreferred, reply: func() proto.Message { return &api.ListExecutorsResponse{} }},

	api.Operator_AddPeer_FullMethodName:            {rule: onLeader, reply: func() proto.Message { return &api.AddPeerResponse{} }},
	api.Operator_RemovePeer_FullMethodName:         {rule: onLeader, reply: func() proto.Message { return &api.RemovePeerResponse{} }},
	api.Operator_TransferLeadership_FullMethodName: {rule: onLeader, reply: func() proto.Message { return &api.TransferLeadershipResponse{} }},
	api.Operator_RegisterMember_FullMethodName:     {rule: onLeader, reply: func() proto.Message { return &api.RegisterMemberResponse{} }},
	api.Operator_ReportResultLost_FullMethodName:   {rule: onLeader, reply: func() proto.Message { return &api.ReportResultLostResponse{} }},

	api.ACL_Bootstrap_FullMethodName:   {rule: onLeader, reply: func() proto.Message { return &api.ACLBootstrapResponse{} }},
	api.ACL_CreateToken_FullMethodName: {rule: onLeader, reply: func() proto.Message { return &api.CreateTokenResponse{} }},
	api.ACL_DeleteToken_FullMethodName: {rule: onLeader, reply: func() proto.Message { return &api.DeleteTokenResponse{} }},
}

func listCachedLinearizable(req any) bool {
	r, _ := req.(*api.ListCachedRequest)
	return r != nil && r.Linearizable
}

func getJobLinearizable(req any) bool {
	r, _ := req.(*api.GetJobRequest)
	return r.GetLinearizable()
}

func listJobsLinearizable(req any) bool {
	r, _ := req.(*api.ListJobsRequest)
	return r.GetLinearizable()
}

// toLeader reports whether the rule sends req to the leader.
func (rt route) toLeader(req any) bool {
	if rt.rule == onLeaderIfLinearizable {
		return rt.linearizable(req)
	}
	return true
}

// leaderFinder is what forwarding needs to know of the node: whether it
// leads, and the leader's id and API address as it knows them (either ""
// when unknown).
type leaderFinder interface {
	IsLeader() bool
	LeaderAPI() (id, addr string)
}

// router serves calls by the routes: it decides whether a call goes to
// the leader and sends it there.
type router struct {
	self  string // this member's id, for errors and the forwarded mark
	node  leaderFinder
	conns *forwarder
	// outgoing adds the credentials a forwarded call carries (the
	// caller's token, or the server secret for a member's own call).
	outgoing func(context.Context) context.Context
}

// serve runs a call of method: a follower sends what the routes give the
// leader there and returns the leader's reply and error; otherwise
// handler serves it.
func (r router) serve(ctx context.Context, method string, req any, handler grpc.UnaryHandler) (any, error) {
	rt, ok := routes[method]
	if !ok || !rt.toLeader(req) || r.node.IsLeader() {
		return handler(ctx, req)
	}
	reply := rt.reply()
	err := r.invoke(ctx, method, req, reply)
	switch {
	case err == nil:
		return reply, nil
	case rt.rule == leaderPreferred:
		return handler(ctx, req)
	}
	return nil, err
}

// invoke calls method on the leader with the caller's credentials and
// the forwarded mark, filling reply.
func (r router) invoke(ctx context.Context, method string, req any, reply proto.Message) error {
	ctx, cc, err := r.toLeaderCtx(ctx)
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, req, reply)
}

// toLeaderCtx returns the context a call forwarded to the leader goes
// with, and the leader's connection. A call that was forwarded here
// already is refused: two members with stale views could bounce it
// forever.
func (r router) toLeaderCtx(ctx context.Context) (context.Context, *grpc.ClientConn, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return nil, nil, status.Errorf(codes.Unavailable, "node %s is not the leader (the request was already forwarded once); retry", r.self)
	}
	cc, err := r.leaderConn()
	if err != nil {
		return nil, nil, err
	}
	return metadata.AppendToOutgoingContext(r.outgoing(ctx), forwardedKey, r.self), cc, nil
}

// leaderConn returns a connection to the leader's API.
func (r router) leaderConn() (*grpc.ClientConn, error) {
	id, addr := r.node.LeaderAPI()
	if id == "" {
		return nil, status.Error(codes.Unavailable, "no leader is known (an election may be under way, or the quorum is lost); retry")
	}
	if addr == "" {
		return nil, status.Errorf(codes.Unavailable, "the leader %s has not published its API address yet; retry", id)
	}
	return r.conns.conn(addr)
}

// nodeLeader is the Raft node and the member table as forwarding sees
// them.
type nodeLeader struct{ s *Server }

func (n nodeLeader) IsLeader() bool               { return n.s.node.IsLeader() }
func (n nodeLeader) LeaderAPI() (id, addr string) { return n.s.leaderAPI() }

func (s *Server) router() router {
	return router{self: s.cfg.ID, node: nodeLeader{s}, conns: s.fwd, outgoing: s.outgoing}
}

// unary is serve as a gRPC interceptor.
func (r router) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return r.serve(ctx, info.FullMethod, req, handler)
}

// forwardUnary is the interceptor that forwards to the leader what the
// routes send there. It runs after authUnary: the caller is authorized
// here, and its identity (its token) goes with the forwarded call.
func (s *Server) forwardUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return s.router().unary(ctx, req, info, handler)
}

// routed runs one of the server's handlers as the API serves a call of
// method: through the routes, forwarded to the leader when they say so.
// The package's own calls of its handlers pass no interceptor and go
// through here.
func routed[Req, Resp any](ctx context.Context, r router, method string, req Req, handler func(context.Context, Req) (Resp, error)) (Resp, error) {
	out, err := r.serve(ctx, method, req, func(ctx context.Context, req any) (any, error) {
		return handler(ctx, req.(Req))
	})
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

// The calls the package makes of its own handlers, served as the API
// serves them (a follower has the leader serve them).

// removePeer is RemovePeer through the routes (leaving the quorum).
func (s *Server) removePeer(ctx context.Context, req *api.RemovePeerRequest) (*api.RemovePeerResponse, error) {
	return routed(ctx, s.router(), api.Operator_RemovePeer_FullMethodName, req, s.RemovePeer)
}

// registerMember is RegisterMember through the routes (a member
// publishing its own addresses).
func (s *Server) registerMember(ctx context.Context, req *api.RegisterMemberRequest) (*api.RegisterMemberResponse, error) {
	return routed(ctx, s.router(), api.Operator_RegisterMember_FullMethodName, req, s.RegisterMember)
}

// reportResultLost is ReportResultLost through the routes (a collect that
// could not read an indirect result).
func (s *Server) reportResultLost(ctx context.Context, req *api.ReportResultLostRequest) (*api.ReportResultLostResponse, error) {
	return routed(ctx, s.router(), api.Operator_ReportResultLost_FullMethodName, req, s.ReportResultLost)
}

// getJob, listJobs and listExecutors are the HTTP API's reads through the
// routes (a linearizable read, and the executors, served by the leader).
func (s *Server) getJob(ctx context.Context, req *api.GetJobRequest) (*api.Job, error) {
	return routed(ctx, s.router(), api.Scheduler_GetJob_FullMethodName, req, s.GetJob)
}

func (s *Server) listJobs(ctx context.Context, req *api.ListJobsRequest) (*api.ListJobsResponse, error) {
	return routed(ctx, s.router(), api.Scheduler_ListJobs_FullMethodName, req, s.ListJobs)
}

func (s *Server) listExecutors(ctx context.Context, req *api.ListExecutorsRequest) (*api.ListExecutorsResponse, error) {
	return routed(ctx, s.router(), api.Scheduler_ListExecutors_FullMethodName, req, s.ListExecutors)
}
