package server

import (
	"testing"

	"github.com/baton-sched/baton/dag"
)

// TestHistoryKeepsItsNewestRecordsInOrder checks the chunked record
// against the plain model it replaces: a stage alone over the bound keeps
// its newest records, numbered as they were when added, and older stages
// go first.
func TestHistoryKeepsItsNewestRecordsInOrder(t *testing.T) {
	h := newHistory()
	h.max = 10_000
	end := func(stage, i int) dag.Command {
		return &dag.TaskEnded{Stage: dag.StageID(stage), Task: dag.TaskID(i), Partition: i, Reason: dag.Success}
	}
	// Stage 1 a little, then stage 2 far over the bound, in uneven batches.
	var cmds []dag.Command
	for i := range 100 {
		cmds = append(cmds, end(1, i))
	}
	h.applied(cmds, make([]dag.Result, len(cmds)))
	const n = 47_123
	for i := 0; i < n; {
		k := min(1+i%977, n-i)
		cmds = cmds[:0]
		for j := range k {
			cmds = append(cmds, end(2, i+j))
		}
		h.applied(cmds, make([]dag.Result, len(cmds)))
		i += k
	}
	if keys := h.keys(1); len(keys) != 0 {
		t.Fatalf("stage 1 kept %d records after stage 2 passed the bound", len(keys))
	}
	keys := h.keys(2)
	if len(keys) < h.max || len(keys) > h.max+h.max/4 {
		t.Fatalf("stage 2 holds %d records, want between %d and %d", len(keys), h.max, h.max+h.max/4)
	}
	first := n - len(keys)
	var nums []int
	for i, k := range keys {
		if k.num != first+i || k.task != uint64(first+i) || k.part != int32(first+i) {
			t.Fatalf("record %d is number %d, task %d, partition %d; want %d for all", i, k.num, k.task, k.part, first+i)
		}
		nums = append(nums, k.num)
	}
	recs := h.records(2, append(nums, first-1, n))
	if len(recs) != len(keys) {
		t.Fatalf("records gave %d of %d asked (and 2 that are not held)", len(recs), len(keys))
	}
	for _, num := range nums {
		if r := recs[num]; int(r.task) != num {
			t.Fatalf("record %d holds task %d", num, r.task)
		}
	}
}
