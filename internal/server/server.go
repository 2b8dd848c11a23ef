package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/driver"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/propose"
	"github.com/baton-sched/baton/raftnet"
	"github.com/baton-sched/baton/tlsconf"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Config configures a scheduler node.
type Config struct {
	// ID is the node's id in the quorum. Required.
	ID string
	// DataDir holds the node's Raft log, stable store and snapshots.
	// Required.
	DataDir string
	// RaftAddr, APIAddr (gRPC) and HTTPAddr (JSON API) are TCP listen
	// addresses. HTTPAddr may be empty to serve no HTTP.
	RaftAddr string
	APIAddr  string
	HTTPAddr string
	// APIAdvertise and HTTPAdvertise are the addresses the member table
	// publishes for others (clients, followers forwarding, the UI's
	// links); default: the listeners' (needed when listening on 0.0.0.0).
	APIAdvertise, HTTPAdvertise string
	// Bootstrap is the initial quorum, used only when DataDir holds no
	// Raft state. Join lists API addresses of members to ask for
	// admission when DataDir holds no Raft state. At most one is set;
	// with neither, a node without state waits to be added.
	Bootstrap []raftnet.Peer
	Join      []string
	// Raft tunes timeouts and snapshots; its ID, DataDir, RaftAddr,
	// Bootstrap, FSM and Logger fields are set from this Config.
	Raft raftnet.Options
	// DAG is the scheduler state's configuration. Every member must use
	// the same (it is not logged); leave it zero for the defaults and set
	// per-job limits with JobDefaults instead.
	DAG dag.Config
	// JobDefaults are the limits the leader stamps on a submission that
	// sets none (they travel in the log, so members may differ here).
	JobDefaults JobDefaults
	// Limits bound what a submission may ask for (admission, on the
	// leader, before anything is logged); zero fields take the defaults.
	Limits Limits
	// LeaveOnTerminate removes the node from the quorum when it shuts
	// down (a graceful leave); by default it stays a member and rejoins
	// when restarted.
	LeaveOnTerminate bool
	// Confine bounds the paths plans may read and write (textFile,
	// saveAsTextFile) with the executors' rules: schedd -data-root. nil
	// allows any path.
	Confine *ops.Confinement
	// Resolver lists input files for textFile sources at submission;
	// nil rejects plans that read files.
	Resolver plan.Resolver
	// Functions checks the functions plans use; default: the built-ins
	// (kind and arguments checked) and the functions live executors
	// report holding (user functions, built into their execd).
	Functions plan.Functions
	// Driver tunes the leader's scheduling loop.
	Driver driver.Options
	// Pprof serves net/http/pprof under /debug/pprof/ on the HTTP address.
	Pprof bool
	// ProposalBatch bounds the commands in one log entry (group commit);
	// 0 means the proposer's default (1024). 1 turns batching off.
	ProposalBatch int
	// TLS, when set, secures every connection: Raft (mutual TLS between
	// members), the gRPC API (clients, executors and other members must
	// present a certificate of the CA unless VerifyIncoming is off) and
	// HTTP (a certificate is asked of no one: browsers use tokens).
	TLS            *tlsconf.Config
	VerifyIncoming bool
	// Insecure allows listening on non-loopback addresses without TLS.
	Insecure bool
	// ACL says the cluster runs with ACLs (schedd -acl, as Nomad's
	// acl.enabled): until this member's replica holds the bootstrap it
	// serves only the calls that need no token (its own status and the
	// bootstrap), so a member cut off while the ACLs were bootstrapped
	// never serves anyone as if they were off. Without it ACLs turn on at
	// the bootstrap, and such a member answers without a token until it
	// catches up.
	ACL bool
	// Token is the ACL token (operator or management) a node without
	// state presents when it asks to Join a quorum whose ACLs are on.
	Token string
	// Fatal is called when the node must stop at once: a log entry it
	// cannot apply (corrupt, or its checksum does not match). It should
	// not return (schedd logs the error and exits); if it does, the
	// node panics.
	Fatal  func(err error)
	Logger *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("no node id (-id)"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("no data directory (-data-dir)"))
	}
	if c.RaftAddr == "" {
		errs = append(errs, errors.New("no raft address (-raft-addr)"))
	}
	if c.APIAddr == "" {
		errs = append(errs, errors.New("no API address (-api-addr)"))
	}
	if len(c.Bootstrap) > 0 && len(c.Join) > 0 {
		errs = append(errs, errors.New("bootstrap and join are exclusive"))
	}
	c.Limits.ensureDefaults()
	if c.TLS == nil && !c.Insecure {
		for _, a := range []struct{ flag, addr string }{{"-raft-addr", c.RaftAddr}, {"-api-addr", c.APIAddr}, {"-http-addr", c.HTTPAddr}} {
			if a.addr != "" && !Loopback(a.addr) {
				errs = append(errs, fmt.Errorf("%s %s is not a loopback address: without TLS anyone who reaches it could run code on the executors and rewrite the state; give -ca-file, -cert-file and -key-file, or -insecure to accept that", a.flag, a.addr))
			}
		}
	}
	if err := c.Limits.check(c.DAG.WithDefaults()); err != nil {
		errs = append(errs, err)
	}
	if n := c.Driver.MaxDirectResultSize; n > MaxDirectResultSize {
		errs = append(errs, fmt.Errorf("-max-direct-result-size %d is above %d, the largest result one Raft log entry carries (%d bytes less %d for the rest of the entry); results above the setting stay on the executors, so a smaller one loses nothing",
			n, MaxDirectResultSize, propose.MaxEntryBytes, propose.MaxEntryBytes-MaxDirectResultSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// JobDefaults are default per-job limits.
type JobDefaults struct {
	MaxTaskFailures int
	MaxResultSize   int64
}

// Server is a running scheduler node.
type Server struct {
	cfg  Config
	log  *slog.Logger
	fsm  *fsm.FSM
	node *raftnet.Node
	prop *propose.Proposer
	fwd  *forwarder
	drv  *driver.Driver
	// submit takes submissions from request to logged job.
	submit *submitter
	// blocks fetches indirect results from executors.
	blocks *blockstore.Conns

	grpc   *grpc.Server
	apiLn  net.Listener
	http   *http.Server
	httpLn net.Listener

	api.UnimplementedSchedulerServer
	api.UnimplementedOperatorServer
	api.UnimplementedACLServer
	// openIndex is the last log index the node held when it started:
	// until its replica has applied that far, it cannot tell whether ACLs
	// are on.
	openIndex uint64

	stop chan struct{}
	// streams are the open streams an ACL change may end; aclChange
	// signals a change (see revoke.go).
	streams   openStreams
	aclChange chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup

	hist    *history
	metrics *metrics
	churn   churn
	// wired holds the driver once it exists: the FSM's hooks run from
	// the moment Raft opens (replaying the log), before New has built
	// everything, and must see only what is there.
	wired atomic.Pointer[driver.Driver]
}

// testHookAfterRaftOpen, when set, runs right after the Raft node opens
// in New (tests widen the window in which Raft applies entries before the
// rest of the node exists).
var testHookAfterRaftOpen func()

// New starts a node: it opens its listeners (failing clearly if an
// address is in use), its Raft node, and serves. Close stops it.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = ops.FileResolver{Confine: cfg.Confine}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), stop: make(chan struct{}), aclChange: make(chan struct{}, 1)}
	if cfg.TLS != nil && (cfg.TLS.Role != tlsconf.RoleServer || cfg.TLS.Name != cfg.ID) {
		return nil, fmt.Errorf("server: node %s needs a server certificate named %s (batonctl tls cert create -server -name %s), got a %s certificate named %s",
			cfg.ID, cfg.ID, cfg.ID, cfg.TLS.Role, cfg.TLS.Name)
	}
	var err error
	if s.apiLn, err = net.Listen("tcp", cfg.APIAddr); err != nil {
		return nil, fmt.Errorf("server: API listener: %w", err)
	}
	if cfg.HTTPAddr != "" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			s.apiLn.Close()
			return nil, fmt.Errorf("server: HTTP listener: %w", err)
		}
		if cfg.TLS != nil {
			s.httpLn = tls.NewListener(s.httpLn, cfg.TLS.Server(false))
		}
	}
	s.hist = newHistory()
	s.metrics = newMetrics(s)
	s.fsm = fsm.New(fsm.Options{Config: cfg.DAG, Logger: s.log, OnApply: func(cmds []dag.Command, results []dag.Result, took time.Duration) {
		s.hist.applied(cmds, results)
		s.metrics.observeApply(took)
		s.logEvents(results)
	}, OnRestore: func() { s.hist.reset(); s.aclChanged() }, OnACLChange: s.aclChanged, OnCorrupt: func(err error) {
		s.log.Error("stopping: a log entry cannot be applied", "err", err)
		if cfg.Fatal != nil {
			cfg.Fatal(err)
		}
	}})
	if s.cfg.Functions == nil {
		s.cfg.Functions = &functions{builtin: ops.NewRegistry(), fsm: s.fsm}
	}
	s.submit = &submitter{state: s.fsm, jobs: nodeJobs{s}, opts: submitOptions{Limits: cfg.Limits, Defaults: cfg.JobDefaults,
		Resolver: s.cfg.Resolver, Functions: s.cfg.Functions, Confine: cfg.Confine}}
	ropts := cfg.Raft
	ropts.ID, ropts.DataDir, ropts.RaftAddr, ropts.Bootstrap = cfg.ID, cfg.DataDir, cfg.RaftAddr, cfg.Bootstrap
	ropts.FSM, ropts.Logger, ropts.TLS = s.fsm, s.log.With("component", "raft"), raftTLS(cfg.TLS)
	if s.node, err = raftnet.Open(ropts); err != nil {
		s.apiLn.Close()
		if s.httpLn != nil {
			s.httpLn.Close()
		}
		return nil, fmt.Errorf("server: %w", err)
	}
	s.openIndex = s.node.Raft().LastIndex()
	if testHookAfterRaftOpen != nil {
		testHookAfterRaftOpen()
	}
	s.prop = propose.New(s.node, propose.Options{MaxBatch: cfg.ProposalBatch})
	s.fwd = newForwarder(s.dialCreds(tlsconf.RoleServer))
	var grants struct {
		sync.Mutex
		secret []byte
		signer *blockstore.Signer
	}
	s.blocks = &blockstore.Conns{Creds: s.dialCreds(tlsconf.RoleExecutor), ResultGrant: func(job uint64) []byte {
		secret := s.fsm.ServerSecret()
		grants.Lock()
		defer grants.Unlock()
		if !bytes.Equal(secret, grants.secret) || grants.signer == nil {
			grants.secret, grants.signer = secret, blockstore.NewSigner(secret)
		}
		return grants.signer.ResultGrant(job)
	}}
	dopts := cfg.Driver
	dopts.Logger = s.log
	dopts.Metrics = s.metrics.reg
	dopts.ExecutorCerts = cfg.TLS != nil && cfg.VerifyIncoming
	dopts.TicketKey = s.fsm.ServerSecret
	dopts.Principal = func(ctx context.Context) string {
		if p, ok := tlsconf.PeerFromContext(ctx); ok {
			return "cert:" + p.Name
		}
		if id := IdentityFrom(ctx); id.Accessor != "" {
			return "token:" + id.Accessor
		}
		return ""
	}
	dopts.Bind = s.bindExecutor
	s.watchLeaders()
	s.drv = driver.New(s.fsm, s.node, s.prop, s.leaderAPI, dopts)
	s.wired.Store(s.drv)
	s.submit.opts.Outputs = s.drv

	s.grpc = grpc.NewServer(grpc.Creds(s.serveCreds()), grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage), grpc.ChainUnaryInterceptor(s.recoverUnary, s.authUnary, s.leaderHeader, s.forwardUnary), grpc.ChainStreamInterceptor(s.recoverStream, s.authStream))
	api.RegisterSchedulerServer(s.grpc, s)
	api.RegisterOperatorServer(s.grpc, s)
	api.RegisterACLServer(s.grpc, s)
	s.drv.Register(s.grpc)
	s.drv.Start()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(s.apiLn); err != nil {
			s.log.Error("gRPC server stopped", "err", err)
		}
	}()
	if s.httpLn != nil {
		s.http = &http.Server{Handler: s.httpAuth(s.httpHandler()), ReadHeaderTimeout: 10 * time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("HTTP server stopped", "err", err)
			}
		}()
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.node.RunMembership(s.stop, s.membership())
	}()
	go s.recheckLoop()
	s.log.Info("scheduler node started", "raft", s.node.Addr(), "api", s.APIAddr(), "http", s.HTTPAddr())
	return s, nil
}

// serveCreds are the gRPC API's transport credentials.
func (s *Server) serveCreds() credentials.TransportCredentials {
	if s.cfg.TLS == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(s.cfg.TLS.Server(s.cfg.VerifyIncoming))
}

// raftTLS is Raft's mutual TLS: members serve and dial one another with
// their server certificates of the cluster's CA, and only a server's
// certificate may make Raft calls (raftnet then serves only the current
// members among them, by the name the certificate gives). New has
// checked that this node's own certificate is a server's named as the
// node.
func raftTLS(c *tlsconf.Config) *raftnet.TLS {
	if c == nil {
		return nil
	}
	return &raftnet.TLS{Server: c.Server(true), Client: c.Client(tlsconf.RoleServer), Identify: func(st tls.ConnectionState) (string, error) {
		p, err := tlsconf.PeerOf(st)
		if err != nil {
			return "", err
		}
		if p.Role != tlsconf.RoleServer {
			return "", fmt.Errorf("its certificate is a %s's (%s), not a server's", p.Role, p.Name)
		}
		return p.Name, nil
	}}
}

// dialCreds are the credentials to dial a peer of the given role (another
// member's API, an executor's block service).
func (s *Server) dialCreds(role string) credentials.TransportCredentials {
	if s.cfg.TLS == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(s.cfg.TLS.Client(role))
}

// Loopback reports whether a listen address is on the loopback interface
// (127.0.0.0/8, ::1 or localhost): reachable from this machine only.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// watchLeaders counts the leader changes Raft reports.
func (s *Server) watchLeaders() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.node.Raft().RegisterObserver(obs)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.node.Raft().DeregisterObserver(obs)
		for {
			select {
			case o := <-ch:
				if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
					s.metrics.leaderChange.Inc()
					s.churn.saw(time.Now())
				}
			case <-s.stop:
				return
			}
		}
	}()
}

// APIAddr returns the gRPC listener's address.
func (s *Server) APIAddr() string { return s.apiLn.Addr().String() }

// HTTPAddr returns the HTTP listener's address, or "".
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// RaftAddr returns the Raft address.
func (s *Server) RaftAddr() string { return s.node.Addr() }

// Node returns the Raft node.
func (s *Server) Node() *raftnet.Node { return s.node }

// FSM returns the replicated state.
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Close stops the node gracefully: it leaves the quorum if configured to,
// stops serving (letting calls in progress finish until ctx ends), hands
// leadership to a follower if it leads, and closes its stores.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		if s.cfg.LeaveOnTerminate {
			if lerr := s.leave(ctx); lerr != nil {
				s.log.Warn("could not leave the quorum", "err", lerr)
			}
		}
		close(s.stop)
		if s.http != nil {
			s.http.Shutdown(ctx)
		}
		// Hand leadership over first and stop the driver: executors'
		// sessions end only when it stops (they are told where the new
		// leader is), and the graceful stop below waits for them.
		if servers, serr := s.node.Servers(); serr == nil && len(servers) > 1 && s.node.IsLeader() {
			if terr := s.node.TransferLeadership(""); terr != nil {
				s.log.Warn("could not hand leadership over", "err", terr)
			}
		}
		s.drv.Stop()
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.grpc.Stop()
		}
		s.prop.Close()
		err = s.node.Shutdown()
		s.blocks.Close()
		s.wg.Wait()
		s.fwd.close()
		s.log.Info("scheduler node stopped")
	})
	return err
}

// leave removes this node from the quorum through the leader.
func (s *Server) leave(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s.node.IsLeader() {
		if err := s.node.TransferLeadership(""); err != nil {
			return err
		}
		if _, err := s.node.WaitLeader(ctx); err != nil {
			return err
		}
	}
	for {
		_, err := s.removePeer(ctx, &api.RemovePeerRequest{Id: s.cfg.ID})
		if err == nil || status.Code(err) == codes.NotFound {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// recoverUnary turns a panic in a call's handler into an Internal error:
// a request must never bring a member down (and with it, one leader after
// another as clients retry). The panic is logged with its stack.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving a call", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "server: %s failed: internal error (%v)", info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

// recoverStream is recoverUnary for streams.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving a stream", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "server: %s failed: internal error (%v)", info.FullMethod, r)
		}
	}()
	return handler(srv, ss)
}

// LeaderHeader is the response header naming the leader's API address:
// clients that know it send their next calls there directly.
const LeaderHeader = "baton-leader-api"

func (s *Server) leaderHeader(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, addr := s.leaderAPI(); addr != "" {
		grpc.SetHeader(ctx, metadata.Pairs(LeaderHeader, addr))
	}
	return handler(ctx, req)
}

// leaderAPI returns the leader's id and API address, as known here.
func (s *Server) leaderAPI() (string, string) {
	id, _ := s.node.Leader()
	if m, ok := s.fsm.Member(id); ok {
		return id, m.APIAddr
	}
	return id, ""
}

func (s *Server) self() fsm.Member {
	m := fsm.Member{ID: s.cfg.ID, RaftAddr: s.node.Addr(), APIAddr: s.APIAddr(), HTTPAddr: s.HTTPAddr()}
	if s.cfg.APIAdvertise != "" {
		m.APIAddr = s.cfg.APIAdvertise
	}
	if s.cfg.HTTPAdvertise != "" && m.HTTPAddr != "" {
		m.HTTPAddr = s.cfg.HTTPAdvertise
	}
	return m
}

func (s *Server) publishSelf() error {
	me := s.self()
	if m, ok := s.fsm.Member(me.ID); ok && m == me {
		return nil
	}
	return s.applyMember(me)
}

func (s *Server) applyMember(m fsm.Member) error {
	data, err := fsm.EncodeMember(time.Now().UnixNano(), m)
	if err != nil {
		return err
	}
	_, err = s.node.Apply(data, 5*time.Second)
	return err
}

// membership is the server's part of raftnet's membership loops (when
// and how often is raftnet's): joining through the members listed in
// Join, and the member table, where the others find this node's API and
// HTTP addresses.
func (s *Server) membership() raftnet.Membership {
	m := raftnet.Membership{
		Registered: func() bool {
			m, ok := s.fsm.Member(s.cfg.ID)
			return ok && m == s.self()
		},
		Register: func(ctx context.Context) error {
			me := s.self()
			_, err := s.registerMember(internal(ctx), &api.RegisterMemberRequest{Id: me.ID, RaftAddr: me.RaftAddr, ApiAddr: me.APIAddr, HttpAddr: me.HTTPAddr})
			return err
		},
		Publish: s.publishSelf,
		Logger:  s.log,
	}
	if len(s.cfg.Join) > 0 {
		m.Join = s.join
	}
	return m
}

// join asks the members listed in Join to add this node.
func (s *Server) join() bool {
	me := s.self()
	for _, addr := range s.cfg.Join {
		cc, err := s.fwd.conn(addr)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if s.cfg.Token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.cfg.Token)
		}
		_, err = api.NewOperatorClient(cc).AddPeer(ctx, &api.AddPeerRequest{Id: me.ID, RaftAddr: me.RaftAddr, ApiAddr: me.APIAddr, HttpAddr: me.HTTPAddr})
		cancel()
		if err == nil {
			s.log.Info("joined the quorum", "via", addr)
			return true
		}
		s.log.Warn("join failed", "via", addr, "err", err)
	}
	return false
}
