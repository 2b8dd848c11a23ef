package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/internal/grpcdial"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Options configure an Executor. Zero fields take the defaults on each.
type Options struct {
	// ID is the executor's identity. Default: the id kept in DataDir,
	// or a new random one stored there.
	ID string
	// DataDir holds the block store and the executor's id. Required.
	DataDir string
	// Schedulers are the API addresses of quorum members (any will do;
	// followers point to the leader). Required.
	Schedulers []string
	// Addr is the block service's listen address. Default 127.0.0.1:0.
	Addr string
	// Advertise is the block service address peers use. Default: the
	// listener's address.
	Advertise string
	// Cores is the number of task slots. Default: the CPU count.
	Cores int
	// Registry holds the functions tasks may call. Default: the built-ins.
	Registry *ops.Registry
	// Store configures the block store.
	Store blockstore.Options
	// Exit ends the process (chaos.exit). Default os.Exit.
	Exit func(code int)
	// NoExit makes chaos.exit fail the task instead (for an executor
	// embedded in another process, as in schedd -dev).
	NoExit bool
	// ChaosExitBeforeRename lists saveAsTextFile partitions whose first
	// attempt (attempt 0) makes the process exit after the leader
	// authorised its commit and before the rename: the worst moment for
	// an executor to die. For drills and tests only.
	ChaosExitBeforeRename []int
	// ChaosJobCommitDelay delays every saveAsTextFile job commit (the
	// leader waits for it before logging the job's last ends). For drills
	// and tests only.
	ChaosJobCommitDelay time.Duration
	// TLS, when set, secures the sessions with the leader, the block
	// service and fetches from other executors. The certificate must be
	// an executor's, named after the executor's id (which it sets when ID
	// is empty).
	TLS *tlsconf.Config
	// Insecure allows a non-loopback block service address without TLS.
	Insecure bool
	// Confine bounds what tasks' code may touch here: pipe's programs,
	// textFile's and saveAsTextFile's paths, pipe's user (see
	// ops.Confinement). nil confines nothing (execd always sets one).
	Confine *ops.Confinement
	// Token is the ACL token (policy executor) the executor joins with
	// once the cluster's ACLs are on.
	Token string
	// Memory is the executor's memory budget in bytes, split across its
	// slots: each task keeps at most about Memory/Cores/4 bytes of
	// records in memory before it spills to DataDir/spill (a map task's
	// output goes to the block store in segments, a reducer sorts and
	// aggregates externally), and fetches at most as much ahead; the
	// block store's cache is Memory/8 (at most 64 MiB). 0: no budget
	// (nothing spills). execd's default is half the machine's memory; it
	// also sets the Go runtime's memory limit to it unless GOMEMLIMIT is
	// set.
	Memory int64
	// Metrics registers the executor's Prometheus series (nil: not
	// exported).
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// Executor runs tasks for the quorum's leader and serves the blocks they
// write. Concurrency: one session goroutine talks to the leader; each task
// runs in its own goroutine, bounded by Cores; the block service serves
// from its own goroutines. Shared state is under mu.
type Executor struct {
	// welcomed is when a leader last welcomed a session (unix ns; 0:
	// never), so that an executor that reaches no scheduler says so.
	welcomed atomic.Int64
	opts     Options
	log      *slog.Logger
	store    *blockstore.Store
	conns    *blockstore.Conns
	runner   *ops.Runner
	ln       net.Listener
	grpc     *grpc.Server
	addr     string

	// ctx ends when Close begins: it ends Run's sessions and cancels the
	// tasks.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the goroutines the executor starts (the block service's,
	// Run's, the tasks'): Close waits for all of them before it closes
	// the store they use. Add is called only under mu while closing is
	// false, so that no goroutine starts once Close waits.
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu sync.Mutex
	// closing: Close has begun; nothing starts any more.
	closing     bool
	highestTerm uint64
	// grantKey checks block fetches' grants (a public key): the latest
	// welcome's (nil until the first welcome: no blocks served).
	grantKey  atomic.Pointer[[]byte]
	running   map[uint64]*task       // by task id
	pending   map[uint64]*update     // final updates not yet acknowledged
	unsent    []uint64               // pending updates not sent in this session
	sessionID uint64                 // the current session
	graphs    map[string]*plan.Graph // by graph key
	kick      chan struct{}          // wakes the sender
	// queue holds the launched tasks waiting for one of the workers
	// (idle of them waiting on work, e.mu's condition): see pool.go.
	queue         []queued
	work          *sync.Cond
	workers, idle int
	stats         stats
	// commits are the output commits waiting for the leader's decision,
	// by task; each is asked again in every new session until decided.
	commits map[uint64]*commitAsk
	// outputDone holds the answers to the leader's output operations
	// (see output.go) until the sender sends them.
	outputDone []*api.OutputDone
	outputSem  chan struct{}
	metrics    *metrics

	// sched holds a connection per scheduler address (schedMu).
	schedMu sync.Mutex
	sched   map[string]*grpc.ClientConn

	healthMu   sync.Mutex
	lastHealth string    // the health last reported ("": healthy)
	healthAt   time.Time // when it was found
}

// commitAsk is a task's question whether it may commit its output.
type commitAsk struct {
	id     *api.TaskID
	sent   uint64 // the session that last asked
	answer chan bool
}

// stats is what the executor did, for drills and operators.
type stats struct {
	launches    int64
	launchesJob map[uint64]int64
	fenced      int64
	firstByTerm map[uint64]int64
	lastByTerm  map[uint64]int64
}

// blockService serves the block store and the executor's stats.
type blockService struct {
	*blockstore.Service
	e *Executor
}

// Stats reports what the executor did since it started.
func (b *blockService) Stats(ctx context.Context, _ *api.ExecutorStatsRequest) (*api.ExecutorStats, error) {
	e := b.e
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &api.ExecutorStats{
		ExecutorId: e.opts.ID, HighestTerm: e.highestTerm, Launches: e.stats.launches, Fenced: e.stats.fenced,
		LaunchesByJob: map[uint64]int64{}, FirstLaunchByTerm: map[uint64]int64{}, LastLaunchByTerm: map[uint64]int64{},
		Running: int32(len(e.running)), Unacked: int32(len(e.pending)), BlockBytes: e.store.DiskUsage(),
	}
	if sh, err := e.store.Shuffles(); err == nil {
		st.Shuffles = int32(len(sh))
	}
	for k, v := range e.stats.launchesJob {
		st.LaunchesByJob[k] = v
	}
	for k, v := range e.stats.firstByTerm {
		st.FirstLaunchByTerm[k] = v
	}
	for k, v := range e.stats.lastByTerm {
		st.LastLaunchByTerm[k] = v
	}
	return st, nil
}

type task struct {
	id      *api.TaskID
	cancel  context.CancelFunc
	killed  bool
	begun   bool      // a worker took it (it is no longer queued)
	started time.Time // launched here (a new leader asks how long it has run)
}

type update struct {
	status *api.TaskStatus
	sent   uint64 // the session that last sent it
}

// New opens the executor's store and starts its block service.
func New(opts Options) (*Executor, error) {
	if opts.DataDir == "" {
		return nil, errors.New("executor: no data directory")
	}
	if len(opts.Schedulers) == 0 {
		return nil, errors.New("executor: no scheduler addresses")
	}
	if opts.Cores <= 0 {
		opts.Cores = runtime.NumCPU()
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Registry == nil {
		opts.Registry = ops.NewRegistry()
	}
	if opts.Exit == nil {
		opts.Exit = os.Exit
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TLS != nil {
		if opts.TLS.Role != tlsconf.RoleExecutor {
			return nil, fmt.Errorf("executor: the certificate is a %s's (%s), not an executor's", opts.TLS.Role, opts.TLS.Name)
		}
		if opts.ID == "" {
			opts.ID = opts.TLS.Name
		}
		if opts.ID != opts.TLS.Name {
			return nil, fmt.Errorf("executor: executor %s needs a certificate named %s, got one named %s", opts.ID, opts.ID, opts.TLS.Name)
		}
	} else if !opts.Insecure && !loopback(opts.Addr) {
		return nil, fmt.Errorf("executor: block service address %s is not a loopback address: without TLS anyone who reaches it reads every job's blocks; give -ca-file, -cert-file and -key-file, or -insecure to accept that", opts.Addr)
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	id, err := identity(opts.DataDir, opts.ID)
	if err != nil {
		return nil, err
	}
	opts.ID = id
	e := &Executor{
		opts:      opts,
		log:       opts.Logger.With("executor", id),
		conns:     &blockstore.Conns{Creds: dialCreds(opts.TLS, tlsconf.RoleExecutor)},
		sched:     map[string]*grpc.ClientConn{},
		running:   map[uint64]*task{},
		pending:   map[uint64]*update{},
		graphs:    map[string]*plan.Graph{},
		kick:      make(chan struct{}, 1),
		stats:     stats{launchesJob: map[uint64]int64{}, firstByTerm: map[uint64]int64{}, lastByTerm: map[uint64]int64{}},
		commits:   map[uint64]*commitAsk{},
		outputSem: make(chan struct{}, maxOutputOps),
	}
	e.work = sync.NewCond(&e.mu)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.highestTerm = loadTerm(opts.DataDir)
	if k, ok := loadGrantKey(opts.DataDir); ok {
		e.grantKey.Store(&k)
	}
	storeOpts := opts.Store
	storeOpts.Logger = e.log
	if opts.Memory > 0 && storeOpts.CacheSize == 0 {
		// Pebble's block cache is memory outside the Go heap: a share of
		// the budget.
		storeOpts.CacheSize = min(64<<20, max(opts.Memory/8, 4<<20))
	}
	if e.store, err = blockstore.Open(filepath.Join(opts.DataDir, "blocks"), &storeOpts); err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	if e.ln, err = net.Listen("tcp", opts.Addr); err != nil {
		e.store.Close()
		return nil, fmt.Errorf("executor: block service listener: %w", err)
	}
	e.addr = opts.Advertise
	if e.addr == "" {
		e.addr = e.ln.Addr().String()
	}
	reg := opts.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	e.metrics = newMetrics(reg, e)
	var taskMemory int64
	spillDir := filepath.Join(opts.DataDir, "spill")
	if opts.Memory > 0 {
		// A quarter of a slot's share: records cost about twice their
		// bytes in Go, and the fetch window, the block cache and the
		// runtime take the rest.
		taskMemory = max(opts.Memory/int64(opts.Cores)/4, 64<<10)
		// Runs of tasks that died with an earlier process.
		os.RemoveAll(spillDir)
		if err := os.MkdirAll(spillDir, 0o700); err != nil {
			e.store.Close()
			return nil, fmt.Errorf("executor: spill directory: %w", err)
		}
	}
	window := blockstore.DefaultWindow
	if taskMemory > 0 && taskMemory < int64(window) {
		window = int(max(taskMemory, 1<<20))
	}
	e.runner = &ops.Runner{Registry: opts.Registry, Confine: opts.Confine, TaskMemory: taskMemory, SpillDir: spillDir,
		Fetcher: &blockstore.Fetcher{Local: e.store, LocalID: id, Conns: e.conns, Window: window,
			Observe: func(n int, failed bool) {
				if failed {
					e.metrics.fetchErr.Inc()
					return
				}
				e.metrics.fetched.Add(float64(n))
			}}}
	// Stop waits for the block service's handlers, which read the store
	// Close closes after it.
	serverOpts := append(blockstore.ServerOptions(), grpc.MaxRecvMsgSize(16<<20), grpc.WaitForHandlers(true))
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS.Server(true))))
	}
	e.grpc = grpc.NewServer(serverOpts...)
	api.RegisterBlocksServer(e.grpc, &blockService{Service: &blockstore.Service{Store: e.store, Key: func() ([]byte, bool) {
		k := e.grantKey.Load()
		if k == nil {
			return nil, false
		}
		return *k, true
	}}, e: e})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.grpc.Serve(e.ln)
	}()
	return e, nil
}

// identity returns the executor's id: the one given (recorded in dir), or
// the one recorded, or a new one.
func identity(dir, given string) (string, error) {
	path := filepath.Join(dir, "executor-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if given != "" && given != stored {
			return "", fmt.Errorf("executor: %s belongs to executor %q, not %q", dir, stored, given)
		}
		return stored, nil
	case errors.Is(err, os.ErrNotExist):
	default:
		return "", fmt.Errorf("executor: %w", err)
	}
	id := given
	if id == "" {
		var r [4]byte
		rand.Read(r[:])
		id = "exec-" + hex.EncodeToString(r[:])
	}
	if err := writeFileDurably(path, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	return id, nil
}

// ID returns the executor's id.
func (e *Executor) ID() string { return e.opts.ID }

// Addr returns the block service's address.
func (e *Executor) Addr() string { return e.addr }

// Store returns the block store.
func (e *Executor) Store() *blockstore.Store { return e.store }

// Run talks to the quorum until ctx ends: it connects to the leader
// (through any member), runs the tasks it is given, reports them, and
// reconnects whenever the session breaks. Tasks keep running across a
// leader change and their reports are kept until a leader acknowledges
// them. Close ends Run too; Run after Close returns an error at once.
func (e *Executor) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return errClosed
	}
	e.wg.Add(1)
	e.mu.Unlock()
	defer e.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel) // Close ends the sessions
	defer stop()
	e.log.Info("executor started", "addr", e.addr, "cores", e.opts.Cores, "schedulers", strings.Join(e.opts.Schedulers, ","))
	hint := ""
	next := 0
	backoff := 25 * time.Millisecond
	var session uint64
	avoid := ""
	var refused string
	var refusedAt time.Time
	// unreachedAt: when "cannot reach a scheduler" was last said; the
	// first time after 5s, then after 10s, 20s, ... 1 min.
	unreachedAt, unreachedEvery := time.Now(), 5*time.Second
	for ctx.Err() == nil {
		addr := hint
		if addr == "" {
			// Ask every member at once who leads, rather than trying them
			// in turn: a frozen member would hold the executor for its
			// whole hello timeout, long enough for a new leader's grace
			// period to end without it.
			addr = e.findLeader(ctx, avoid)
		}
		if addr == "" {
			addr = e.opts.Schedulers[next%len(e.opts.Schedulers)]
			next++
		}
		session++
		leader, err := e.session(ctx, addr, session)
		hint = leader
		avoid = ""
		if err != nil && leader == "" {
			avoid = addr // silent or broken: ask the others first
		}
		if ctx.Err() != nil {
			break
		}
		if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
			// Refused: say why (once in a while), and do not hammer.
			if msg := status.Convert(err).Message(); msg != refused || time.Since(refusedAt) > 30*time.Second {
				e.log.Warn("the scheduler refused this executor's session", "scheduler", addr, "err", msg)
				refused, refusedAt = msg, time.Now()
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if err != nil {
			e.log.Debug("session ended", "scheduler", addr, "err", err)
			// Reaching no scheduler for a while (a wrong -schedulers, the
			// quorum down): say so in plain words, less often as it lasts.
			w := e.welcomed.Load()
			if w > unreachedAt.UnixNano() {
				unreachedEvery = 5 * time.Second
			}
			if time.Since(time.Unix(0, w)) > 5*time.Second && time.Since(unreachedAt) > unreachedEvery && leader == "" {
				unreachedAt, unreachedEvery = time.Now(), min(2*unreachedEvery, time.Minute)
				e.log.Warn("cannot reach a scheduler; retrying", "scheduler", addr, "err", grpcdial.Plain(err), "schedulers", strings.Join(e.opts.Schedulers, ","), "next_warning_in", unreachedEvery)
			}
		}
		// No leader known, or a member that names itself the leader but
		// does not lead yet (its driver starts after a barrier): wait a
		// little rather than spin.
		if leader == "" || leader == addr {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			// Short waits: after a leader's death the next one is a few
			// hundred milliseconds away, and tasks wait for us.
			backoff = min(2*backoff, 100*time.Millisecond)
		} else {
			backoff = 25 * time.Millisecond
		}
	}
	return nil
}

// errClosed is Run's error after Close.
var errClosed = errors.New("executor: closed")

// Close stops the executor: it ends Run, kills the tasks, and waits for
// every goroutine the executor started (the tasks, Run's, the block
// service's) before it closes its connections and its store, so that
// nothing touches the store once it is closed. A task whose code ignores
// its cancellation holds Close until it returns. Close may be called more
// than once; the calls after the first return its result.
func (e *Executor) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.close() })
	return e.closeErr
}

func (e *Executor) close() error {
	e.mu.Lock()
	e.closing = true
	for _, t := range e.running {
		t.cancel()
	}
	e.wakeWorkersLocked()
	e.mu.Unlock()
	e.cancel()
	e.grpc.Stop()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(5 * time.Second):
			e.mu.Lock()
			n := len(e.running)
			e.mu.Unlock()
			e.log.Warn("closing: waiting for killed tasks to end", "running", n)
		}
	}
	e.conns.Close()
	e.schedMu.Lock()
	for _, cc := range e.sched {
		cc.Close()
	}
	e.sched = map[string]*grpc.ClientConn{}
	e.schedMu.Unlock()
	return e.store.Close()
}

// health returns why the executor should get no tasks now, or "". A
// change is logged once (not once per task or heartbeat).
func (e *Executor) health() string {
	e.healthMu.Lock()
	defer e.healthMu.Unlock()
	// Every report batch carries the health; the disk is asked at most
	// every healthEvery (a statfs per batch was 9% of an executor's CPU
	// running empty tasks).
	now := time.Now()
	if now.Sub(e.healthAt) < healthEvery {
		return e.lastHealth
	}
	e.healthAt = now
	h := e.store.Health()
	if h != e.lastHealth {
		if h != "" {
			e.log.Error("executor unhealthy: it takes no tasks until this clears", "reason", h)
			e.metrics.unhealthy.Set(1)
		} else {
			e.log.Info("executor healthy again", "was", e.lastHealth)
			e.metrics.unhealthy.Set(0)
		}
		e.lastHealth = h
	}
	return h
}

// healthEvery is how old a health check may be when a report carries it.
const healthEvery = 100 * time.Millisecond

// dialCreds are the credentials to dial a peer of a role.
func dialCreds(c *tlsconf.Config, role string) credentials.TransportCredentials {
	if c == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(c.Client(role))
}

// loopback reports whether a listen address is on the loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func (e *Executor) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// The highest leader term obeyed is kept in the data directory, so that a
// restarted executor still refuses a deposed leader.
func termPath(dir string) string { return filepath.Join(dir, "highest-term") }

func loadTerm(dir string) uint64 {
	b, err := os.ReadFile(termPath(dir))
	if err != nil {
		return 0
	}
	var t uint64
	fmt.Sscan(strings.TrimSpace(string(b)), &t)
	return t
}

// raiseTerm records a higher term. e.mu is held.
func (e *Executor) raiseTerm(t uint64) {
	if t <= e.highestTerm {
		return
	}
	e.highestTerm = t
	// Durably: a restarted executor must still refuse a deposed leader.
	if err := writeFileDurably(termPath(e.opts.DataDir), []byte(fmt.Sprintf("%d\n", t)), 0o644); err != nil {
		e.log.Warn("could not keep the highest term obeyed", "term", t, "err", err)
	}
}

// grantKeyPath keeps the grant key of the latest welcome, so that an
// executor restarted with its blocks serves them at once (as it did before
// its restart) rather than refusing every fetch until a leader welcomes
// it again.
func grantKeyPath(dir string) string { return filepath.Join(dir, "grant.pub") }

// loadGrantKey returns the kept grant key, if any.
func loadGrantKey(dir string) ([]byte, bool) {
	b, err := os.ReadFile(grantKeyPath(dir))
	if err != nil {
		return nil, false
	}
	return b, true
}

// setGrantKey adopts a welcome's grant key and keeps it (owner-only: it
// is public, but which key an executor trusts is not for others to set).
func (e *Executor) setGrantKey(k []byte) {
	key := append([]byte{}, k...)
	e.grantKey.Store(&key)
	if old, ok := loadGrantKey(e.opts.DataDir); ok && bytes.Equal(old, key) {
		return
	}
	if err := writeFileDurably(grantKeyPath(e.opts.DataDir), key, 0o600); err != nil {
		e.log.Warn("could not keep the grant key", "err", err)
	}
}
