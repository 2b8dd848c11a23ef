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

// stageHistory is one stage's ends, in chunks of chunkRecords (only the
// last is shorter), so appending never copies what is held and trimming
// drops whole chunks: front is where the first held record sits in
// chunks[0]. dropped counts the records trimmed from its front, so a
// record keeps its number (dropped + index) as the front goes.
type stageHistory struct {
	chunks  [][]taskRecord
	front   int
	n       int // records held
	dropped int
}

// chunkRecords is the size of a stage history's chunks.
const chunkRecords = 4096

func (sh *stageHistory) add(r taskRecord) {
	last := len(sh.chunks) - 1
	if last < 0 || len(sh.chunks[last]) == chunkRecords {
		// The first chunk grows as records come (most stages are small);
		// the later ones are made whole.
		size := chunkRecords
		if last < 0 {
			size = 16
		}
		sh.chunks = append(sh.chunks, make([]taskRecord, 0, size))
		last++
	}
	sh.chunks[last] = append(sh.chunks[last], r)
	sh.n++
}

// at returns the i-th held record.
func (sh *stageHistory) at(i int) *taskRecord {
	p := sh.front + i
	return &sh.chunks[p/chunkRecords][p%chunkRecords]
}

// dropFront forgets the first k held records.
func (sh *stageHistory) dropFront(k int) {
	k = min(k, sh.n)
	sh.n -= k
	sh.dropped += k
	sh.front += k
	for sh.front >= chunkRecords || (len(sh.chunks) > 0 && sh.front > 0 && sh.front >= len(sh.chunks[0])) {
		drop := len(sh.chunks[0])
		sh.chunks[0] = nil
		sh.chunks = sh.chunks[1:]
		sh.front -= drop
	}
	if len(sh.chunks) > 0 {
		clear(sh.chunks[0][:sh.front]) // let go of their strings
	}
}

// taskRecord is one task attempt's end, compact: a node holds up to
// maxRecords of them and adds one per task end it applies, so the
// record is what the stage page shows and no more (no results, map
// sizes or accumulators), with the rarer parts (a message, why the end
// was ignored, a fetch failure's block) behind a pointer that a plain
// success leaves nil.
type taskRecord struct {
	task                             uint64
	time, durationMs                 int64
	resultSize, spilledBytes         int64
	mapBytes                         uint64
	partition, attempt, stageAttempt int32
	reason                           dag.Reason
	indirect, speculative            bool
	executor                         dag.ExecutorID
	rare                             *rareRecord
}

// rareRecord is what only some ends have.
type rareRecord struct {
	message, ignored string
}

func newRecord(te *dag.TaskEnded, ignored string) taskRecord {
	r := taskRecord{task: uint64(te.Task), time: te.Time, durationMs: te.DurationMs, resultSize: te.ResultSize, spilledBytes: te.SpilledBytes,
		mapBytes: te.MapBytes, partition: int32(te.Partition), attempt: int32(te.Attempt), stageAttempt: int32(te.StageAttempt),
		reason: te.Reason, indirect: te.Indirect, speculative: te.Speculative, executor: te.Executor}
	if te.Message != "" || ignored != "" {
		r.rare = &rareRecord{message: te.Message, ignored: ignored}
	}
	return r
}

// end returns the record as the command it came from (without what the
// record does not keep).
func (r *taskRecord) end() dag.TaskEnded {
	te := dag.TaskEnded{Task: dag.TaskID(r.task), Time: r.time, DurationMs: r.durationMs, ResultSize: r.resultSize, SpilledBytes: r.spilledBytes,
		MapBytes: r.mapBytes, Partition: int(r.partition), Attempt: int(r.attempt), StageAttempt: int(r.stageAttempt),
		Reason: r.reason, Indirect: r.indirect, Speculative: r.speculative, Executor: r.executor}
	if r.rare != nil {
		te.Message = r.rare.message
	}
	return te
}

// ignored says why the state ignored the end ("" if it did not).
func (r *taskRecord) ignored() string {
	if r.rare == nil {
		return ""
	}
	return r.rare.ignored
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
		ignored := results[i].Ignored
		if results[i].Err != nil {
			ignored = results[i].Err.Error()
		}
		rec := newRecord(te, ignored)
		sh := h.byStage[te.Stage]
		if sh == nil {
			sh = &stageHistory{}
			h.byStage[te.Stage] = sh
			h.order = append(h.order, te.Stage)
		}
		sh.add(rec)
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
		h.total -= h.byStage[old].n
		delete(h.byStage, old)
	}
	if h.total > h.max && len(h.order) == 1 {
		sh := h.byStage[h.order[0]]
		sh.dropFront(h.total - h.max)
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
	out := make([]recordKey, sh.n)
	for i := range sh.n {
		r := sh.at(i)
		out[i] = recordKey{part: r.partition, task: r.task, num: sh.dropped + i, state: r.reason.Label()}
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
		if i := n - sh.dropped; i >= 0 && i < sh.n {
			out[n] = *sh.at(i)
		}
	}
	return out
}
