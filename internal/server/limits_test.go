package server

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/propose"
)

// TestMaxDirectResultSizeFitsALogEntry: a -max-direct-result-size above
// what one log entry carries is refused at start, naming the flag and the
// largest accepted; at the largest the node starts, and the entry of a
// direct result that size, with the longest message the driver keeps and
// every other field at its widest, stays within propose.MaxEntryBytes.
func TestMaxDirectResultSizeFitsALogEntry(t *testing.T) {
	for _, size := range []int64{MaxDirectResultSize + 1, 64 << 20} {
		cfg := singleNode(t, t.TempDir())
		cfg.Driver.MaxDirectResultSize = size
		s, err := New(cfg)
		if err == nil {
			s.Close(context.Background())
			t.Fatalf("a node with -max-direct-result-size %d started", size)
		}
		for _, want := range []string{"-max-direct-result-size", "is above", "4128768"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("New with -max-direct-result-size %d: %v; want it to say %q", size, err, want)
			}
		}
	}
	cfg := singleNode(t, t.TempDir())
	cfg.Driver.MaxDirectResultSize = MaxDirectResultSize
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New at the largest -max-direct-result-size: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	te := &dag.TaskEnded{Task: math.MaxUint64, Stage: math.MaxUint64, StageAttempt: math.MaxInt32, Partition: math.MaxInt32,
		Attempt: math.MaxInt32, Executor: dag.ExecutorID(strings.Repeat("e", 1<<10)), Epoch: math.MaxUint64, Reason: dag.Success,
		Message: strings.Repeat("\u00e9", 2<<10), ResultSize: MaxDirectResultSize, Result: make([]byte, MaxDirectResultSize),
		DurationMs: math.MaxInt64}
	b, err := fsm.Encode(math.MaxInt64, []dag.Command{te})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > propose.MaxEntryBytes {
		t.Fatalf("the entry of a %d-byte direct result is %d bytes, over propose.MaxEntryBytes (%d)", MaxDirectResultSize, len(b), propose.MaxEntryBytes)
	}
}
