package driver

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
)

// leadership is the driver's volatile state for one term. Its loop
// goroutine owns every field below the line: nothing else reads or writes
// them. Sessions, finished proposals, the server and the clock post
// events (loop.go); work that waits (proposals, file system work) runs in
// goroutines the leadership tracks, which post their outcome back.
type leadership struct {
	d      *Driver
	term   uint64
	ctx    context.Context
	cancel context.CancelFunc
	won    time.Time
	events chan event
	// done is closed when the loop has returned.
	done chan struct{}
	// wg tracks the loop and every goroutine it starts.
	wg sync.WaitGroup
	// attaching serialises the attaches of each executor (sessions' own
	// goroutines take it; see attach).
	attaching keyedMutex

	// ---- owned by the loop ----

	// key signs launch tickets (see ticket.go); refreshed each round.
	key []byte
	// signer makes block grants; derived from the same key.
	signer *blockstore.Signer
	// owners binds executor ids to the principal that registered them.
	owners   map[string]string
	conns    map[string]*conn
	attempts map[uint64]*attempt // running attempts by task id
	byPart   map[partKey]uint64  // running attempt of a (stage, stage attempt, partition)
	spec     map[partKey]uint64  // its speculative copy, if any
	// cursor, by task set (stage attempt), is a task index below which
	// every pending task is running, as far as this leader knows: FIFO
	// rounds look for candidates from there (then wrap round), so a
	// round does not walk past the thousands of queued attempts of a
	// stage of very short tasks. An attempt that ends without a logged
	// success sends its set's cursor back to 0 (see ended).
	cursor   map[stageKey]int
	launches launchCounts         // launches so far per (stage, partition): attempt numbers
	aborting map[dag.StageID]bool // stages whose jobs are being aborted for a launch over the message limit
	waiting  map[partKey]time.Time
	lastSeen map[string]time.Time // executors' last sign of life (from the takeover at the earliest)
	losing   map[string]bool      // executors being removed
	// sessioned are the executors that had a session with this leader;
	// droppedAt, those whose session ended and has not been replaced,
	// since when (see liveness).
	// failing counts, by stage attempt and executor, exceptions reported
	// and not yet logged: until the state's exclusion knows them, the
	// executor gets none of the stage's tasks (its freed slot must not
	// take the next task before the failure is logged).
	failing   map[stageKey]map[string]int
	sessioned map[string]bool
	droppedAt map[string]time.Time
	graphs    map[*plan.Graph]*graphEnc
	funcs     map[*plan.Graph][]string // the functions each graph names
	// durations is a moving average of each stage's task durations.
	durations map[dag.StageID]time.Duration
	// resubmitAt is when failed stages are resubmitted (zero: not
	// armed); resubmitting says the proposal is on its way.
	resubmitAt   time.Time
	resubmitting bool
	graceful     bool // the grace period is over
	// saving holds, per running saveAsTextFile job, the partitions whose
	// successful ends were reported to this leader (see markSaved).
	saving map[dag.JobID]map[int]bool
	// savingJobs are the saveAsTextFile jobs this leader launched result
	// tasks of, by output directory, until they end (see abortSaved).
	savingJobs map[dag.JobID]string
	// grants keeps the shuffle grants made for each (shuffle, executor),
	// by signer: a signature costs tens of microseconds, launches are
	// many.
	grants       map[grantFor][]byte
	grantsSigner *blockstore.Signer
	// denied holds the partitions (stage, partition) whose attempts were
	// denied their output commit, for backoff (see noteDenials).
	denied map[[2]uint64]denial
	// outputs are the output operations asked of executors (outputops.go).
	outputs outputWaits
}

type partKey struct {
	stage   dag.StageID
	attempt int
	part    int
}

// stageKey is a stage attempt (a task set).
type stageKey struct {
	stage   dag.StageID
	attempt int
}

func (k partKey) set() stageKey { return stageKey{k.stage, k.attempt} }

type attempt struct {
	id      *api.TaskID
	exec    string
	key     partKey
	pool    string    // the pool of the job it runs for
	started time.Time // launched or adopted
	// speculative: a copy of a slow attempt (Spark's speculation).
	speculative bool
	killing     bool
	// reported: the executor reported the attempt's end, which is being
	// logged. Its slot is free (as in Spark, where a status update frees
	// the executor's cores at once), but its partition is not launched
	// again until the end is committed.
	reported bool
}

func newLeadership(d *Driver, term uint64) *leadership {
	ctx, cancel := context.WithCancel(context.Background())
	l := &leadership{
		d:          d,
		term:       term,
		ctx:        ctx,
		cancel:     cancel,
		won:        d.clock.Now(),
		events:     make(chan event, eventQueue),
		done:       make(chan struct{}),
		conns:      map[string]*conn{},
		owners:     map[string]string{},
		attempts:   map[uint64]*attempt{},
		byPart:     map[partKey]uint64{},
		cursor:     map[stageKey]int{},
		launches:   launchCounts{},
		waiting:    map[partKey]time.Time{},
		lastSeen:   map[string]time.Time{},
		graphs:     map[*plan.Graph]*graphEnc{},
		funcs:      map[*plan.Graph][]string{},
		spec:       map[partKey]uint64{},
		savingJobs: map[dag.JobID]string{},
		denied:     map[[2]uint64]denial{},
		durations:  map[dag.StageID]time.Duration{},
		losing:     map[string]bool{},
		sessioned:  map[string]bool{},
		failing:    map[stageKey]map[string]int{},
		droppedAt:  map[string]time.Time{},
	}
	l.refreshKey()
	d.state.Read(func(s *dag.State) {
		for _, e := range s.Executors() {
			if e.Alive {
				l.lastSeen[string(e.ID)] = l.won
			}
		}
	})
	return l
}

// start runs the loop, and removes what dead leaders left of finished
// outputs.
func (l *leadership) start() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(l.done)
		l.loop()
	}()
	l.spawn(l.finishSaved)
}

// end stops the leadership and waits for its goroutines.
func (l *leadership) end() {
	l.cancel()
	<-l.done
	// The loop is gone: its state is the caller's now.
	for _, c := range l.conns {
		c.close()
	}
	l.wg.Wait()
}

// spawn runs fn in a goroutine the leadership waits for when it ends.
// Only the loop (or start, before it) calls it.
func (l *leadership) spawn(fn func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fn()
	}()
}

// ticketKey returns the key of launch tickets (nil: none).
func (l *leadership) ticketKey() []byte { return l.key }

// blockSigner makes block grants (nil: none).
func (l *leadership) blockSigner() *blockstore.Signer { return l.signer }

// refreshKey reads the ticket key (outside any read of the state).
func (l *leadership) refreshKey() {
	if l.d.opts.TicketKey == nil {
		return
	}
	k := l.d.opts.TicketKey()
	if l.signer != nil && bytes.Equal(k, l.key) {
		return // unchanged: keep the derived signer
	}
	l.key, l.signer = k, blockstore.NewSigner(k)
}

type grantFor struct {
	shuffle uint64
	exec    string
}

// shuffleGrant returns the grant for exec to read a shuffle's blocks.
func (l *leadership) shuffleGrant(shuffle uint64, exec string) []byte {
	sg := l.blockSigner()
	if sg == nil {
		return nil
	}
	if l.grantsSigner != sg || len(l.grants) >= maxGrants {
		l.grants, l.grantsSigner = map[grantFor][]byte{}, sg
	}
	k := grantFor{shuffle, exec}
	g, ok := l.grants[k]
	if !ok {
		g = sg.ShuffleGrant(shuffle, exec)
		l.grants[k] = g
	}
	return g
}

// maxGrants bounds the shuffle grants a leadership keeps.
const maxGrants = 1 << 16

// ended forgets a finished attempt.
func (l *leadership) ended(task uint64) { l.endedAs(task, false) }

// endedAs forgets a running attempt; succeeded says its success was
// logged and taken, so its partition is no longer pending (any other end
// may leave it pending again, below its set's cursor).
func (l *leadership) endedAs(task uint64, succeeded bool) {
	a, ok := l.attempts[task]
	if !ok {
		return
	}
	if !succeeded {
		delete(l.cursor, stageKey{a.key.stage, a.key.attempt})
	}
	delete(l.attempts, task)
	switch task {
	case l.byPart[a.key]:
		delete(l.byPart, a.key)
		// The copy, if any, takes the partition over.
		if c, ok := l.spec[a.key]; ok {
			delete(l.spec, a.key)
			l.byPart[a.key] = c
			if ca := l.attempts[c]; ca != nil {
				ca.speculative = false
			}
		}
	case l.spec[a.key]:
		delete(l.spec, a.key)
	}
}

// adopt takes over the attempts an executor reports: those running and
// still useful are recorded as running (not launched again), the others
// killed; those finished whose reports are not yet committed hold their
// partitions until the reports (sent right after) are committed, so a
// task that finished under the previous leader never runs again.
//
// Every running attempt of a partition is adopted, up to the two a
// partition may have (the attempt and its speculative copy, whichever
// executor reports first): the first to succeed wins, as before the
// failover. An attempt keeps the time it has run (runningFor, the
// executor's measure), so the new leader judges stragglers as the old
// one did.
func (l *leadership) adopt(c *conn, running, unacked []*api.TaskID, runningFor []int64) {
	var kill []uint64
	now := l.d.clock.Now()
	l.d.state.Read(func(s *dag.State) {
		tkey := l.ticketKey()
		for _, id := range unacked {
			if _, known := l.attempts[id.Task]; known {
				continue
			}
			if !validTicket(tkey, id, c.id) {
				l.d.log.Warn("driver: refused an attempt end no leader launched to this executor", "executor", c.id, "task", id.Task, "stage", id.Stage, "partition", id.Partition)
				continue
			}
			key := partKey{dag.StageID(id.Stage), int(id.StageAttempt), int(id.Partition)}
			if _, taken := l.byPart[key]; taken {
				continue
			}
			l.attempts[id.Task] = &attempt{id: id, exec: c.id, key: key, pool: poolOf(s, id), started: now, reported: true}
			l.byPart[key] = id.Task
		}
		for i, id := range running {
			if a, known := l.attempts[id.Task]; known {
				if a.killing {
					// The kill went to the old session: again.
					kill = append(kill, id.Task)
				}
				continue
			}
			if !validTicket(tkey, id, c.id) {
				l.d.log.Warn("driver: refused to adopt an attempt no leader launched to this executor", "executor", c.id, "task", id.Task, "stage", id.Stage, "partition", id.Partition)
				kill = append(kill, id.Task)
				continue
			}
			key := partKey{dag.StageID(id.Stage), int(id.StageAttempt), int(id.Partition)}
			if !s.StageActive(key.stage, key.attempt) {
				kill = append(kill, id.Task)
				continue
			}
			started := now
			if i < len(runningFor) && runningFor[i] > 0 {
				started = now.Add(-time.Duration(min(runningFor[i], int64(24*time.Hour/time.Millisecond))) * time.Millisecond)
			}
			a := &attempt{id: id, exec: c.id, key: key, pool: poolOf(s, id), started: started}
			primary, taken := l.byPart[key]
			switch _, copied := l.spec[key]; {
			case !taken:
				l.byPart[key] = id.Task
			case !copied && l.attempts[primary] != nil && l.attempts[primary].exec != c.id:
				// The partition's second attempt: whichever was launched
				// as the copy, this one is the copy now.
				a.speculative = true
				l.spec[key] = id.Task
			default:
				kill = append(kill, id.Task)
				continue
			}
			l.attempts[id.Task] = a
			l.launches.add(dag.StageID(id.Stage), int(id.Partition), 1)
		}
	})
	if len(kill) > 0 {
		c.send(&api.DriverMessage{Msg: &api.DriverMessage_Kill{Kill: &api.Kill{Term: l.term, Tasks: kill, Reason: "no longer needed"}}})
	}
}

// poolOf returns the pool of the job a task was launched for.
func poolOf(s *dag.State, id *api.TaskID) string {
	j, _ := s.Job(dag.JobID(id.Job))
	return j.Pool
}

// keyedMutex is a mutex per key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*sync.Mutex{}
	}
	m := k.m[key]
	if m == nil {
		m = &sync.Mutex{}
		k.m[key] = m
	}
	k.mu.Unlock()
	m.Lock()
	return m.Unlock
}
