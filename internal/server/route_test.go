package server

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/baton-sched/baton/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// localMethods are the unary methods served by the member called, never
// forwarded: each a decision, as each entry of routes is.
var localMethods = map[string]string{
	api.Scheduler_GetStage_FullMethodName:       "a stage from this replica (and, on the leader, its running attempts)",
	api.Operator_Status_FullMethodName:          "the cluster as this member sees it",
	api.Operator_GetNodeStatus_FullMethodName:   "this member's own Raft state (members and executors probe it to find the leader)",
	api.Operator_ListPeers_FullMethodName:       "the Raft configuration as this member sees it",
	api.Operator_LeaderHistory_FullMethodName:   "the takeovers in this replica",
	api.ACL_ListTokens_FullMethodName:           "the tokens in this replica",
	api.Scheduler_WatchJob_FullMethodName:       "a stream (not forwarded)",
	api.Scheduler_CollectResults_FullMethodName: "a stream (not forwarded)",
	api.Operator_SnapshotSave_FullMethodName:    "a stream (a follower refuses it with the leader's address)",
	api.Operator_SnapshotRestore_FullMethodName: "a stream (a follower refuses it with the leader's address)",
	api.Executors_Connect_FullMethodName:        "a stream (the executors find the leader themselves)",
}

// servedServices are the services the scheduler's gRPC server registers.
var servedServices = []*grpc.ServiceDesc{&api.Scheduler_ServiceDesc, &api.Operator_ServiceDesc, &api.ACL_ServiceDesc, &api.Executors_ServiceDesc}

func TestEveryMethodHasAForwardingDecision(t *testing.T) {
	seen := map[string]bool{}
	for _, sd := range servedServices {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(sd.ServiceName))
		if err != nil {
			t.Fatalf("service %s: %v", sd.ServiceName, err)
		}
		svc := d.(protoreflect.ServiceDescriptor)
		for _, m := range sd.Methods {
			full := "/" + sd.ServiceName + "/" + m.MethodName
			seen[full] = true
			rt, routed := routes[full]
			_, local := localMethods[full]
			switch {
			case routed && local:
				t.Errorf("%s is both in routes and in localMethods", full)
				continue
			case !routed && !local:
				t.Errorf("%s has no forwarding decision: add it to routes (route.go) or to localMethods", full)
				continue
			case local:
				continue
			}
			md := svc.Methods().ByName(protoreflect.Name(m.MethodName))
			if md == nil {
				t.Fatalf("%s: no method descriptor", full)
			}
			if got, want := rt.reply().ProtoReflect().Descriptor().FullName(), md.Output().FullName(); got != want {
				t.Errorf("%s: the route's reply is a %s, the method returns a %s", full, got, want)
			}
			switch rt.rule {
			case onLeader, leaderPreferred:
			case onLeaderIfLinearizable:
				checkLinearizable(t, full, rt, md)
			default:
				t.Errorf("%s: unknown rule %d", full, rt.rule)
			}
		}
		for _, st := range sd.Streams {
			full := "/" + sd.ServiceName + "/" + st.StreamName
			seen[full] = true
			if _, ok := routes[full]; ok {
				t.Errorf("%s is a stream: streams are not forwarded (the interceptor never sees them)", full)
			}
			if _, ok := localMethods[full]; !ok {
				t.Errorf("stream %s is not listed in localMethods", full)
			}
		}
	}
	for m := range routes {
		if !seen[m] {
			t.Errorf("routes has %s, which no served service has", m)
		}
	}
	for m := range localMethods {
		if !seen[m] {
			t.Errorf("localMethods has %s, which no served service has", m)
		}
	}
}

// checkLinearizable checks that a read's rule reads the method's own
// request: a request with linearizable set goes to the leader, one
// without does not.
func checkLinearizable(t *testing.T, full string, rt route, md protoreflect.MethodDescriptor) {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		t.Fatalf("%s: %v", full, err)
	}
	field := md.Input().Fields().ByName("linearizable")
	if field == nil {
		t.Fatalf("%s: the request %s has no linearizable field", full, md.Input().FullName())
	}
	req := mt.New()
	if rt.toLeader(req.Interface()) {
		t.Errorf("%s: a request without linearizable goes to the leader", full)
	}
	req.Set(field, protoreflect.ValueOfBool(true))
	if !rt.toLeader(req.Interface()) {
		t.Errorf("%s: a linearizable request is served locally", full)
	}
}

// fakeNode is a member's view of the leader, set by the test.
type fakeNode struct {
	leader   bool
	id, addr string
}

func (n fakeNode) IsLeader() bool               { return n.leader }
func (n fakeNode) LeaderAPI() (id, addr string) { return n.id, n.addr }

// fakeScheduler answers with its own name, and records the calls it
// serves with their metadata.
type fakeScheduler struct {
	api.UnimplementedSchedulerServer
	name string

	mu    sync.Mutex
	calls []string
	mds   []metadata.MD
}

func (f *fakeScheduler) record(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	f.mds = append(f.mds, md)
}

// served returns the calls served so far and their metadata.
func (f *fakeScheduler) served() ([]string, []metadata.MD) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...), append([]metadata.MD(nil), f.mds...)
}

func (f *fakeScheduler) GetJob(ctx context.Context, req *api.GetJobRequest) (*api.Job, error) {
	f.record(ctx, "GetJob")
	return &api.Job{Id: req.JobId, Name: f.name}, nil
}

func (f *fakeScheduler) CancelJob(ctx context.Context, req *api.CancelJobRequest) (*api.CancelJobResponse, error) {
	f.record(ctx, "CancelJob")
	if req.JobId == 404 {
		return nil, status.Errorf(codes.NotFound, "job 404 not found on %s", f.name)
	}
	return &api.CancelJobResponse{Index: 7}, nil
}

func (f *fakeScheduler) ListExecutors(ctx context.Context, req *api.ListExecutorsRequest) (*api.ListExecutorsResponse, error) {
	f.record(ctx, "ListExecutors")
	return &api.ListExecutorsResponse{Executors: []*api.Executor{{Id: f.name}}}, nil
}

func (f *fakeScheduler) GetStage(ctx context.Context, req *api.GetStageRequest) (*api.StageDetail, error) {
	f.record(ctx, "GetStage")
	return &api.StageDetail{Stage: &api.Stage{Id: req.StageId, Name: f.name}}, nil
}

// testIdentity stands for authUnary: the caller's token becomes its
// identity in the context.
func testIdentity(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(context.WithValue(ctx, identityKey, Identity{Secret: secretOf(ctx)}), req)
}

// serveRouted serves a fakeScheduler named name on 127.0.0.1 behind the
// router, as a member's API does, and returns it with its address.
func serveRouted(t *testing.T, name string, node leaderFinder) (*fakeScheduler, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := newForwarder(insecure.NewCredentials())
	r := router{self: name, node: node, conns: conns, outgoing: (&Server{}).outgoing}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(testIdentity, r.unary))
	f := &fakeScheduler{name: name}
	api.RegisterSchedulerServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
		conns.close()
	})
	return f, ln.Addr().String()
}

func dialScheduler(t *testing.T, addr string) api.SchedulerClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return api.NewSchedulerClient(cc)
}

// pair is a leader and a follower that knows it.
type pair struct {
	leader, follower *fakeScheduler
	client           api.SchedulerClient // the follower's
}

func newPair(t *testing.T) pair {
	t.Helper()
	leader, laddr := serveRouted(t, "leader", fakeNode{leader: true, id: "leader"})
	follower, faddr := serveRouted(t, "follower", fakeNode{id: "leader", addr: laddr})
	return pair{leader: leader, follower: follower, client: dialScheduler(t, faddr)}
}

func wantCalls(t *testing.T, f *fakeScheduler, want ...string) {
	t.Helper()
	got, _ := f.served()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s served %v, want %v", f.name, got, want)
	}
}

func TestFollowerForwardsALeaderCall(t *testing.T) {
	p := newPair(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer tok-1")
	resp, err := p.client.CancelJob(ctx, &api.CancelJobRequest{JobId: 1})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Index != 7 {
		t.Errorf("index %d, want the leader's 7", resp.Index)
	}
	wantCalls(t, p.leader, "CancelJob")
	wantCalls(t, p.follower)
	// The caller's token goes with the call, once, with the mark of the
	// member that forwarded it.
	_, mds := p.leader.served()
	if got := mds[0].Get("authorization"); len(got) != 1 || got[0] != "Bearer tok-1" {
		t.Errorf("the leader saw authorization %q, want the caller's token", got)
	}
	if got := mds[0].Get(forwardedKey); len(got) != 1 || got[0] != "follower" {
		t.Errorf("the leader saw %s %q, want [follower]", forwardedKey, got)
	}

	// The leader's error comes back as it is.
	_, err = p.client.CancelJob(context.Background(), &api.CancelJobRequest{JobId: 404})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "job 404 not found on leader" {
		t.Errorf("got %v, want the leader's NotFound", err)
	}
}

func TestFollowerServesALocalCall(t *testing.T) {
	p := newPair(t)
	resp, err := p.client.GetStage(context.Background(), &api.GetStageRequest{StageId: 3})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Stage.Name != "follower" {
		t.Errorf("served by %s, want the follower", resp.Stage.Name)
	}
	wantCalls(t, p.leader)
	wantCalls(t, p.follower, "GetStage")
}

func TestFollowerForwardsOnlyLinearizableReads(t *testing.T) {
	p := newPair(t)
	job, err := p.client.GetJob(context.Background(), &api.GetJobRequest{JobId: 1})
	if err != nil {
		t.Fatal(err)
	}
	if job.Name != "follower" {
		t.Errorf("a read served by %s, want the follower", job.Name)
	}
	job, err = p.client.GetJob(context.Background(), &api.GetJobRequest{JobId: 1, Linearizable: true})
	if err != nil {
		t.Fatal(err)
	}
	if job.Name != "leader" {
		t.Errorf("a linearizable read served by %s, want the leader", job.Name)
	}
	wantCalls(t, p.leader, "GetJob")
	wantCalls(t, p.follower, "GetJob")
}

func TestFollowerRefusesAForwardedCall(t *testing.T) {
	p := newPair(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), forwardedKey, "another")
	_, err := p.client.CancelJob(ctx, &api.CancelJobRequest{JobId: 1})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "already forwarded once") {
		t.Errorf("got %v, want Unavailable (already forwarded)", err)
	}
	// ListExecutors answers from the replica instead, as before.
	resp, err := p.client.ListExecutors(ctx, &api.ListExecutorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Executors[0].Id != "follower" {
		t.Errorf("served by %s, want the follower", resp.Executors[0].Id)
	}
	wantCalls(t, p.leader)
	wantCalls(t, p.follower, "ListExecutors")
}

func TestFollowerWithoutLeader(t *testing.T) {
	for _, tc := range []struct {
		name, id, msg string
	}{
		{"no leader", "", "no leader is known"},
		{"no address", "leader", "has not published its API address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			follower, addr := serveRouted(t, "follower", fakeNode{id: tc.id})
			client := dialScheduler(t, addr)
			_, err := client.CancelJob(context.Background(), &api.CancelJobRequest{JobId: 1})
			if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), tc.msg) {
				t.Errorf("CancelJob: got %v, want Unavailable (%s)", err, tc.msg)
			}
			_, err = client.GetJob(context.Background(), &api.GetJobRequest{JobId: 1, Linearizable: true})
			if status.Code(err) != codes.Unavailable {
				t.Errorf("linearizable GetJob: got %v, want Unavailable", err)
			}
			if _, err := client.GetJob(context.Background(), &api.GetJobRequest{JobId: 1}); err != nil {
				t.Errorf("GetJob: %v", err)
			}
			if _, err := client.ListExecutors(context.Background(), &api.ListExecutorsRequest{}); err != nil {
				t.Errorf("ListExecutors: %v", err)
			}
			wantCalls(t, follower, "GetJob", "ListExecutors")
		})
	}
}

func TestListExecutorsFallsBackWhenTheLeaderIsUnreachable(t *testing.T) {
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	follower, addr := serveRouted(t, "follower", fakeNode{id: "leader", addr: gone})
	client := dialScheduler(t, addr)
	resp, err := client.ListExecutors(context.Background(), &api.ListExecutorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Executors[0].Id != "follower" {
		t.Errorf("served by %s, want the follower", resp.Executors[0].Id)
	}
	_, err = client.CancelJob(context.Background(), &api.CancelJobRequest{JobId: 1})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("CancelJob: got %v, want Unavailable", err)
	}
	wantCalls(t, follower, "ListExecutors")
}

func TestLeaderServesItself(t *testing.T) {
	leader, addr := serveRouted(t, "leader", fakeNode{leader: true, id: "leader", addr: "127.0.0.1:1"})
	client := dialScheduler(t, addr)
	if _, err := client.CancelJob(context.Background(), &api.CancelJobRequest{JobId: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetJob(context.Background(), &api.GetJobRequest{JobId: 1, Linearizable: true}); err != nil {
		t.Fatal(err)
	}
	// A call a follower forwarded is served: the mark stops only a second
	// forward.
	ctx := metadata.AppendToOutgoingContext(context.Background(), forwardedKey, "follower")
	if _, err := client.CancelJob(ctx, &api.CancelJobRequest{JobId: 1}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, leader, "CancelJob", "GetJob", "CancelJob")
}

// TestRoutedReachesTheLeader checks the path of the package's own calls
// of its handlers (no interceptor): a follower's goes to the leader with
// the caller's token, a local one is served by the handler given.
func TestRoutedReachesTheLeader(t *testing.T) {
	leader, laddr := serveRouted(t, "leader", fakeNode{leader: true, id: "leader"})
	conns := newForwarder(insecure.NewCredentials())
	t.Cleanup(conns.close)
	r := router{self: "follower", node: fakeNode{id: "leader", addr: laddr}, conns: conns, outgoing: (&Server{}).outgoing}
	local := &fakeScheduler{name: "follower"}
	ctx := context.WithValue(context.Background(), identityKey, Identity{Secret: "tok-2"})

	resp, err := routed(ctx, r, api.Scheduler_CancelJob_FullMethodName, &api.CancelJobRequest{JobId: 1}, local.CancelJob)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Index != 7 {
		t.Errorf("index %d, want the leader's 7", resp.Index)
	}
	_, err = routed(ctx, r, api.Scheduler_CancelJob_FullMethodName, &api.CancelJobRequest{JobId: 404}, local.CancelJob)
	if status.Code(err) != codes.NotFound {
		t.Errorf("got %v, want the leader's NotFound", err)
	}
	stage, err := routed(ctx, r, api.Scheduler_GetStage_FullMethodName, &api.GetStageRequest{StageId: 2}, local.GetStage)
	if err != nil {
		t.Fatal(err)
	}
	if stage.Stage.Name != "follower" {
		t.Errorf("served by %s, want the follower", stage.Stage.Name)
	}
	wantCalls(t, leader, "CancelJob", "CancelJob")
	wantCalls(t, local, "GetStage")
	_, mds := leader.served()
	if got := mds[0].Get("authorization"); len(got) != 1 || got[0] != "Bearer tok-2" {
		t.Errorf("the leader saw authorization %q, want the caller's token", got)
	}
}
