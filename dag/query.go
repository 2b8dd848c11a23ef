package dag

import (
	"github.com/baton-sched/baton/blocksize"
	"sort"

	"github.com/baton-sched/baton/plan"
)

// TaskSpec is a task the driver may launch now.
type TaskSpec struct {
	Job          JobID // the stage's active job (the lowest running one)
	Pool         string
	Stage        StageID
	StageAttempt int
	// Partition is the partition of the stage's output node; Index is the
	// task's index in the stage (they differ for a job on some partitions).
	Partition int
	Index     int
	Epoch     uint64
	Map       bool
	Shuffle   ShuffleID // map tasks: the shuffle they write
	// Failures counts this task's failures in this stage attempt.
	Failures int
	// Preferred lists executors holding at least a fifth of the task's
	// shuffle input, the largest share first (Spark's reducer locality).
	Preferred []ExecutorID
	// ReduceEnd > 0: the task of a coalesced stage (adaptive.go) reads
	// reducer partitions [ReduceStart, ReduceEnd) of its shuffles.
	ReduceStart, ReduceEnd int
	// Cached: Preferred are executors keeping persisted partitions the
	// task reads (cache.go), which only they can read: worth waiting
	// longer for than shuffle locality.
	Cached bool
}

// Locality thresholds (Spark's SHUFFLE_PREF_MAP_THRESHOLD,
// SHUFFLE_PREF_REDUCE_THRESHOLD and REDUCER_PREF_LOCS_FRACTION).
const (
	prefMapThreshold    = 1000
	prefReduceThreshold = 1000
	prefFraction        = 0.2
)

// TaskSet is a running stage attempt with tasks to launch (Spark's
// TaskSetManager, without the volatile part the driver keeps).
type TaskSet struct {
	Job          JobID // the stage's active job (the lowest running one)
	Pool         string
	Stage        StageID
	StageAttempt int
	Pending      int // tasks without a successful end
}

// TaskSets returns the running stage attempts with pending tasks (the
// latest attempt of each running stage, unless it is a zombie), in FIFO
// order: by active job, then stage id.
func (s *State) TaskSets() []TaskSet {
	out := make([]TaskSet, 0, len(s.running))
	for _, id := range s.running {
		st := s.stages[StageID(id)]
		if st.zombie || st.npend == 0 {
			continue
		}
		jid, ok := s.activeJob(st)
		if !ok {
			continue
		}
		out = append(out, TaskSet{Job: jid, Pool: s.jobs[jid].pool, Stage: st.id, StageAttempt: st.attempt, Pending: int(st.npend)})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Job != out[b].Job {
			return out[a].Job < out[b].Job
		}
		return out[a].Stage < out[b].Stage
	})
	return out
}

// Runnable calls fn with each task that may be launched now, in FIFO
// order (by active job, then stage id), until fn returns false: the
// pending tasks of the latest, non-zombie attempt of every running stage.
// Tasks the driver is already running are included; it skips them.
func (s *State) Runnable(fn func(TaskSpec) bool) {
	for _, ts := range s.TaskSets() {
		if !s.RunnableIn(ts, fn) {
			return
		}
	}
}

// RunnableIn calls fn with each pending task of a task set, by index,
// until fn returns false; it returns false if fn did.
func (s *State) RunnableIn(ts TaskSet, fn func(TaskSpec) bool) bool {
	return s.RunnableFrom(ts, 0, fn)
}

// RunnableFrom is RunnableIn over the tasks from index from on (a driver
// that knows the tasks before from are running starts past them).
func (s *State) RunnableFrom(ts TaskSet, from int, fn func(TaskSpec) bool) bool {
	st := s.stages[ts.Stage]
	if st == nil || st.attempt != ts.StageAttempt || st.zombie {
		return true
	}
	spec := TaskSpec{
		Job:          ts.Job,
		Pool:         ts.Pool,
		Stage:        st.id,
		StageAttempt: st.attempt,
		Epoch:        st.epoch,
		Map:          st.isMap,
		Shuffle:      st.shuffle,
	}
	var j *job
	if !st.isMap {
		j = s.jobs[st.job]
	}
	more := true
	st.pending.eachFrom(from, func(i int) bool {
		t := spec
		t.Index = i
		t.Partition = i
		if j != nil {
			t.Partition = j.partition(i)
		}
		t.Failures = int(st.fails[i])
		t.ReduceStart, t.ReduceEnd, _ = st.reducerRange(i)
		if t.Preferred = s.cachedPrefs(st, t.Partition); t.Preferred != nil {
			t.Cached = true
		} else {
			t.Preferred = s.preferred(st, t.Partition)
		}
		more = fn(t)
		return more
	})
	return more
}

// preferred returns the executors holding at least prefFraction of the
// shuffle input of partition p of the stage, largest share first.
func (s *State) preferred(st *stage, p int) []ExecutorID {
	if len(st.parents) == 0 {
		return nil
	}
	bytes := map[ExecutorID]float64{}
	var total float64
	first, end, ok := st.reducerRange(p)
	if !ok {
		first, end = p, p+1
	}
	for r := first; r < end; r++ {
		s.addShuffleInputs(st, r, bytes, &total)
	}
	if total == 0 {
		return nil
	}
	var out []ExecutorID
	for e, b := range bytes {
		if b >= prefFraction*total {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if bytes[out[a]] != bytes[out[b]] {
			return bytes[out[a]] > bytes[out[b]]
		}
		return out[a] < out[b]
	})
	return out
}

// addShuffleInputs adds, by executor, the bytes partition p of the stage
// reads from the map outputs of its shuffles.
func (s *State) addShuffleInputs(st *stage, p int, bytes map[ExecutorID]float64, total *float64) {
	s.shuffleInputs(st.graph, st.node, p, func(key string, reducer int) {
		sid, ok := s.byKey[key]
		if !ok {
			return
		}
		sh := s.shuffles[sid]
		if sh.maps >= prefMapThreshold || sh.reducers >= prefReduceThreshold {
			return
		}
		for _, o := range sh.outputs {
			if o.exec == "" || len(o.sizes) != sh.reducers {
				continue
			}
			b := float64(DecompressSize(o.sizes[reducer]))
			bytes[o.exec] += b
			*total += b
		}
	})
}

// shuffleInputs calls fn with each (shuffle key, reducer) that partition
// p of node reads, following narrow dependencies.
func (s *State) shuffleInputs(g *plan.Graph, node, p int, fn func(key string, reducer int)) {
	for _, d := range g.Nodes[node].Deps {
		switch d.Kind {
		case plan.OneToOne:
			s.shuffleInputs(g, d.Parent, p, fn)
		case plan.Range:
			if p >= d.OutStart && p < d.OutStart+d.Length {
				s.shuffleInputs(g, d.Parent, p-d.OutStart+d.InStart, fn)
			}
		case plan.Shuffle:
			fn(d.Shuffle.Key, p)
		}
	}
}

// CompressSize is blocksize.Compress: a block size in one byte, as
// Spark's MapStatus.
func CompressSize(size uint64) byte { return blocksize.Compress(size) }

// DecompressSize is blocksize.Decompress.
func DecompressSize(b byte) uint64 { return blocksize.Decompress(b) }
