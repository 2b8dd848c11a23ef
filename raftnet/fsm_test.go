package raftnet

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// testFSM is the state machine of raftnet's tests: the data of every
// command entry applied, in order, and the index of the last entry
// applied (commands and configurations, as a batching FSM sees them). It
// snapshots and restores the whole list. raftnet's tests test Raft's
// assembly, not what the entries mean.
type testFSM struct {
	mu      sync.Mutex
	entries []string
	applied uint64
}

func newTestFSM() *testFSM { return &testFSM{} }

var _ raft.BatchingFSM = (*testFSM)(nil)

// Apply appends a command's data; it returns the entry's index.
func (f *testFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(l)
}

// ApplyBatch is Apply for each entry; it also sees configuration entries.
func (f *testFSM) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]any, len(logs))
	for i, l := range logs {
		out[i] = f.applyLocked(l)
	}
	return out
}

func (f *testFSM) applyLocked(l *raft.Log) any {
	if l.Index > f.applied {
		f.applied = l.Index
	}
	if l.Type != raft.LogCommand {
		return nil
	}
	f.entries = append(f.entries, string(l.Data))
	return l.Index
}

// Applied returns the index of the last entry applied.
func (f *testFSM) Applied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// distinct returns how many different commands were applied: the tests'
// commands are idempotent (one made twice, when its first outcome was
// unknown, counts once).
func (f *testFSM) distinct() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range f.entries {
		seen[e] = true
	}
	return len(seen)
}

// Snapshot copies the state; Persist writes it while Apply goes on.
func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testSnapshot{entries: append([]string(nil), f.entries...), applied: f.applied}, nil
}

// Restore replaces the state with a snapshot's.
func (f *testFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("test fsm: snapshot header: %w", err)
	}
	applied, n := binary.BigEndian.Uint64(hdr[:8]), binary.BigEndian.Uint64(hdr[8:])
	entries := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return fmt.Errorf("test fsm: snapshot entry %d: %w", i, err)
		}
		b := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("test fsm: snapshot entry %d: %w", i, err)
		}
		entries = append(entries, string(b))
	}
	f.mu.Lock()
	f.entries, f.applied = entries, applied
	f.mu.Unlock()
	return nil
}

type testSnapshot struct {
	entries []string
	applied uint64
}

// Persist writes the applied index, the number of entries, then each
// entry's length and data.
func (s *testSnapshot) Persist(sink raft.SnapshotSink) error {
	buf := binary.BigEndian.AppendUint64(nil, s.applied)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(s.entries)))
	for _, e := range s.entries {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(e)))
		buf = append(buf, e...)
	}
	if _, err := sink.Write(buf); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *testSnapshot) Release() {}
