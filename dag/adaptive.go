package dag

import (
	"fmt"

	"github.com/baton-sched/baton/plan"
)

// Adaptive coalescing (Spark's adaptive query execution,
// CoalesceShufflePartitions and ShufflePartitionsUtil.coalescePartitions):
// a stage created by a job with an AdaptiveTarget reads its shuffles'
// map output statistics when it is first submitted (its parents are all
// available then) and merges neighbouring reducer partitions into tasks
// of about the target's bytes, so a shuffle declared with many reducers
// over little data runs a few tasks instead of many tiny ones.
//
// Where Baton differs from Spark: the decision is the state's, made while
// applying the command that submits the stage, from the statistics in
// the log, so every replica makes the same one and a leader taking over
// mid-job keeps it; it is fixed for the stage's life (a resubmitted
// attempt runs the same tasks). A coalesced task of a map stage is one
// map output, so a coalesced map stage's shuffle has fewer maps than its
// dataset has partitions. A stage is coalesced only when every dataset it
// computes reads its shuffles one partition to one (no source, union or
// range dependency within the stage) and, for a result stage, when the
// job computes all partitions.

// coalesce decides a stage's coalescing at its first submission and
// resizes it; it returns a description for the StageSubmitted event
// ("" when the stage keeps one task a partition).
func (s *State) coalesce(st *stage) string {
	reducers, keys, ok := coalescible(st.graph, st.node)
	if !ok {
		return ""
	}
	var j *job
	if !st.isMap {
		if j = s.jobs[st.job]; j == nil || j.parts != nil || j.nTasks != reducers {
			return ""
		}
	}
	bytes := make([]uint64, reducers)
	for _, key := range keys {
		sid, live := s.byKey[key]
		if !live {
			return ""
		}
		by, _, _ := s.ShuffleStatistics(sid)
		if len(by) != reducers {
			return ""
		}
		for r, b := range by {
			bytes[r] += b
		}
	}
	starts := CoalescePartitions(bytes, uint64(st.adaptive))
	if len(starts) == reducers {
		return ""
	}
	st.coalesced = starts
	n := len(starts)
	s.liveTasks += n - st.nTasks
	st.nTasks = n
	st.initTasks()
	if st.isMap {
		sh := s.shuffles[st.shuffle]
		sh.maps = n
		sh.outputs = make([]mapOutput, n)
	} else {
		j.nTasks = n
		j.finished = make([]bool, n)
		j.results = make([]ResultRef, n)
	}
	var total uint64
	for _, b := range bytes {
		total += b
	}
	return fmt.Sprintf("coalesced %d partitions (%s of shuffle input) into %d, target %s",
		reducers, bytesString(int64(total)), n, bytesString(st.adaptive))
}

// coalescible reports whether the stage computing node may be coalesced:
// every node of its narrow closure reads either shuffles only or its
// parents one to one, and something reads a shuffle. It returns the
// reducer count and the keys of the shuffles read.
func coalescible(g *plan.Graph, node int) (reducers int, keys []string, ok bool) {
	for _, n := range g.NarrowClosure(node) {
		deps := g.Nodes[n].Deps
		if len(deps) == 0 {
			return 0, nil, false // a source: its splits are not reducers
		}
		if g.Nodes[n].Persist != "" {
			return 0, nil, false // its partitions are cached one by one
		}
		if g.Nodes[n].Op == "repartition" {
			// An explicit partition count: Spark's AQE leaves
			// repartition(n) alone too (REPARTITION_BY_NUM).
			return 0, nil, false
		}
		shuffles := 0
		for _, d := range deps {
			switch d.Kind {
			case plan.Shuffle:
				shuffles++
			case plan.OneToOne:
			default:
				return 0, nil, false
			}
		}
		if shuffles > 0 && shuffles != len(deps) {
			return 0, nil, false
		}
	}
	for _, d := range g.ShuffleDeps(node) {
		keys = append(keys, d.Shuffle.Key)
	}
	reducers = g.Nodes[node].Partitions
	return reducers, keys, len(keys) > 0 && reducers > 1
}

// CoalescePartitions groups consecutive reducer partitions, given their
// bytes, into groups of at most target bytes each (a partition larger
// than target stays alone), and returns the first partition of each
// group: Spark's greedy coalescePartitions, without its minimum
// partition count (a target below the average keeps the parallelism).
// A trailing group smaller than a fifth of the target is merged into the
// one before it when that stays within 1.2 times the target
// (SMALL_PARTITION_FACTOR and MERGED_PARTITION_FACTOR).
func CoalescePartitions(bytes []uint64, target uint64) []int {
	if len(bytes) == 0 {
		return nil
	}
	target = max(target, 1)
	starts := []int{0}
	cur := bytes[0]
	for r := 1; r < len(bytes); r++ {
		if cur+bytes[r] > target {
			starts = append(starts, r)
			cur = bytes[r]
			continue
		}
		cur += bytes[r]
	}
	if n := len(starts); n > 1 && cur*5 < target {
		var prev uint64
		for r := starts[n-2]; r < starts[n-1]; r++ {
			prev += bytes[r]
		}
		if (prev+cur)*5 <= target*6 {
			starts = starts[:n-1]
		}
	}
	return starts
}

// reducerRange returns the reducer partitions task i of a coalesced
// stage reads, [start, end); ok is false for a stage that is not
// coalesced.
func (st *stage) reducerRange(i int) (start, end int, ok bool) {
	if st.coalesced == nil || i < 0 || i >= len(st.coalesced) {
		return 0, 0, false
	}
	start, end = st.coalesced[i], st.graph.Nodes[st.node].Partitions
	if i+1 < len(st.coalesced) {
		end = st.coalesced[i+1]
	}
	return start, end, true
}
