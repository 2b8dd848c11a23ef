package drill

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc"
)

// Options shape a drill.
type Options struct {
	// Rounds is the number of jobs run under fault (default 1).
	Rounds int
	// Kill is the nemesis's target: leader, follower, executor, random
	// or none (default leader).
	Kill string
	// At is when it strikes: map, reduce, collect or random (default
	// random).
	At string
	// Seed makes random choices repeatable.
	Seed uint64
	// Executors (default 2, 4 slots each).
	Executors int
	// Bin holds the binaries (built when empty); Dir holds the cluster
	// (a temporary directory removed at the end when empty).
	Bin, Dir string
	// SleepMS slows each task a little so the nemesis can strike in the
	// middle of a stage (default 40).
	SleepMS int
	// Moments, when set, overrides At: round i strikes at
	// Moments[(i-1) % len(Moments)].
	Moments []string
	// Log receives a running account of the drill (nil: none); Verbose
	// adds each round's steps.
	Log     io.Writer
	Verbose bool
	// Secure runs the cluster with mutual TLS and ACLs (see
	// localcluster.Options.Secure).
	Secure bool
	// Speculation turns Spark's speculation on (-speculation, copies
	// after 20 ms) and gives each job's map stage a straggler to copy.
	Speculation bool
	// SchedFlags are extra schedd flags (after the drill's own).
	SchedFlags []string
	// OnKill, when set, is called with the round number and its target
	// once the target is killed, before it is restarted (tests take its
	// port meanwhile).
	OnKill func(round int, target *localcluster.Proc)
}

// Round is one job run under fault.
type Round struct {
	N      int    `json:"round"`
	Job    string `json:"job"`
	Target string `json:"target"` // "leader s2", "follower s1", "executor e1", "none"
	At     string `json:"at"`
	// ElectionMs: kill to a new leader (leader kills).
	ElectionMs float64 `json:"election_ms,omitempty"`
	// TakeoverMs: kill to the first task launched by the new leader
	// (leader kills; -1 when the new leader had nothing to launch).
	TakeoverMs float64 `json:"takeover_ms,omitempty"`
	NewLeader  string  `json:"new_leader,omitempty"`
	// Tasks that ran again: because of the scheduler failover (leader or
	// follower kills; must be 0), or because data was lost (executor
	// kills: lost map outputs are recomputed, as in Spark).
	RerunFailover int64 `json:"rerun_failover"`
	RerunDataLoss int64 `json:"rerun_data_loss"`
	// Attempts is each stage's last attempt number (0: it ran once).
	Attempts []int32 `json:"stage_attempts"`
	// TaskFailures counts the task ends of the job that were not
	// successes (killed, lost, failed).
	TaskFailures int64   `json:"task_failures"`
	JobMs        float64 `json:"job_ms"`
	BaselineMs   float64 `json:"baseline_ms"`
	// Exact: the answer and the accumulators were the reference's.
	Exact bool   `json:"exact"`
	Error string `json:"error,omitempty"`
}

// Report is a drill's outcome.
type Report struct {
	Rounds            []Round `json:"rounds"`
	Exact             int     `json:"exact"`
	RerunsFailover    int64   `json:"reruns_failover"`
	TakeoverMedianMs  float64 `json:"takeover_median_ms"`
	TakeoverMaxMs     float64 `json:"takeover_max_ms"`
	TakeoverSamples   int     `json:"takeover_samples"`
	ElectionMedianMs  float64 `json:"election_median_ms"`
	BaselineWordCount float64 `json:"baseline_wordcount_ms"`
	BaselineHistogram float64 `json:"baseline_histogram_ms"`
	// Speculation: the drill ran with speculation on (see OK).
	Speculation bool `json:"speculation"`
}

// OK reports whether every answer was exact and no task ran again
// because of a scheduler failover.
//
// With speculation on, a straggler and its copy may both succeed, in a
// round as in the fault-free run: successes beyond the fault-free run's
// are then not all failover re-runs, and do not fail the drill.
func (r *Report) OK() bool {
	return r.Exact == len(r.Rounds) && (r.Speculation || r.RerunsFailover == 0)
}

type drill struct {
	opts  Options
	rng   *rand.Rand
	c     *localcluster.Cluster
	cl    *client.Client
	jobs  []knownJob
	base  map[string]baseline
	conns map[string]*grpc.ClientConn
	log   io.Writer

	victim   *localcluster.Proc // the round's target
	killedAt time.Time          // the last leader kill
	oldTerm  uint64             // the killed leader's term
}

type baseline struct {
	ms        float64
	successes int64
}

func (d *drill) step(format string, args ...any) {
	if d.opts.Verbose {
		d.logf(format, args...)
	}
}

func (d *drill) logf(format string, args ...any) {
	if d.log != nil {
		fmt.Fprintf(d.log, format+"\n", args...)
	}
}

// Run runs a drill on a local cluster it starts and stops.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Rounds <= 0 {
		opts.Rounds = 1
	}
	if opts.Kill == "" {
		opts.Kill = "leader"
	}
	if opts.At == "" {
		opts.At = "random"
	}
	if opts.Executors <= 0 {
		opts.Executors = 2
	}
	if opts.SleepMS <= 0 {
		opts.SleepMS = 40
	}
	switch opts.Kill {
	case "leader", "follower", "executor", "random", "none":
	default:
		return nil, fmt.Errorf("drill: -kill must be leader, follower, executor, random or none, got %q", opts.Kill)
	}
	switch opts.At {
	case "map", "reduce", "collect", "random":
	default:
		return nil, fmt.Errorf("drill: -at must be map, reduce, collect or random, got %q", opts.At)
	}
	d := &drill{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed+1)), base: map[string]baseline{}, conns: map[string]*grpc.ClientConn{}, log: opts.Log}
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "baton-drill-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	d.logf("starting a local cluster: 3 schedd, %d execd (4 slots each) in %s", opts.Executors, dir)
	flags := []string{"-executor-timeout", "3s", "-heartbeat-interval", "200ms"}
	straggle := 0
	if opts.Speculation {
		flags = append(flags, "-speculation", "-speculation-min-runtime", "20ms")
		straggle = 15 * opts.SleepMS
	}
	c, err := localcluster.Start(ctx, localcluster.Options{
		Bin: opts.Bin, Dir: filepath.Join(dir, "cluster"), Executors: opts.Executors, Secure: opts.Secure,
		SchedFlags: append(flags, opts.SchedFlags...),
	})
	if err != nil {
		return nil, err
	}
	d.c = c
	defer c.Close()
	defer func() {
		for _, cc := range d.conns {
			cc.Close()
		}
	}()
	if d.cl, err = c.Client(); err != nil {
		return nil, err
	}
	defer d.cl.Close()
	in, err := genInput(filepath.Join(dir, "input"), 8, 6000, opts.Seed)
	if err != nil {
		return nil, err
	}
	d.jobs = []knownJob{wordCount(in, opts.SleepMS, straggle), histogram(in, opts.SleepMS, straggle)}
	for _, j := range d.jobs {
		b, ok, err := d.baseline(ctx, j)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("drill: the fault-free %s gave a wrong answer", j.name)
		}
		d.base[j.name] = b
		d.logf("fault-free %s: %s, %d task successes", j.name, time.Duration(b.ms*float64(time.Millisecond)).Round(time.Millisecond), b.successes)
	}
	rep := &Report{Speculation: opts.Speculation, BaselineWordCount: d.base["wordcount"].ms, BaselineHistogram: d.base["histogram"].ms}
	for i := 1; i <= opts.Rounds; i++ {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if err := d.healthy(ctx); err != nil {
			// A process that could not be brought back (its port taken,
			// say) fails this round, not the batch: the next round tries
			// again.
			r := Round{N: i, Target: "none", TakeoverMs: -1, Error: "the cluster was not healthy before the round: " + err.Error()}
			rep.Rounds = append(rep.Rounds, r)
			d.logf("%s", r.line())
			continue
		}
		r := d.round(ctx, i)
		rep.Rounds = append(rep.Rounds, r)
		d.logf("%s", r.line())
	}
	var takeovers, elections []float64
	for _, r := range rep.Rounds {
		if r.Exact {
			rep.Exact++
		}
		rep.RerunsFailover += r.RerunFailover
		if r.TakeoverMs > 0 {
			takeovers = append(takeovers, r.TakeoverMs)
		}
		if r.ElectionMs > 0 {
			elections = append(elections, r.ElectionMs)
		}
	}
	rep.TakeoverSamples = len(takeovers)
	rep.TakeoverMedianMs, rep.TakeoverMaxMs = medianMax(takeovers)
	rep.ElectionMedianMs, _ = medianMax(elections)
	return rep, nil
}

func medianMax(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	sort.Float64s(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return m, v[len(v)-1]
}

func (d *drill) baseline(ctx context.Context, j knownJob) (baseline, bool, error) {
	t0 := time.Now()
	id, err := d.cl.Submit(ctx, j.plan, client.SubmitOptions{})
	if err != nil {
		return baseline{}, false, err
	}
	recs, err := d.cl.Answer(ctx, id)
	if err != nil {
		return baseline{}, false, err
	}
	ms := float64(time.Since(t0)) / float64(time.Millisecond)
	ok, _ := same(render(recs), j.answer)
	info, err := d.cl.Job(ctx, id, true)
	if err != nil {
		return baseline{}, false, err
	}
	if accsOK, why := sameAccs(info.Accumulators, j.accs); !accsOK {
		d.step("  fault-free %s: %s", j.name, why)
		ok = false
	}
	d.cl.Release(ctx, id)
	return baseline{ms: ms, successes: info.TaskSuccesses}, ok, nil
}

// healthy waits until every process runs, every scheduler follows one
// leader with everything applied, and every executor is registered.
func (d *drill) healthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	down := "" // why a process could not be restarted, if one could not
	for time.Now().Before(deadline) {
		// Processes a round left down (their restart gave up) are started
		// again.
		for _, p := range append(append([]*localcluster.Proc{}, d.c.Scheds...), d.c.Execs...) {
			if why := p.RestartError(); why != "" && !p.Running() {
				down = why
				d.c.Restart(p)
			}
		}
		leader, _, err := d.c.Leader(ctx)
		if err == nil {
			ls, err := d.c.NodeStatus(ctx, leader)
			ok := err == nil
			for _, p := range d.c.Scheds {
				if !ok {
					break
				}
				st, err := d.c.NodeStatus(ctx, p)
				ok = err == nil && st.LeaderId == leader.Name && st.AppliedIndex+64 >= ls.CommitIndex
			}
			if ok && d.c.WaitExecutors(ctx, len(d.c.Execs)) == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if down != "" {
		return fmt.Errorf("drill: the cluster did not become healthy within 60s: %s", down)
	}
	return fmt.Errorf("drill: the cluster did not become healthy within 60s")
}

// restarted waits until the round's victim runs again: a round that
// cannot restart its target fails (the batch goes on).
func (d *drill) restarted() error {
	p := d.victim
	if p == nil {
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if why := p.RestartError(); why != "" {
			return fmt.Errorf("could not restart %s: %s", p.Name, why)
		}
		if p.Up(time.Second) && d.answers(p) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if why := p.RestartError(); why != "" {
		return fmt.Errorf("could not restart %s: %s", p.Name, why)
	}
	return fmt.Errorf("%s was not running 15s after its restart", p.Name)
}

// answers reports whether a restarted scheduler answers on its API
// address: running for a second is not enough on a loaded machine, where
// a process may not yet have tried to bind its addresses (and then fail
// and be retried). An executor has no API to ask; running is enough.
func (d *drill) answers(p *localcluster.Proc) bool {
	if p.Kind != "schedd" {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := d.c.NodeStatus(ctx, p)
	return err == nil && st.GetId() == p.Name
}

func (d *drill) pick(opt string, choices ...string) string {
	if opt == "random" {
		return choices[d.rng.IntN(len(choices))]
	}
	return opt
}

// round runs one job with one fault.
func (d *drill) round(ctx context.Context, n int) Round {
	j := d.jobs[(n-1)%len(d.jobs)]
	at := d.opts.At
	if len(d.opts.Moments) > 0 {
		at = d.opts.Moments[(n-1)%len(d.opts.Moments)]
	}
	r := Round{N: n, Job: j.name, At: d.pick(at, "map", "reduce", "collect"), BaselineMs: d.base[j.name].ms, TakeoverMs: -1}
	kind := d.pick(d.opts.Kill, "leader", "follower", "executor")
	fail := func(err error) Round {
		r.Error = err.Error()
		return r
	}
	t0 := time.Now()
	id, err := d.cl.Submit(ctx, j.plan, client.SubmitOptions{})
	if err != nil {
		return fail(err)
	}
	d.step("round %d: submitted job %d (%s); waiting for the %s moment", n, id, j.name, r.At)
	if err := d.waitMoment(ctx, id, r.At); err != nil {
		return fail(err)
	}
	if d.opts.Verbose {
		if info, err := d.cl.Job(ctx, id, false); err == nil {
			var progress []string
			for _, st := range info.Stages {
				progress = append(progress, fmt.Sprintf("stage %d %s %d/%d", st.Id, st.State, st.Available, st.Tasks))
			}
			d.step("  job %d: %s", id, strings.Join(progress, ", "))
		}
	}
	// At "collect", the answer is being read when the nemesis strikes.
	type answer struct {
		recs []string
		err  error
	}
	answerCh := make(chan answer, 1)
	collect := func() {
		recs, err := d.cl.Answer(ctx, id)
		answerCh <- answer{render(recs), err}
	}
	if r.At == "collect" {
		go collect()
		time.Sleep(time.Duration(d.rng.IntN(3)) * time.Millisecond)
	}
	var restart func()
	d.victim = nil
	switch kind {
	case "leader":
		restart, err = d.killLeader(ctx, &r)
	case "follower":
		restart, err = d.killFollower(&r)
	case "executor":
		restart, err = d.killExecutor(&r)
	default:
		r.Target = "none"
	}
	if err != nil {
		return fail(err)
	}
	if d.opts.OnKill != nil && d.victim != nil {
		d.opts.OnKill(n, d.victim)
	}
	switch {
	case r.NewLeader != "":
		d.step("  SIGKILLed the leader %s; %s was elected after %s; restarting %s", strings.TrimPrefix(r.Target, "leader "), r.NewLeader, ms(r.ElectionMs), strings.TrimPrefix(r.Target, "leader "))
	case r.Target != "none":
		d.step("  SIGKILLed %s", r.Target)
	}
	if restart != nil && kind != "executor" {
		restart()
	}
	if r.At != "collect" {
		go collect()
	}
	var a answer
	select {
	case a = <-answerCh:
	case <-time.After(3 * time.Minute):
		a.err = fmt.Errorf("no answer within 3 minutes")
	}
	r.JobMs = float64(time.Since(t0)) / float64(time.Millisecond)
	if kind == "leader" && r.NewLeader != "" {
		d.takeover(ctx, &r)
	}
	if kind == "executor" && restart != nil {
		restart()
	}
	if err := d.restarted(); err != nil {
		return fail(err)
	}
	if a.err != nil {
		return fail(a.err)
	}
	var why string
	r.Exact, why = same(a.recs, j.answer)
	if !r.Exact {
		r.Error = "wrong answer: " + why
	}
	if r.Exact {
		d.step("  job %d finished in %s (fault-free: %s): %d records, equal to the reference answer", id, ms(r.JobMs), ms(r.BaselineMs), len(a.recs))
	}
	info, err := d.cl.Job(ctx, id, true)
	if err != nil {
		return fail(err)
	}
	if r.Exact {
		if r.Exact, why = sameAccs(info.Accumulators, j.accs); !r.Exact {
			r.Error = "wrong accumulator: " + why
		} else {
			d.step("  its %d accumulators are exact", len(j.accs))
		}
	}
	for _, st := range info.Stages {
		r.Attempts = append(r.Attempts, st.Attempt)
	}
	r.TaskFailures = info.TaskFailures
	extra := info.TaskSuccesses - d.base[j.name].successes
	if kind == "executor" {
		r.RerunDataLoss = extra
	} else {
		r.RerunFailover = extra
	}
	d.cl.Release(ctx, id)
	return r
}

// waitMoment waits until the job reaches the moment to strike: its first
// stage under way (map), its last stage under way (reduce), or its end
// (collect).
func (d *drill) waitMoment(ctx context.Context, id uint64, at string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		j, err := d.cl.Job(ctx, id, false)
		if err == nil && len(j.Stages) > 0 {
			first, last := j.Stages[0], j.Stages[len(j.Stages)-1]
			switch at {
			case "map":
				if first.Available > 0 || j.State != api.JobState_JOB_STATE_RUNNING {
					return nil
				}
			case "reduce":
				if last.State == "running" || j.State != api.JobState_JOB_STATE_RUNNING {
					return nil
				}
			case "collect":
				if j.State != api.JobState_JOB_STATE_RUNNING {
					return nil
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("job %d never reached the %s moment", id, at)
}

func (d *drill) killLeader(ctx context.Context, r *Round) (func(), error) {
	old, term, err := d.c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	r.Target = "leader " + old.Name
	d.victim = old
	killed := time.Now()
	if err := d.c.Kill(old); err != nil {
		return nil, err
	}
	next, err := d.c.WaitLeader(ctx, old, term)
	if err != nil {
		return nil, err
	}
	r.ElectionMs = float64(time.Since(killed)) / float64(time.Millisecond)
	r.NewLeader = next.Name
	d.killedAt, d.oldTerm = killed, term
	return func() { d.c.Restart(old) }, nil
}

// takeover sets the round's takeover time: from the kill to the first
// launch an executor accepted from a newer term (executors record when).
// Called once the job has ended; -1 when the new leader launched nothing.
func (d *drill) takeover(ctx context.Context, r *Round) {
	if first, ok := d.firstLaunchAfter(ctx, d.oldTerm); ok {
		r.TakeoverMs = float64(first.Sub(d.killedAt)) / float64(time.Millisecond)
	}
}

// firstLaunchAfter returns when an executor first accepted a launch from
// a term above term.
func (d *drill) firstLaunchAfter(ctx context.Context, term uint64) (time.Time, bool) {
	var first int64
	for _, p := range d.c.Execs {
		if !p.Running() {
			continue
		}
		st, err := d.stats(ctx, p)
		if err != nil {
			continue
		}
		for t, at := range st.FirstLaunchByTerm {
			if t > term && (first == 0 || at < first) {
				first = at
			}
		}
	}
	return time.Unix(0, first), first != 0
}

func (d *drill) stats(ctx context.Context, p *localcluster.Proc) (*api.ExecutorStats, error) {
	cc, ok := d.conns[p.Addr]
	if !ok {
		var err error
		if cc, err = grpc.NewClient(p.Addr, grpc.WithTransportCredentials(d.c.DialCreds(tlsconf.RoleExecutor))); err != nil {
			return nil, err
		}
		d.conns[p.Addr] = cc
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return api.NewBlocksClient(cc).Stats(ctx, &api.ExecutorStatsRequest{})
}

func (d *drill) killFollower(r *Round) (func(), error) {
	leader, _, err := d.c.Leader(context.Background())
	if err != nil {
		return nil, err
	}
	var followers []*localcluster.Proc
	for _, p := range d.c.Scheds {
		if p != leader && p.Running() {
			followers = append(followers, p)
		}
	}
	if len(followers) == 0 {
		return nil, fmt.Errorf("no follower to kill")
	}
	f := followers[d.rng.IntN(len(followers))]
	r.Target = "follower " + f.Name
	d.victim = f
	if err := d.c.Kill(f); err != nil {
		return nil, err
	}
	return func() {
		time.Sleep(200 * time.Millisecond)
		d.c.Restart(f)
	}, nil
}

func (d *drill) killExecutor(r *Round) (func(), error) {
	var live []*localcluster.Proc
	for _, p := range d.c.Execs {
		if p.Running() {
			live = append(live, p)
		}
	}
	if len(live) < 2 {
		return nil, fmt.Errorf("an executor kill needs two executors")
	}
	e := live[d.rng.IntN(len(live))]
	r.Target = "executor " + e.Name
	d.victim = e
	if err := d.c.Kill(e); err != nil {
		return nil, err
	}
	return func() { d.c.Restart(e) }, nil
}

// line renders a round for the running account.
func (r Round) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "round %d: %s, killed %s at %s", r.N, r.Job, r.Target, r.At)
	if r.NewLeader != "" {
		fmt.Fprintf(&b, "; %s leads after %s", r.NewLeader, ms(r.ElectionMs))
		if r.TakeoverMs > 0 {
			fmt.Fprintf(&b, ", first launch after %s", ms(r.TakeoverMs))
		}
	}
	fmt.Fprintf(&b, "; job %s (fault-free %s)", ms(r.JobMs), ms(r.BaselineMs))
	if r.Exact {
		b.WriteString("; answer and accumulators exact")
	}
	fmt.Fprintf(&b, "; re-run: %d (failover), %d (data lost); stage attempts %v, %d task failures", r.RerunFailover, r.RerunDataLoss, r.Attempts, r.TaskFailures)
	if r.Error != "" {
		fmt.Fprintf(&b, "; ERROR %s", r.Error)
	}
	return b.String()
}

func ms(v float64) string {
	if v <= 0 {
		return "-"
	}
	return time.Duration(v * float64(time.Millisecond)).Round(time.Millisecond).String()
}
