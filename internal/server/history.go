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
// about maxRecords records (the oldest stages' go first; a stage alone
// over the bound keeps its newest).
//
// It runs in the FSM's apply hook, under the FSM's lock, so it does O(1)
// amortised work per record: it trims only once the bound is passed by a
// quarter, and then back to the bound.
type history struct {
	mu      sync.Mutex
	max     int
	total   int
	byStage map[dag.StageID]*stageHistory
	order   []dag.StageID // stages in the order first seen, for eviction
	// started is when this record began: the node's start, or its latest
	// restore of a snapshot (ends before it may be missing).
	started time.Time
}

// stageHistory is one stage's ends; dropped counts those trimmed from
// its front, so a record keeps its number (dropped + index) as the front
// goes.
type stageHistory struct {
	recs    []taskRecord
	dropped int
}

// taskRecord is one task attempt's end.
type taskRecord struct {
	te      dag.TaskEnded // Result and MapSizes dropped
	ignored string
}

const maxRecords = 200_000

func newHistory() *history {
	return &history{max: maxRecords, byStage: map[dag.StageID]*stageHistory{}, started: time.Now()}
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
		sh := h.byStage[te.Stage]
		if sh == nil {
			sh = &stageHistory{}
			h.byStage[te.Stage] = sh
			h.order = append(h.order, te.Stage)
		}
		sh.recs = append(sh.recs, rec)
		h.total++
	}
	if h.total > h.max+h.max/4 {
		h.trim()
	}
}

// trim brings the record back to h.max: whole stages first, oldest first,
// then the front of the one stage left.
func (h *history) trim() {
	for h.total > h.max && len(h.order) > 1 {
		old := h.order[0]
		h.order = h.order[1:]
		h.total -= len(h.byStage[old].recs)
		delete(h.byStage, old)
	}
	if h.total > h.max && len(h.order) == 1 {
		sh := h.byStage[h.order[0]]
		drop := h.total - h.max
		sh.recs = append(sh.recs[:0:0], sh.recs[drop:]...)
		sh.dropped += drop
		h.total = h.max
	}
}

// reset forgets everything (the state was replaced by a snapshot).
func (h *history) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.byStage, h.order, h.total, h.started = map[dag.StageID]*stageHistory{}, nil, 0, time.Now()
}

// since returns when this record began.
func (h *history) since() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// recordKey is what a stage page sorts and counts records by, without
// copying them: the record's number in its stage (see stageHistory).
type recordKey struct {
	part  int32
	task  uint64
	num   int
	state string
}

// keys returns the keys of a stage's records.
func (h *history) keys(id dag.StageID) []recordKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	sh := h.byStage[id]
	if sh == nil {
		return nil
	}
	out := make([]recordKey, len(sh.recs))
	for i := range sh.recs {
		te := &sh.recs[i].te
		out[i] = recordKey{part: int32(te.Partition), task: uint64(te.Task), num: sh.dropped + i, state: te.Reason.Label()}
	}
	return out
}

// records returns the records with the given numbers that are still
// held (the others were trimmed since), by number.
func (h *history) records(id dag.StageID, nums []int) map[int]taskRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	sh := h.byStage[id]
	out := make(map[int]taskRecord, len(nums))
	if sh == nil {
		return out
	}
	for _, n := range nums {
		if i := n - sh.dropped; i >= 0 && i < len(sh.recs) {
			out[n] = sh.recs[i]
		}
	}
	return out
}
