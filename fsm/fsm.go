package fsm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/hashicorp/raft"
)

// FSM is a raft.FSM (and raft.BatchingFSM) over a dag.State: a thin
// adapter that decodes entries, applies their commands in order, and
// snapshots and restores the state.
//
// Concurrency: Raft calls Apply, ApplyBatch, Snapshot and Restore from its
// single FSM goroutine; they take the write lock. Readers (the driver, the
// API) call Read, which takes the read lock, so they see the state between
// entries, never in the middle of one. Watchers learn of changes through
// Changed.
type FSM struct {
	log         *slog.Logger
	onApply     func(cmds []dag.Command, results []dag.Result, took time.Duration)
	onRestore   func()
	onACLChange func()
	onCorrupt   func(error)

	mu      sync.RWMutex
	state   *dag.State
	members map[string]Member
	leaders []LeaderReady // the latest takeovers, oldest first
	acl     acl
	applied uint64 // index of the last entry applied
	term    uint64 // term of the last entry applied

	chMu    sync.Mutex
	changed chan struct{} // closed and replaced after every change
}

// Options configure an FSM.
type Options struct {
	// Config is the scheduler's limits for a state started from empty. A
	// restored snapshot brings its own.
	Config dag.Config
	// Logger receives skipped-command warnings; nil discards them.
	Logger *slog.Logger
	// OnApply, if set, is called after each log entry is applied with its
	// scheduler commands, their results, and how long decoding and
	// applying the entry took (for metrics, logs and the UI's history).
	// It runs under the FSM's lock: it must be quick and must not call
	// the FSM.
	OnApply func(cmds []dag.Command, results []dag.Result, took time.Duration)
	// OnRestore, if set, is called after the state is replaced by a
	// snapshot (at start, from a leader, or from a backup).
	OnRestore func()
	// OnACLChange, if set, is called after an ACL command is applied
	// (bootstrap, token set or deleted), under the FSM's lock: it must not
	// block or read the FSM.
	OnACLChange func()
	// OnCorrupt, if set, is called with the error when a log entry cannot
	// be applied (it does not decode, or its checksum does not match): the
	// node must stop rather than diverge from its peers, and OnCorrupt
	// stops it (a process logs and exits). If it returns, or is not set,
	// Apply panics with the error.
	OnCorrupt func(err error)
}

// New returns an FSM over an empty state.
func New(opts Options) *FSM {
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &FSM{log: lg, onApply: opts.OnApply, onRestore: opts.OnRestore, onACLChange: opts.OnACLChange, onCorrupt: opts.OnCorrupt, state: dag.New(opts.Config), members: map[string]Member{}, acl: newACL(), changed: make(chan struct{})}
}

// Response is what Apply returns for a log entry: one result per command,
// in order. raft.ApplyFuture.Response() yields a *Response.
type Response struct {
	Index   uint64
	Results []dag.Result
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// Apply applies one log entry. It panics on an entry it cannot decode: a
// replica that skipped it would diverge from its peers.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	r := f.applyLocked(l)
	f.mu.Unlock()
	f.notify()
	return r
}

// ApplyBatch applies committed entries under one lock acquisition.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	for i, l := range logs {
		out[i] = f.applyLocked(l)
	}
	f.mu.Unlock()
	f.notify()
	return out
}

func (f *FSM) applyLocked(l *raft.Log) any {
	if l.Index > f.applied {
		f.applied, f.term = l.Index, l.Term
	}
	if l.Type != raft.LogCommand {
		return nil
	}
	start := time.Now()
	d, err := Decode(l.Data)
	if err != nil {
		err = fmt.Errorf("fsm: log entry %d (term %d) cannot be applied: %w; this node stops rather than diverge from its peers", l.Index, l.Term, err)
		if f.onCorrupt != nil {
			f.mu.Unlock()
			f.onCorrupt(err)
			f.mu.Lock()
		}
		panic(err.Error())
	}
	for _, t := range d.Skipped {
		f.log.Warn("skipping a command this version does not know", "index", l.Index, "type", t)
	}
	r := &Response{Index: l.Index, Results: make([]dag.Result, len(d.Commands))}
	for i, c := range d.Commands {
		switch m := d.Members[i]; {
		case m != nil && m.Removed:
			delete(f.members, m.ID)
		case m != nil:
			f.members[m.ID] = *m
		case d.ACL[i] != nil:
			r.Results[i] = dag.Result{Err: f.acl.apply(d.ACL[i])}
			if f.onACLChange != nil {
				f.onACLChange()
			}
		case d.Leaders[i] != nil:
			f.leaders = append(f.leaders, *d.Leaders[i])
			if len(f.leaders) > MaxLeaders {
				f.leaders = append(f.leaders[:0:0], f.leaders[len(f.leaders)-MaxLeaders:]...)
			}
		case c != nil:
			r.Results[i] = f.state.Apply(c)
		}
	}
	if f.onApply != nil {
		f.onApply(d.Commands, r.Results, time.Since(start))
	}
	return r
}

// MaxLeaders is how many takeovers the FSM remembers.
const MaxLeaders = 64

// Leaders returns the latest leader takeovers, oldest first.
func (f *FSM) Leaders() []LeaderReady {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]LeaderReady(nil), f.leaders...)
}

// Members returns the member table, sorted by id.
func (f *FSM) Members() []Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Member, 0, len(f.members))
	for _, m := range f.members {
		out = append(out, m)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Member returns one member's entry.
func (f *FSM) Member(id string) (Member, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.members[id]
	return m, ok
}

// Read calls fn with the state under the read lock. fn must not keep the
// state or anything it returns that aliases it (direct results) beyond the
// call, and must not modify it.
func (f *FSM) Read(fn func(s *dag.State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Applied returns the index and term of the last entry applied.
func (f *FSM) Applied() (index, term uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied, f.term
}

// WaitApplied waits until the entry at index has been applied here.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		ch := f.Changed()
		if applied, _ := f.Applied(); applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			applied, _ := f.Applied()
			return fmt.Errorf("fsm: waiting for index %d (applied %d): %w", index, applied, ctx.Err())
		}
	}
}

// Changed returns a channel that is closed at the next change of the
// state (an applied batch or a restore). Call it again after it fires.
func (f *FSM) Changed() <-chan struct{} {
	f.chMu.Lock()
	defer f.chMu.Unlock()
	return f.changed
}

func (f *FSM) notify() {
	f.chMu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.chMu.Unlock()
}

// Snapshot captures the state. The encoding happens here, under the lock,
// so Persist can run while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := encodeSnapshot(snapshotContents{state: f.state, members: f.members, leaders: f.leaders, acl: f.acl, index: f.applied, term: f.term})
	if err != nil {
		return nil, err
	}
	return &snapshot{data: b}, nil
}

// Backup returns the state as a snapshot (the bytes Restore reads): a
// backup an operator keeps, and restores into a quorum with Node.Restore.
//
// A backup holds the scheduler state, the leader history and the ACL
// system (its tokens' hashes and the members' secret: keep backups as
// you keep tokens), not the
// member table (how to reach this quorum's members is no business of a
// quorum it is restored into), and no log position (the restoring quorum's
// log goes on from its own).
func (f *FSM) Backup() ([]byte, uint64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := encodeSnapshot(snapshotContents{state: f.state, leaders: f.leaders, acl: f.acl})
	return b, f.applied, err
}

// CheckBackup reports whether data is a snapshot this build can restore.
func CheckBackup(data []byte) error {
	_, err := decodeSnapshotBytes(data)
	return err
}

// Restore replaces the state with a snapshot's. The new state is decoded
// and checked in full before it is swapped in; on error the old state stays.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	c, err := decodeSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state, f.members, f.leaders, f.acl, f.applied, f.term = c.state, c.members, c.leaders, c.acl, c.index, c.term
	f.mu.Unlock()
	if f.onRestore != nil {
		f.onRestore()
	}
	f.notify()
	return nil
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
