package server

import (
	"sync"
	"time"

	"github.com/baton-sched/baton/dag"
)

// history is this node's record of task attempt ends, by stage, for the
// UI's stage pages: it watches every log entry the FSM applies (on every
// member, leader or not) and keeps the TaskEnded commands it saw. It is
// not replicated state: a node keeps what it applied since it started,
// at most maxRecords records (the oldest stages' go first).
type history struct {
	mu      sync.Mutex
	max     int
	total   int
	byStage map[dag.StageID][]taskRecord
	order   []dag.StageID // stages in the order first seen, for eviction
	// started is when this record began: the node's start, or its latest
	// restore of a snapshot (ends before it may be missing).
	started time.Time
}

// taskRecord is one task attempt's end.
type taskRecord struct {
	te      dag.TaskEnded // Result and MapSizes dropped
	ignored string
}

const maxRecords = 200_000

func newHistory() *history {
	return &history{max: maxRecords, byStage: map[dag.StageID][]taskRecord{}, started: time.Now()}
}

// applied is the FSM's OnApply hook: it runs under the FSM's lock.
func (h *history) applied(cmds []dag.Command, results []dag.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range cmds {
		te, ok := c.(*dag.TaskEnded)
		if !ok {
			continue
		}
		rec := taskRecord{te: *te, ignored: results[i].Ignored}
		rec.te.Result, rec.te.MapSizes = nil, nil
		if results[i].Err != nil {
			rec.ignored = results[i].Err.Error()
		}
		if _, seen := h.byStage[te.Stage]; !seen {
			h.order = append(h.order, te.Stage)
		}
		h.byStage[te.Stage] = append(h.byStage[te.Stage], rec)
		h.total++
	}
	for h.total > h.max && len(h.order) > 1 {
		old := h.order[0]
		h.order = h.order[1:]
		h.total -= len(h.byStage[old])
		delete(h.byStage, old)
	}
	// One stage alone over the bound keeps its newest ends.
	if h.total > h.max && len(h.order) == 1 {
		only := h.order[0]
		recs := h.byStage[only]
		drop := h.total - h.max
		h.byStage[only] = append(recs[:0:0], recs[drop:]...)
		h.total = h.max
	}
}

// reset forgets everything (the state was replaced by a snapshot).
func (h *history) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.byStage, h.order, h.total, h.started = map[dag.StageID][]taskRecord{}, nil, 0, time.Now()
}

// since returns when this record began.
func (h *history) since() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// stage returns a stage's recorded ends, oldest first.
func (h *history) stage(id dag.StageID) []taskRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]taskRecord(nil), h.byStage[id]...)
}
