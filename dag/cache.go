package dag

import (
	"fmt"
	"slices"

	"github.com/baton-sched/baton/plan"
)

// Persisted datasets (Spark's persist, the BlockManagerMaster's block
// locations, DAGScheduler.getCacheLocs and clearCacheLocs). A graph node
// with a Persist key is a persisted dataset: a task that computes one of
// its partitions keeps it in its executor's block store and reports it
// with its success (TaskEnded.Cached); the state records where each
// partition is, so that
//   - tasks that read a cached partition prefer its executor (cached
//     locations come before shuffle locality, as getPreferredLocs), and
//   - a stage whose datasets read a fully cached persisted dataset does
//     not wait for the map stages below it (getMissingParentStages stops
//     at an RDD with no uncached partitions).
//
// Where Baton differs from Spark: block locations are replicated state,
// learnt from the log, so a leader taking over knows them; a partition
// lost with its executor is forgotten with the executor's map outputs,
// and a task that then needs it computes it again from its lineage (a
// task that finds no map output for a shuffle below fails to fetch, and
// the map stage runs again, as in Spark). Entries live until Unpersist,
// not with jobs: the same lineage in a later job finds them.

// CachedPartition is a partition of a persisted dataset that a task kept
// in its executor's block store (or read there). Gen is the dataset's
// generation the task was launched with (CacheGeneration): a dataset
// unpersisted and persisted again is a new generation, and blocks of the
// old one are never read nor recorded.
type CachedPartition struct {
	Key       string // the node's Persist key
	Partition int
	Bytes     int64
	Gen       uint64
}

// MaxCachedBytes bounds a reported partition's size (the executors keep
// at most 128 MiB; the bound keeps sums far from overflow).
const MaxCachedBytes = 1 << 40

// Unpersist forgets persisted datasets (Spark's unpersist): their blocks
// are listed in Result.Dropped.Cached for every executor to delete.
type Unpersist struct {
	Time int64
	Keys []string
}

func (*Unpersist) isCommand() {}

// MaxPersistedDatasets bounds the persisted datasets the state tracks.
const MaxPersistedDatasets = 1024

// ErrNotPersisted: an Unpersist named no dataset the state tracks.
var ErrNotPersisted = fmt.Errorf("dag: no such persisted dataset")

type cachedData struct {
	key     string
	gen     uint64 // assigned from State.nextCacheGen when created
	name    string // the dataset's name in the graph that created it
	parts   int
	locs    []ExecutorID // by partition; "" where not cached
	bytes   []int64
	n       int   // cached partitions
	created int64 // command time of the first job that named it
}

// CachedInfo is a read-only view of a persisted dataset.
type CachedInfo struct {
	Key        string
	Name       string
	Partitions int
	Cached     int
	Bytes      int64
	Created    int64
	// Executors holds, by executor, how many partitions it keeps.
	Executors map[ExecutorID]int
}

// Cached returns the persisted datasets, ascending by key.
func (s *State) Cached() []CachedInfo {
	keys := make([]string, 0, len(s.cache))
	for k := range s.cache {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]CachedInfo, 0, len(keys))
	for _, k := range keys {
		c := s.cache[k]
		info := CachedInfo{Key: c.key, Name: c.name, Partitions: c.parts, Cached: c.n, Created: c.created, Executors: map[ExecutorID]int{}}
		for p, e := range c.locs {
			if e != "" {
				info.Bytes += c.bytes[p]
				info.Executors[e]++
			}
		}
		out = append(out, info)
	}
	return out
}

// CacheGeneration returns a persisted dataset's generation: what tasks
// are launched with, and what their reports must carry.
func (s *State) CacheGeneration(key string) (uint64, bool) {
	if c := s.cache[key]; c != nil {
		return c.gen, true
	}
	return 0, false
}

// CachedLocation returns the executor keeping a partition of a persisted
// dataset.
func (s *State) CachedLocation(key string, partition int) (ExecutorID, bool) {
	c := s.cache[key]
	if c == nil || partition < 0 || partition >= c.parts || c.locs[partition] == "" {
		return "", false
	}
	return c.locs[partition], true
}

// checkPersisted validates a graph's persisted datasets against the state:
// one key, one partition count; at most MaxPersistedDatasets in all. It
// returns the partitions new entries would add.
func (s *State) checkPersisted(g *plan.Graph) (int64, error) {
	var added int64
	fresh := map[string]int{}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Persist == "" {
			continue
		}
		want, ok := fresh[n.Persist]
		if c := s.cache[n.Persist]; c != nil {
			want, ok = c.parts, true
		}
		if ok && want != n.Partitions {
			return 0, fmt.Errorf("%w: persisted dataset %s has %d partitions in one place and %d in another", ErrInvalidGraph, n.Persist, want, n.Partitions)
		}
		if s.cache[n.Persist] == nil && !ok {
			fresh[n.Persist] = n.Partitions
			added += int64(n.Partitions)
		}
	}
	if len(s.cache)+len(fresh) > MaxPersistedDatasets {
		return 0, fmt.Errorf("%w: %d persisted datasets and the job's %d would pass the limit of %d; unpersist some", ErrTooManyTasks, len(s.cache), len(fresh), MaxPersistedDatasets)
	}
	return added, nil
}

// addPersisted creates the entries of a graph's persisted datasets
// (checkPersisted passed).
func (s *State) addPersisted(g *plan.Graph) {
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Persist == "" || s.cache[n.Persist] != nil {
			continue
		}
		s.nextCacheGen++
		s.cache[n.Persist] = &cachedData{key: n.Persist, gen: s.nextCacheGen, name: n.Name, parts: n.Partitions,
			locs: make([]ExecutorID, n.Partitions), bytes: make([]int64, n.Partitions), created: s.now}
		s.liveTasks += n.Partitions
	}
}

// CheckCached reports why the cached partitions a task of stage computing
// partition p reports cannot be true: each must be the partition of a
// persisted dataset that the task's partition reads through narrow
// dependencies, once, with a size in range. The driver checks reports
// with it before they are logged; the state refuses what fails it.
func (s *State) CheckCached(stage StageID, p int, cached []CachedPartition) error {
	st := s.stages[stage]
	if st == nil || len(cached) == 0 {
		return nil
	}
	return checkCached(st, p, cached)
}

func checkCached(st *stage, p int, cached []CachedPartition) error {
	if len(cached) == 0 {
		return nil
	}
	reads := persistedReads(st.graph, st.node, p)
	if len(cached) > len(reads) {
		return fmt.Errorf("%d cached partitions from a task that reads %d persisted ones", len(cached), len(reads))
	}
	seen := map[string]bool{}
	for _, c := range cached {
		want, ok := reads[c.Key]
		switch {
		case !ok:
			return fmt.Errorf("cached partition of %q, which partition %d of the stage does not read", c.Key, p)
		case c.Partition != want:
			return fmt.Errorf("cached partition %d of %s, where partition %d of the stage reads %d", c.Partition, c.Key, p, want)
		case c.Bytes < 0 || c.Bytes > MaxCachedBytes:
			return fmt.Errorf("cached partition %d of %s of %d bytes", c.Partition, c.Key, c.Bytes)
		case seen[c.Key]:
			return fmt.Errorf("dataset %s cached twice by one task", c.Key)
		}
		seen[c.Key] = true
	}
	return nil
}

// persistedReads returns, by key, the partition of each persisted dataset
// that partition p of node reads through narrow dependencies.
func persistedReads(g *plan.Graph, node, p int) map[string]int {
	out := map[string]int{}
	var walk func(node, p int)
	walk = func(node, p int) {
		n := &g.Nodes[node]
		if n.Persist != "" {
			out[n.Persist] = p
		}
		for _, d := range n.Deps {
			switch d.Kind {
			case plan.OneToOne:
				walk(d.Parent, p)
			case plan.Range:
				if p >= d.OutStart && p < d.OutStart+d.Length {
					walk(d.Parent, p-d.OutStart+d.InStart)
				}
			}
		}
	}
	if p >= 0 && p < g.Nodes[node].Partitions {
		walk(node, p)
	}
	return out
}

// recordCached notes the partitions a successful task kept. The first
// executor to keep a partition is its location; a copy elsewhere is
// freed with the dataset.
func (s *State) recordCached(c *TaskEnded) {
	if e := s.executors[c.Executor]; e == nil || !e.alive {
		return
	}
	for _, cp := range c.Cached {
		d := s.cache[cp.Key]
		if d == nil || cp.Gen != d.gen || cp.Partition >= d.parts || d.locs[cp.Partition] != "" {
			continue // unpersisted since (or persisted anew), or known
		}
		d.locs[cp.Partition] = c.Executor
		d.bytes[cp.Partition] = cp.Bytes
		d.n++
	}
}

// cacheLost forgets the partitions an executor kept.
func (s *State) cacheLost(id ExecutorID) {
	for _, d := range s.cache {
		for p, e := range d.locs {
			if e == id {
				d.locs[p] = ""
				d.bytes[p] = 0
				d.n--
			}
		}
	}
}

// unpersist forgets persisted datasets; every executor deletes their
// blocks (Dropped.Cached).
func (s *State) unpersist(c *Unpersist) Result {
	var gone []string
	for _, k := range c.Keys {
		if d := s.cache[k]; d != nil {
			delete(s.cache, k)
			s.liveTasks -= d.parts
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return Result{Err: fmt.Errorf("%w: %v", ErrNotPersisted, c.Keys)}
	}
	slices.Sort(gone)
	s.drop.Cached = append(s.drop.Cached, gone...)
	return Result{}
}

// fullyCached reports whether every partition of a persisted node is
// cached.
func (s *State) fullyCached(n *plan.Node) bool {
	if n.Persist == "" {
		return false
	}
	d := s.cache[n.Persist]
	return d != nil && d.n == d.parts
}

// neededParents returns the parent map stages a stage must wait for: those
// whose shuffles its datasets read other than through a fully cached
// persisted dataset (getMissingParentStages).
func (s *State) neededParents(st *stage) []StageID {
	if len(s.cache) == 0 {
		return st.parents
	}
	g := st.graph
	keys := map[string]bool{}
	seen := make([]bool, len(g.Nodes))
	todo := []int{st.node}
	for len(todo) > 0 {
		i := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[i] {
			continue
		}
		seen[i] = true
		if s.fullyCached(&g.Nodes[i]) {
			continue
		}
		for _, d := range g.Nodes[i].Deps {
			if d.Kind == plan.Shuffle {
				keys[d.Shuffle.Key] = true
			} else {
				todo = append(todo, d.Parent)
			}
		}
	}
	var out []StageID
	for _, p := range st.parents {
		ps := s.stages[p]
		if ps == nil {
			continue
		}
		// A parent being computed (a task of this stage failed to fetch
		// from it, say: it recomputed a cached partition away from its
		// executor) is waited for, cache or not; otherwise the stage
		// would run beside it and fail to fetch again.
		id := uint64(p)
		if keys[s.shuffles[ps.shuffle].key] || s.waiting.has(id) || s.running.has(id) || s.failed.has(id) {
			out = append(out, p)
		}
	}
	return out
}

// cachedPrefs returns the executors keeping the persisted partitions that
// partition p of the stage reads (the first found down each narrow path),
// the most partitions first.
func (s *State) cachedPrefs(st *stage, p int) []ExecutorID {
	if len(s.cache) == 0 {
		return nil
	}
	count := map[ExecutorID]int{}
	var walk func(node, p int)
	walk = func(node, p int) {
		n := &st.graph.Nodes[node]
		if n.Persist != "" {
			if e, ok := s.CachedLocation(n.Persist, p); ok {
				count[e]++
				return
			}
		}
		for _, d := range n.Deps {
			switch d.Kind {
			case plan.OneToOne:
				walk(d.Parent, p)
			case plan.Range:
				if p >= d.OutStart && p < d.OutStart+d.Length {
					walk(d.Parent, p-d.OutStart+d.InStart)
				}
			}
		}
	}
	walk(st.node, p)
	if len(count) == 0 {
		return nil
	}
	out := make([]ExecutorID, 0, len(count))
	for e := range count {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b ExecutorID) int {
		if count[a] != count[b] {
			return count[b] - count[a]
		}
		if a < b {
			return -1
		}
		return 1
	})
	return out
}

func (e *encoder) cache(s *State) {
	keys := make([]string, 0, len(s.cache))
	for k := range s.cache {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		d := s.cache[k]
		e.str(d.key)
		e.uint(d.gen)
		e.str(d.name)
		e.uint(uint64(d.parts))
		e.int(d.created)
		e.uint(uint64(d.n))
		for p, x := range d.locs {
			if x != "" {
				e.uint(uint64(p))
				e.str(string(x))
				e.int(d.bytes[p])
			}
		}
	}
}

func (d *decoder) cache(s *State) {
	for n := d.count(); n > 0 && d.err == nil; n-- {
		c := &cachedData{key: d.str(), gen: d.uint(), name: d.str()}
		c.parts = d.bounded(d.int32())
		if s.liveTasks+c.parts > s.cfg.MaxLiveTasks {
			d.fail("persisted dataset %s: %d partitions past the live-task limit", c.key, c.parts)
			return
		}
		c.created = d.int()
		c.locs = make([]ExecutorID, c.parts)
		c.bytes = make([]int64, c.parts)
		for m := d.count(); m > 0 && d.err == nil; m-- {
			p := d.index(c.parts)
			c.locs[p] = ExecutorID(d.str())
			c.bytes[p] = d.int()
			c.n++
		}
		s.cache[c.key] = c
		s.liveTasks += c.parts
	}
}
