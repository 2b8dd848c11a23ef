package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
)

// Options configure a Driver. Zero fields take the defaults on each.
type Options struct {
	// HeartbeatInterval is how often executors must send something.
	// Default 500ms.
	HeartbeatInterval time.Duration
	// ExecutorTimeout: an executor silent this long is declared lost
	// (RemoveExecutor). Deadlines restart when leadership is won.
	// Default 10s.
	ExecutorTimeout time.Duration
	// ResubmitTimeout is the wait between a fetch failure and the
	// resubmission of failed stages (Spark's RESUBMIT_TIMEOUT). Default
	// 200ms.
	ResubmitTimeout time.Duration
	// LocalityWait is how long a task with preferred executors waits for
	// a slot on one of them before it takes any (delay scheduling).
	// Default 100ms.
	LocalityWait time.Duration
	// CacheLocalityWait is how long a task that reads persisted
	// partitions waits for a slot on the executors keeping them (only
	// they can read them; elsewhere the task computes them again, as
	// Spark's PROCESS_LOCAL wait). Default 3s.
	CacheLocalityWait time.Duration
	// GracePeriod is how long a new leader waits for executors to
	// reconnect and report what they run before it launches anything; it
	// ends early once every live executor has reconnected. Default
	// 3×HeartbeatInterval + 1s: an executor whose leader froze (no
	// connection reset) notices after three unanswered heartbeats, and
	// must be back before the grace ends for its tasks to be adopted.
	GracePeriod time.Duration
	// MaxDirectResultSize: larger results stay in the executor's block
	// store (indirect results). Default 64 KiB.
	MaxDirectResultSize int64
	// QueuePerSlot is how many tasks beyond its running one each slot
	// may have queued on its executor when the stage's tasks are short
	// (under 20ms on average), so the next task is already there when one
	// ends: short tasks are otherwise bound by the round trip. Tasks of
	// other stages are never queued. Default 3; negative for none.
	QueuePerSlot int
	// QueuedWork lets a slot queue more than QueuePerSlot tasks of a stage
	// whose tasks are very short: as many as take about QueuedWork at the
	// stage's average task duration (at most maxQueuePerSlot), so that
	// sub-millisecond tasks are not bound by the round trip a report and
	// the next launch take, while a stage's tail is at most about
	// QueuedWork of queued work per slot. Default 20ms; negative: never
	// more than QueuePerSlot.
	QueuedWork time.Duration
	// SchedulingMode is ModeFIFO (the default: jobs take slots in the
	// order they were submitted) or ModeFair (pools share the slots by
	// weight and minimum share, as Spark's FAIR mode; a job names its
	// pool when submitted).
	SchedulingMode string
	// Pools configure FAIR pools by name; a pool not listed has weight 1
	// and no minimum share.
	Pools map[string]PoolConfig
	// Speculation launches copies of slow tasks (Spark's
	// spark.speculation; off by default): once SpeculationQuantile of a
	// stage attempt's tasks have succeeded (default 0.75), a task running
	// SpeculationMultiplier times their median duration (default 1.5),
	// and at least SpeculationMinRuntime (default 100ms), gets a copy on
	// another executor; the first to end wins.
	Speculation           bool
	SpeculationQuantile   float64
	SpeculationMultiplier float64
	SpeculationMinRuntime time.Duration
	// (Exclusion after task failures is the state's: dag.Config's
	// MaxFailuresPerExecutor and ExcludeTimeout.)

	// ReconnectGrace is how long an executor whose session dropped may
	// take to come back before it is declared lost (Spark's
	// onDisconnected → removeExecutor, with a little patience for a
	// blip): the attempts it ran end as executor losses that count
	// toward MaxTaskFailures. Default 3s; it is never longer than
	// ExecutorTimeout.
	ReconnectGrace time.Duration
	// ExecutorCerts requires every executor session to come over TLS
	// with an executor certificate named after the executor's id: an
	// executor is bound to its certificate, and nobody else can speak for
	// it.
	ExecutorCerts bool
	// Principal names who opened an executor session (its certificate or
	// its token): an executor id, once registered by one principal, is
	// bound to it for the leadership, and another principal's session
	// under that id is refused. nil binds nothing.
	Principal func(ctx context.Context) string
	// Bind, if set, binds an executor id to the principal of the session
	// that registers it, in replicated state, and refuses
	// (PermissionDenied) a principal other than the one bound. nil binds
	// for the leadership only.
	Bind func(ctx context.Context, executor, principal string) error
	// TicketKey returns the key launches are signed with (the members'
	// secret; nil before ACLs are bootstrapped: no tickets).
	TicketKey func() []byte
	// Clock is the driver's time (default the machine's).
	Clock Clock
	// Metrics registers the driver's Prometheus series (nil: not
	// exported).
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

func (o *Options) ensureDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatInterval, 500*time.Millisecond)
	def(&o.ExecutorTimeout, 10*time.Second)
	def(&o.ResubmitTimeout, 200*time.Millisecond)
	def(&o.LocalityWait, 100*time.Millisecond)
	def(&o.CacheLocalityWait, 3*time.Second)
	def(&o.GracePeriod, 3*o.HeartbeatInterval+time.Second)
	if o.QueuedWork == 0 {
		o.QueuedWork = 20 * time.Millisecond
	}
	if o.QueuePerSlot == 0 {
		o.QueuePerSlot = 3
	} else if o.QueuePerSlot < 0 {
		o.QueuePerSlot = 0
	}
	if o.SchedulingMode == "" {
		o.SchedulingMode = ModeFIFO
	}
	if o.SpeculationQuantile <= 0 || o.SpeculationQuantile > 1 {
		o.SpeculationQuantile = 0.75
	}
	if o.SpeculationMultiplier <= 0 {
		o.SpeculationMultiplier = 1.5
	}
	def(&o.SpeculationMinRuntime, 100*time.Millisecond)
	def(&o.ReconnectGrace, 3*time.Second)
	o.ReconnectGrace = min(o.ReconnectGrace, o.ExecutorTimeout)
	if o.MaxDirectResultSize <= 0 {
		o.MaxDirectResultSize = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
}

// Leader says who leads, for redirecting executors that reach a follower.
type Leader func() (id, apiAddr string)

// Driver is the leader's scheduling loop: it serves executors' sessions
// (api.Executors), offers their free slots to the tasks dag says may run,
// turns executors' status updates into TaskEnded commands (group commit),
// watches executor liveness, arms the resubmit timer and kills attempts
// nobody needs. It is active only while this node leads; everything it
// knows (which attempt runs where) is volatile and rebuilt after a
// takeover from what executors report.
//
// Each leadership's state is owned by one goroutine, its loop (see
// loop.go); sessions, proposals coming back and the clock post events to
// it.
type Driver struct {
	api.UnimplementedExecutorsServer

	opts   Options
	log    *slog.Logger
	clock  Clock
	state  State
	raft   Raft
	prop   Proposer
	leader Leader

	mu   sync.Mutex
	lead *leadership // nil when not leading

	stop    chan struct{}
	restart chan struct{}
	// wg tracks the follower goroutine; sessions, the goroutines of
	// executors' sessions.
	wg       sync.WaitGroup
	sessions sessionGroup
	// seq numbers task attempts (see launchBuilder.build).
	seq     atomic.Uint64
	metrics *metrics
}

// New returns a driver; Start runs it.
func New(state State, r Raft, prop Proposer, leader Leader, opts Options) *Driver {
	opts.ensureDefaults()
	d := &Driver{opts: opts, log: opts.Logger, clock: opts.Clock, state: state, raft: r, prop: prop, leader: leader, stop: make(chan struct{}), restart: make(chan struct{}, 1)}
	reg := opts.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	d.metrics = newMetrics(reg, d)
	return d
}

// Register registers the Executors service.
func (d *Driver) Register(s *grpc.Server) { api.RegisterExecutorsServer(s, d) }

// Connect serves one executor's session (api.Executors); see Serve.
func (d *Driver) Connect(stream grpc.BidiStreamingServer[api.ExecutorMessage, api.DriverMessage]) error {
	return d.Serve(stream)
}

// Start follows leadership: it leads while the node leads.
func (d *Driver) Start() {
	d.wg.Add(1)
	go d.follow()
}

// Stop stops leading and returns when every goroutine is done.
func (d *Driver) Stop() {
	close(d.stop)
	d.wg.Wait()
	d.sessions.closeAndWait()
}

// follow starts a leadership when the node wins and ends it when the node
// loses. It runs until Stop.
func (d *Driver) follow() {
	defer d.wg.Done()
	ch, cancel := d.raft.Subscribe()
	defer cancel()
	for {
		select {
		case <-d.stop:
			d.resign()
			return
		case leading := <-ch:
			d.resign()
			if leading {
				d.take()
			}
		case <-d.restart:
			if d.current() != nil {
				d.log.Info("driver: starting over (the state was replaced)")
				d.resign()
				d.take()
			}
		}
	}
}

// Restart makes a leading driver start over from the state as it is now,
// as a new leader would: after a restore replaced the state, what it knew
// (executors to watch, attempts running) is someone else's history.
func (d *Driver) Restart() {
	select {
	case d.restart <- struct{}{}:
	default:
	}
}

// take starts leading: after a barrier (the state then holds every
// committed entry), executor deadlines start from now.
func (d *Driver) take() {
	// The term is read before the barrier: once the barrier is through,
	// the node still leads in that term if it leads at all, so orders
	// stamped with it are this leadership's.
	term := d.raft.Term()
	for {
		err := d.raft.Barrier(10 * time.Second)
		if err == nil {
			break
		}
		if !d.raft.IsLeader() || d.raft.Term() != term {
			d.log.Warn("driver: barrier after election failed; not leading", "err", err)
			return
		}
		// Still the leader: without a driver the term would schedule
		// nothing, so try again.
		d.log.Warn("driver: barrier after election failed; trying again", "err", err)
		select {
		case <-d.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !d.raft.IsLeader() || d.raft.Term() != term {
		d.log.Info("driver: lost the leadership during the barrier", "term", term)
		return
	}
	l := newLeadership(d, term)
	d.mu.Lock()
	d.lead = l
	d.mu.Unlock()
	d.log.Info("driver: leading", "term", l.term, "executors", len(l.lastSeen))
	d.metrics.leaderships.Inc()
	l.start()
}

// resign stops leading at once: nothing more is launched, executors are
// told to find the new leader, and it returns once every goroutine of the
// leadership is done.
func (d *Driver) resign() {
	d.mu.Lock()
	l := d.lead
	d.lead = nil
	d.mu.Unlock()
	if l == nil {
		return
	}
	l.end()
	d.log.Info("driver: stopped leading", "term", l.term)
}

// Driving reports whether this node's driver schedules: it leads, past
// the barrier that follows its election.
func (d *Driver) Driving() bool { return d.current() != nil }

func (d *Driver) current() *leadership {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lead
}

// Dropped tells executors to delete blocks no job needs any more.
func (d *Driver) Dropped(dr *dag.Dropped) {
	if dr == nil {
		return
	}
	if l := d.current(); l != nil {
		l.post(evDropped{dr})
	}
}

// Running returns how many attempts each executor runs (leader only).
func (d *Driver) Running() map[string]int {
	out := map[string]int{}
	if l := d.current(); l != nil {
		l.ask(func() {
			for _, a := range l.attempts {
				out[a.exec]++
			}
		})
	}
	return out
}

// AttemptInfo is a running task attempt, as the leader knows it.
type AttemptInfo struct {
	Task                             uint64
	Partition, Attempt, StageAttempt int
	Executor                         string
	Started                          time.Time
	Speculative                      bool
}

// Attempts returns a stage's running attempts (on the leader; none
// elsewhere).
func (d *Driver) Attempts(stage dag.StageID) []AttemptInfo {
	var out []AttemptInfo
	if l := d.current(); l != nil {
		l.ask(func() {
			for task, a := range l.attempts {
				if a.key.stage == stage && !a.reported {
					out = append(out, AttemptInfo{Task: task, Partition: a.key.part, Attempt: int(a.id.Attempt), StageAttempt: a.key.attempt,
						Executor: a.exec, Started: a.started, Speculative: a.speculative})
				}
			}
		})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Task < out[b].Task })
	return out
}

// Unhealthy returns why connected executors that say they are unhealthy
// get no tasks (leader only).
func (d *Driver) Unhealthy() map[string]string {
	out := map[string]string{}
	if l := d.current(); l != nil {
		l.ask(func() {
			for id, c := range l.conns {
				if c.unhealthy != "" {
					out[id] = c.unhealthy
				}
			}
		})
	}
	return out
}

// LastHeartbeat returns when each connected executor was last heard of.
func (d *Driver) LastHeartbeat() map[string]time.Time {
	out := map[string]time.Time{}
	if l := d.current(); l != nil {
		l.ask(func() {
			l.refreshSeen()
			for id, t := range l.lastSeen {
				out[id] = t
			}
		})
	}
	return out
}

// graphEnc is a graph's wire form, computed once.
type graphEnc struct {
	key  string
	data []byte
}

func encodeGraph(g *plan.Graph) (*graphEnc, error) {
	b, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &graphEnc{key: hex.EncodeToString(sum[:12]), data: b}, nil
}

func wrap(err error, format string, args ...any) error {
	return fmt.Errorf("driver: %s: %w", fmt.Sprintf(format, args...), err)
}
