package driver

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// The seeded fault simulation runs jobs through the harness while a seeded
// random sequence of faults hits it: tasks that fail, sessions that drop
// and come back with their running and unacknowledged attempts, leader
// changes with every executor reconnecting, executors that go silent until
// they are declared lost, and proposals that fail (applied or not) before
// the driver hears of them. Whatever happened, every job must succeed with
// every partition's result once and the state's invariants must hold.
//
// The seed decides the faults; the driver's own goroutines still
// interleave as they will, so a seed names a sequence of faults, not a
// single execution. BATON_DRIVER_SEEDS=N runs N seeds (default 12).

// faultExec is one simulated executor across its sessions: what it runs
// and what it reported that no leader acknowledged yet.
type faultExec struct {
	id      string
	cores   int
	e       *simExec // the current session, or nil
	seen    int      // launches of e already taken into running
	killed  int      // kills of e already handled
	running map[uint64]*api.TaskLaunch
	unacked map[uint64]*api.TaskStatus
}

type faultSim struct {
	t     *testing.T
	h     *harness
	rng   *rand.Rand
	execs []*faultExec
	jobs  []dag.JobID
	// faults counts what happened, for the failure message.
	faults map[string]int

	mu      sync.Mutex // guards frng: proposals fail from the driver's goroutines
	frng    *rand.Rand
	failing bool
}

func (s *faultSim) ended(e *simExec) bool { return e == nil || e.stream.ctx.Err() != nil }

// connect opens a session for x, telling the driver what x runs and has
// reported unacknowledged, and reports those again.
func (s *faultSim) connect(x *faultExec) {
	o := helloOpts{cores: x.cores}
	for _, tl := range x.running {
		o.running = append(o.running, tl.Id)
	}
	for _, u := range x.unacked {
		o.unacked = append(o.unacked, u.Id)
	}
	x.e, x.seen, x.killed = s.h.dial(x.id, o), 0, 0
	s.h.waitFor(x.id+"'s welcome or the session's end", func() bool {
		x.e.mu.Lock()
		defer x.e.mu.Unlock()
		return x.e.welcome != nil || x.e.notLead || x.e.stream.ctx.Err() != nil
	})
	if len(x.unacked) > 0 {
		var again []*api.TaskStatus
		for _, u := range x.unacked {
			again = append(again, u)
		}
		s.send(x, again...)
	}
}

// sync takes x's new launches into running and answers its kills.
func (s *faultSim) sync(x *faultExec) {
	if x.e == nil {
		return
	}
	ls := x.e.launches()
	for _, tl := range ls[x.seen:] {
		x.running[tl.Id.Task] = tl
	}
	x.seen = len(ls)
	ks := x.e.kills()
	var reports []*api.TaskStatus
	for _, k := range ks[x.killed:] {
		if tl, ok := x.running[k]; ok {
			delete(x.running, k)
			reports = append(reports, &api.TaskStatus{Id: tl.Id, State: api.TaskState_TASK_STATE_KILLED})
		}
	}
	x.killed = len(ks)
	if len(reports) > 0 {
		s.send(x, reports...)
	}
	for id := range x.unacked {
		if x.e.isAcked(id) {
			delete(x.unacked, id)
		}
	}
}

// send reports updates and waits until they are acknowledged or the
// session ends (a failed commit ends it; they are reported again in the
// next).
func (s *faultSim) send(x *faultExec, updates ...*api.TaskStatus) {
	for _, u := range updates {
		x.unacked[u.Id.Task] = u
	}
	if s.ended(x.e) {
		return
	}
	x.e.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: updates}}})
	s.h.waitFor("acknowledgements or the session's end on "+x.id, func() bool {
		if s.ended(x.e) {
			return true
		}
		for _, u := range updates {
			if !x.e.isAcked(u.Id.Task) {
				return false
			}
		}
		return true
	})
	for _, u := range updates {
		if x.e.isAcked(u.Id.Task) {
			delete(x.unacked, u.Id.Task)
		}
	}
}

// heartbeat sends x's heartbeat and waits for its answer or the end of
// its session.
func (s *faultSim) heartbeat(x *faultExec) {
	if s.ended(x.e) {
		return
	}
	x.e.mu.Lock()
	n := x.e.acks
	x.e.mu.Unlock()
	x.e.send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{}}})
	s.h.waitFor("a heartbeat's answer or the session's end on "+x.id, func() bool {
		x.e.mu.Lock()
		defer x.e.mu.Unlock()
		return x.e.acks > n || x.e.stream.ctx.Err() != nil
	})
}

// reconnectEnded opens a new session for every executor whose session
// ended (while a leader leads).
func (s *faultSim) reconnectEnded(except *faultExec) {
	for _, x := range s.execs {
		if x != except && s.ended(x.e) {
			s.sync(x)
			s.connect(x)
		}
	}
}

func (s *faultSim) done() bool {
	for _, id := range s.jobs {
		if s.h.job(id).Status != dag.JobSucceeded {
			return false
		}
	}
	return true
}

// step does one random thing.
func (s *faultSim) step() {
	for _, x := range s.execs {
		s.sync(x)
	}
	r := s.rng.IntN(100)
	switch {
	case r < 70:
		// A task ends: mostly finished, sometimes failed.
		var busy []*faultExec
		for _, x := range s.execs {
			if len(x.running) > 0 && !s.ended(x.e) {
				busy = append(busy, x)
			}
		}
		if len(busy) == 0 {
			s.tick()
			return
		}
		x := busy[s.rng.IntN(len(busy))]
		ids := make([]uint64, 0, len(x.running))
		for id := range x.running {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		tl := x.running[ids[s.rng.IntN(len(ids))]]
		delete(x.running, tl.Id.Task)
		u := finished(tl, int64(1+s.rng.IntN(50)))
		if s.rng.IntN(100) < 5 {
			u = failed(tl, api.FailureKind_FAILURE_KIND_EXCEPTION, "injected failure")
			s.faults["task failure"]++
		}
		s.send(x, u)
	case r < 78:
		// A session drops and comes back.
		x := s.execs[s.rng.IntN(len(s.execs))]
		if s.ended(x.e) {
			return
		}
		s.faults["session drop"]++
		x.e.hangUp()
		s.sync(x)
		s.connect(x)
	case r < 83:
		// The leader changes; every executor reconnects.
		s.faults["leader change"]++
		s.h.depose()
		s.h.waitFor("every session to end", func() bool {
			for _, x := range s.execs {
				if !s.ended(x.e) {
					return false
				}
			}
			return true
		})
		for _, x := range s.execs {
			s.sync(x)
		}
		s.h.lead()
		s.reconnectEnded(nil)
	case r < 86:
		// An executor goes silent until it is declared lost, then comes
		// back (its attempts are gone: the driver kills what it
		// reports).
		x := s.execs[s.rng.IntN(len(s.execs))]
		s.faults["executor lost"]++
		for i := 0; i < 3; i++ {
			for _, y := range s.execs {
				if y != x {
					s.heartbeat(y)
				}
			}
			s.h.advance(s.h.d.opts.ExecutorTimeout/2 + time.Millisecond)
		}
		s.h.waitFor(x.id+"'s removal", func() bool {
			lost := false
			s.h.fsm.Read(func(st *dag.State) { e, ok := st.Executor(dag.ExecutorID(x.id)); lost = ok && !e.Alive })
			return lost
		})
		if !s.ended(x.e) {
			x.e.hangUp()
		}
		s.sync(x)
		s.reconnectEnded(nil)
	default:
		s.tick()
	}
	// Sessions ended by failed commits come back.
	s.reconnectEnded(nil)
}

// tick lets time pass with every executor heartbeating.
func (s *faultSim) tick() {
	for _, x := range s.execs {
		s.heartbeat(x)
	}
	s.h.advance(500 * time.Millisecond)
}

func runFaultSeed(t *testing.T, seed uint64) {
	h := newHarnessConfig(t, Options{ExecutorTimeout: 10 * time.Second, GracePeriod: time.Hour}, dag.Config{MaxFailuresPerExecutor: -1})
	s := &faultSim{t: t, h: h, rng: rand.New(rand.NewPCG(seed, 1)), frng: rand.New(rand.NewPCG(seed, 2)), faults: map[string]int{}}
	h.log.fail = func(cmds []dag.Command) (error, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range cmds {
			if _, ok := c.(*dag.SubmitJob); ok {
				return nil, false // the test's own
			}
		}
		if !s.failing || s.frng.IntN(100) >= 4 {
			return nil, false
		}
		s.faults["failed proposal"]++
		return errNotLeader, s.frng.IntN(2) == 0
	}
	h.lead()
	for i := 1; i <= 3; i++ {
		x := &faultExec{id: fmt.Sprintf("e%d", i), cores: 2, running: map[uint64]*api.TaskLaunch{}, unacked: map[uint64]*api.TaskStatus{}}
		s.execs = append(s.execs, x)
		s.connect(x)
	}
	for _, g := range []*dag.SubmitJob{
		{Graph: shuffleJob(fmt.Sprintf("shuffle-%d", seed), 16, 6), MaxTaskFailures: 1000},
		{Graph: collectJob(10), MaxTaskFailures: 1000},
	} {
		s.jobs = append(s.jobs, h.propose(g)[0].Job)
	}
	s.mu.Lock()
	s.failing = true
	s.mu.Unlock()
	steps := 0
	for ; !s.done(); steps++ {
		if steps == 3000 {
			var st []string
			for _, id := range s.jobs {
				j := h.job(id)
				st = append(st, fmt.Sprintf("job %d %s %d/%d", id, j.Status, j.Finished, j.Tasks))
			}
			t.Fatalf("seed %d: not done after %d steps (faults %v): %v", seed, steps, s.faults, st)
		}
		s.step()
	}
	s.mu.Lock()
	s.failing = false
	s.mu.Unlock()
	h.settle()
	h.fsm.Read(func(st *dag.State) {
		if err := st.CheckInvariants(); err != nil {
			t.Fatalf("seed %d (faults %v): invariants: %v", seed, s.faults, err)
		}
		for _, id := range s.jobs {
			refs, fin, ok := st.Results(id)
			if !ok {
				t.Fatalf("seed %d: job %d has no results", seed, id)
			}
			parts := map[int]bool{}
			for i, r := range refs {
				if !fin[i] || parts[r.Partition] {
					t.Fatalf("seed %d (faults %v): job %d: partition %d unfinished or twice", seed, s.faults, id, r.Partition)
				}
				parts[r.Partition] = true
			}
			j, _ := st.Job(id)
			if want := j.Graph.Nodes[j.Graph.Output].Partitions; len(parts) != want {
				t.Fatalf("seed %d: job %d: %d partitions' results", seed, id, len(parts))
			}
		}
	})
	t.Logf("seed %d: %d steps, faults %v", seed, steps, s.faults)
}

// TestSeededFaultsEndExact runs the fault simulation for several seeds.
func TestSeededFaultsEndExact(t *testing.T) {
	n := 12
	if v, err := strconv.Atoi(os.Getenv("BATON_DRIVER_SEEDS")); err == nil && v > 0 {
		n = v
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runFaultSeed(t, seed) })
	}
}
