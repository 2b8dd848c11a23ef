package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/fsm"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The ACL system: off until `batonctl acl bootstrap`, then every call
// (gRPC and HTTP) needs a token whose policy allows it. Members call one
// another with the server secret kept in the replicated state.

// policyServer is the members' own identity (the server secret): an
// operator's rights, and the member-only calls, but no token management.
const policyServer = "server"

// needs says what each call needs. A call not listed needs management
// (default deny). "" is open to anyone: a node's own status (executors
// and members probe it to find the leader) and the bootstrap itself.
var needs = map[string]string{
	api.Scheduler_GetJob_FullMethodName:         fsm.PolicyRead,
	api.Scheduler_ListJobs_FullMethodName:       fsm.PolicyRead,
	api.Scheduler_WatchJob_FullMethodName:       fsm.PolicyRead,
	api.Scheduler_CollectResults_FullMethodName: fsm.PolicyRead,
	api.Scheduler_ListExecutors_FullMethodName:  fsm.PolicyRead,
	api.Scheduler_GetStage_FullMethodName:       fsm.PolicyRead,
	api.Scheduler_ListCached_FullMethodName:     fsm.PolicyRead,
	api.Operator_Status_FullMethodName:          fsm.PolicyRead,
	api.Operator_ListPeers_FullMethodName:       fsm.PolicyRead,
	api.Operator_LeaderHistory_FullMethodName:   fsm.PolicyRead,

	api.Scheduler_SubmitJob_FullMethodName:      fsm.PolicySubmit,
	api.Scheduler_CancelJob_FullMethodName:      fsm.PolicySubmit,
	api.Scheduler_CancelJobGroup_FullMethodName: fsm.PolicySubmit,
	api.Scheduler_CancelStage_FullMethodName:    fsm.PolicySubmit,
	api.Scheduler_CancelAllJobs_FullMethodName:  fsm.PolicySubmit,
	api.Scheduler_ReleaseJob_FullMethodName:     fsm.PolicySubmit,
	api.Scheduler_Unpersist_FullMethodName:      fsm.PolicySubmit,

	api.Operator_AddPeer_FullMethodName:            fsm.PolicyOperator,
	api.Operator_RemovePeer_FullMethodName:         fsm.PolicyOperator,
	api.Operator_TransferLeadership_FullMethodName: fsm.PolicyOperator,
	// A backup holds the ACL system (token hashes, the members' secret)
	// and a restore replaces it: management only, or an operator could
	// make themselves one.
	api.Operator_SnapshotSave_FullMethodName:     fsm.PolicyManagement,
	api.Operator_SnapshotRestore_FullMethodName:  fsm.PolicyManagement,
	api.Operator_RegisterMember_FullMethodName:   policyServer,
	api.Operator_ReportResultLost_FullMethodName: policyServer,

	api.ACL_CreateToken_FullMethodName: fsm.PolicyManagement,
	api.ACL_ListTokens_FullMethodName:  fsm.PolicyManagement,
	api.ACL_DeleteToken_FullMethodName: fsm.PolicyManagement,

	api.Executors_Connect_FullMethodName: fsm.PolicyExecutor,

	api.Operator_GetNodeStatus_FullMethodName: "",
	api.ACL_Bootstrap_FullMethodName:          "",
}

var rank = map[string]int{fsm.PolicyRead: 1, fsm.PolicySubmit: 2, fsm.PolicyOperator: 3, policyServer: 3, fsm.PolicyManagement: 4}

// allows reports whether a token of policy have may make a call that
// needs need.
func allows(have, need string) bool {
	switch {
	case need == "":
		return true
	case have == fsm.PolicyManagement:
		return true
	case need == fsm.PolicyExecutor:
		return have == fsm.PolicyExecutor
	case need == policyServer:
		return have == policyServer
	}
	return rank[have] >= rank[need] && rank[have] > 0
}

// Identity is who made a call, as the ACL system knows them.
type Identity struct {
	// Secret is the token the call carried ("" for none): it goes with
	// the call when a follower forwards it.
	Secret string
	// Accessor, Name and Policy describe the token (empty when ACLs are
	// off or the call carried none).
	Accessor, Name, Policy string
}

type ctxKey int

const (
	identityKey ctxKey = iota
	asServerKey
)

// IdentityFrom returns the identity of the call ctx serves.
func IdentityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey).(Identity)
	return id
}

// asServer marks a call this member makes of its own accord: forwarded to
// the leader, it carries the server secret.
func asServer(ctx context.Context) context.Context {
	return context.WithValue(ctx, asServerKey, true)
}

// internal is ctx for a call this member makes of its own accord while
// serving another (the caller's token does not go with it).
func internal(ctx context.Context) context.Context {
	return asServer(context.WithValue(ctx, identityKey, Identity{}))
}

// bearer returns the token in "authorization: Bearer <secret>".
func bearer(v string) string {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// identify resolves a secret. on says whether ACLs are on; ok is false
// when they are and the secret is not a live token.
func (s *Server) identify(secret string) (id Identity, on, ok bool) {
	id = Identity{Secret: secret}
	cred := s.fsm.Identify(secret)
	switch {
	case !cred.On:
		return id, false, true
	case !cred.Found || secret == "":
		return id, true, false
	case cred.Member:
		id.Accessor, id.Name, id.Policy = "server", "server", policyServer
	default:
		id.Accessor, id.Name, id.Policy = cred.Token.Accessor, cred.Token.Name, cred.Token.Policy
	}
	return id, true, true
}

// authorize checks a call: the returned context carries the caller's
// identity.
func (s *Server) authorize(ctx context.Context, method, secret string) (context.Context, error) {
	id, on, ok := s.identify(secret)
	ctx = context.WithValue(ctx, identityKey, id)
	need, listed := needs[method]
	if !listed {
		need = fsm.PolicyManagement
	}
	if !on && need != "" {
		// Fail closed while this replica replays the log it had when the
		// node started: a bootstrap in that log is not applied yet.
		if applied, _ := s.fsm.Applied(); applied < s.openIndex {
			return nil, status.Errorf(codes.Unavailable, "node %s is replaying its log (index %d of %d) and cannot check tokens yet; retry", s.cfg.ID, applied, s.openIndex)
		}
		// With -acl, a replica without the bootstrap serves no one (it
		// may lag a bootstrap the quorum holds) but the members' own
		// calls, which the cluster needs to form (there is no members'
		// secret yet to make them with).
		if s.cfg.ACL && need != policyServer {
			if s.node.IsLeader() {
				return nil, status.Errorf(codes.FailedPrecondition, "acl: this cluster runs with -acl and its ACLs are not bootstrapped yet: run batonctl acl bootstrap")
			}
			return nil, status.Errorf(codes.Unavailable, "node %s cannot check tokens: it runs with -acl and its replica does not hold the ACL bootstrap yet (not bootstrapped, or this member has not caught up); retry", s.cfg.ID)
		}
	}
	if !on {
		return ctx, nil
	}
	if need == "" {
		return ctx, nil
	}
	short := shortMethod(method)
	if !ok {
		if secret == "" {
			return nil, status.Errorf(codes.Unauthenticated, "acl: %s needs a token (-token or BATON_TOKEN)", short)
		}
		return nil, status.Errorf(codes.Unauthenticated, "acl: the token is not valid (unknown or deleted)")
	}
	if !allows(id.Policy, need) {
		return nil, status.Errorf(codes.PermissionDenied, "acl: token %q (policy %s) may not call %s, which needs %s", id.Name, id.Policy, short, need)
	}
	return ctx, nil
}

// shortMethod is a gRPC method's name without its service.
func shortMethod(method string) string { return method[strings.LastIndex(method, "/")+1:] }

func secretOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if b := bearer(v); b != "" {
			return b
		}
	}
	return ""
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authorize(ctx, info.FullMethod, secretOf(ctx))
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	secret := secretOf(ss.Context())
	ctx, err := s.authorize(ss.Context(), info.FullMethod, secret)
	if err != nil {
		return err
	}
	return s.serveTracked(srv, ss, ctx, info.FullMethod, secret, handler)
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

// outgoing adds the credentials a forwarded call carries: the caller's
// token, or the server secret for a member's own call.
func (s *Server) outgoing(ctx context.Context) context.Context {
	if sec := IdentityFrom(ctx).Secret; sec != "" {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+sec)
	}
	if ctx.Value(asServerKey) != nil {
		if ss := s.fsm.ServerSecret(); len(ss) > 0 {
			return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+hex.EncodeToString(ss))
		}
	}
	return ctx
}

// httpAuth guards the HTTP API, metrics and pprof with the same tokens
// (read or better), given as "Authorization: Bearer <secret>" or in the
// baton_token cookie the UI sets. The UI's own files are served to anyone
// (they hold no data; the UI asks for a token when the API says 401).
func (s *Server) httpAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := bearer(r.Header.Get("Authorization"))
		if c, err := r.Cookie("baton_token"); secret == "" && err == nil {
			secret = c.Value
		}
		if strings.HasPrefix(r.URL.Path, "/ui/") || r.URL.Path == "/" {
			next.ServeHTTP(w, r)
			return
		}
		method := "/http/read"
		if strings.HasPrefix(r.URL.Path, "/debug/") {
			method = "/http/debug" // profiles show the command line (a -token) and load the node
		}
		ctx, err := s.authorize(r.Context(), method, secret)
		if err != nil {
			st, _ := status.FromError(err)
			code := http.StatusUnauthorized
			switch st.Code() {
			case codes.PermissionDenied:
				code = http.StatusForbidden
			case codes.Unavailable, codes.FailedPrecondition:
				code = http.StatusServiceUnavailable
			}
			writeJSONError(w, code, st.Message())
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func init() {
	needs["/http/read"] = fsm.PolicyRead
	needs["/http/debug"] = fsm.PolicyOperator
}

// ---------------------------------------------------------------- calls

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("server: no randomness: %v", err))
	}
	return hex.EncodeToString(b)
}

func newToken(name, policy string) (fsm.Token, string) {
	secret := randomHex(32)
	return fsm.Token{Accessor: randomHex(16), SecretHash: fsm.HashSecret(secret), Name: name, Policy: policy, Created: time.Now().UnixNano()}, secret
}

func tokenToAPI(t fsm.Token, secret string) *api.ACLToken {
	return &api.ACLToken{Accessor: t.Accessor, Name: t.Name, Policy: t.Policy, CreateUnixNano: t.Created, Secret: secret}
}

func (s *Server) applyACL(c fsm.ACLCommand) error {
	data, err := fsm.EncodeACL(time.Now().UnixNano(), c)
	if err != nil {
		return rpcError(err)
	}
	r, err := s.node.Apply(data, 10*time.Second)
	if err != nil {
		return rpcError(err)
	}
	resp, ok := r.(*fsm.Response)
	if !ok || len(resp.Results) != 1 {
		return status.Error(codes.Internal, "acl: unexpected apply response")
	}
	switch err := resp.Results[0].Err; {
	case err == nil:
		return nil
	case errors.Is(err, fsm.ErrACLBootstrapped), errors.Is(err, fsm.ErrACLNotBootstrapped), errors.Is(err, fsm.ErrLastManagement):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, fsm.ErrExecutorBound):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, fsm.ErrNoToken):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, fsm.ErrBadToken):
		return status.Error(codes.InvalidArgument, err.Error())
	default:
		return rpcError(err)
	}
}

// Bootstrap turns ACLs on (leader; a follower forwards).
func (s *Server) Bootstrap(ctx context.Context, req *api.ACLBootstrapRequest) (*api.ACLBootstrapResponse, error) {
	if s.fsm.ACLBootstrapped() {
		// Refused before anything is logged: the call needs no token.
		return nil, status.Error(codes.FailedPrecondition, "acl: ACLs are already bootstrapped")
	}
	t, secret := newToken("bootstrap", fsm.PolicyManagement)
	serverSecret := make([]byte, 32)
	rand.Read(serverSecret)
	if err := s.applyACL(fsm.ACLCommand{Bootstrap: &fsm.ACLBootstrap{Management: t, ServerSecret: serverSecret}}); err != nil {
		return nil, err
	}
	s.log.Info("ACLs bootstrapped: every call now needs a token", "accessor", t.Accessor)
	return &api.ACLBootstrapResponse{Token: tokenToAPI(t, secret)}, nil
}

// CreateToken makes a token (leader; a follower forwards).
func (s *Server) CreateToken(ctx context.Context, req *api.CreateTokenRequest) (*api.CreateTokenResponse, error) {
	if !fsm.ValidPolicy(req.Policy) {
		return nil, invalid("acl: unknown policy %q (want one of %s)", req.Policy, strings.Join(fsm.Policies, ", "))
	}
	if len(req.Name) > 256 {
		return nil, invalid("acl: a token name is at most 256 bytes")
	}
	t, secret := newToken(req.Name, req.Policy)
	if err := s.applyACL(fsm.ACLCommand{Set: &t}); err != nil {
		return nil, err
	}
	s.log.Info("token created", "accessor", t.Accessor, "name", t.Name, "policy", t.Policy, "by", IdentityFrom(ctx).Name)
	return &api.CreateTokenResponse{Token: tokenToAPI(t, secret)}, nil
}

// ListTokens lists the tokens (this replica's view; no secrets).
func (s *Server) ListTokens(ctx context.Context, req *api.ListTokensRequest) (*api.ListTokensResponse, error) {
	out := &api.ListTokensResponse{}
	for _, t := range s.fsm.Tokens() {
		out.Tokens = append(out.Tokens, tokenToAPI(t, ""))
	}
	return out, nil
}

// DeleteToken deletes a token (leader; a follower forwards).
func (s *Server) DeleteToken(ctx context.Context, req *api.DeleteTokenRequest) (*api.DeleteTokenResponse, error) {
	if req.Accessor == "" {
		return nil, invalid("acl: delete needs an accessor")
	}
	if err := s.applyACL(fsm.ACLCommand{Delete: req.Accessor}); err != nil {
		return nil, err
	}
	s.log.Info("token deleted", "accessor", req.Accessor, "by", IdentityFrom(ctx).Name)
	return &api.DeleteTokenResponse{}, nil
}

// bindExecutor binds an executor id to the principal registering it, in
// the replicated ACL state (the driver's Options.Bind): the binding
// outlives leaderships and ends with the token it names. Before the
// bootstrap there are no identities to bind.
func (s *Server) bindExecutor(ctx context.Context, executor, principal string) error {
	if !s.fsm.ACLBootstrapped() {
		return nil
	}
	if p, ok := s.fsm.ExecutorOwner(executor); ok {
		if p == principal {
			return nil
		}
		return status.Errorf(codes.PermissionDenied, "driver: executor id %s is bound to another identity", executor)
	}
	if err := s.applyACL(fsm.ACLCommand{Bind: &fsm.ExecutorBind{Executor: executor, Principal: principal}}); err != nil {
		if status.Code(err) == codes.PermissionDenied {
			return status.Errorf(codes.PermissionDenied, "driver: executor id %s is bound to another identity", executor)
		}
		return err
	}
	return nil
}
