package executor

import (
	"errors"
	"sync"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/ops"
)

// taskCache is one task's access to the executor's kept partitions of
// persisted datasets (ops.Cache), for the dataset generations the launch
// names (a dataset it does not name was unpersisted: neither read nor
// kept). It reads partitions from the block store, and keeps those the
// task computed once the task has succeeded; its status lists both, so
// the scheduler learns (again) where they are.
type taskCache struct {
	e    *Executor
	gens map[string]uint64

	mu    sync.Mutex // a task's narrow closure may run on more than one goroutine (pipes)
	kept  []keptPartition
	found []*api.CachedPartition
}

type keptPartition struct {
	key   string
	part  int
	block []byte
}

func (c *taskCache) Get(key string, part int) ([]byte, bool) {
	gen, ok := c.gens[key]
	if !ok {
		return nil, false
	}
	b, err := c.e.store.Cached(key, gen, part)
	switch {
	case err == nil:
		c.e.metrics.cached.WithLabelValues("hit").Inc()
		c.mu.Lock()
		c.found = append(c.found, &api.CachedPartition{Key: key, Partition: int32(part), Bytes: int64(len(b)), Generation: gen})
		c.mu.Unlock()
		return b, true
	case errors.Is(err, blockstore.ErrNotFound):
		c.e.metrics.cached.WithLabelValues("miss").Inc()
	default:
		// A corrupt or unreadable partition is computed again.
		c.e.metrics.cached.WithLabelValues("unreadable").Inc()
		c.e.log.Warn("executor: cached partition unreadable; computing it again", "dataset", key, "partition", part, "err", err)
	}
	return nil, false
}

// Unreadable is told of a kept partition that passed its checksum but
// does not decode: it is computed again, and kept anew.
func (c *taskCache) Unreadable(key string, part int, err error) {
	c.e.metrics.cached.WithLabelValues("unreadable").Inc()
	c.e.log.Warn("executor: cached partition does not decode; computing it again", "dataset", key, "partition", part, "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range c.found {
		if f.Key == key && int(f.Partition) == part {
			c.found = append(c.found[:i], c.found[i+1:]...)
			break
		}
	}
}

func (c *taskCache) Keep(key string, part int, block []byte) {
	if _, ok := c.gens[key]; !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.kept {
		if k.key == key && k.part == part {
			return
		}
	}
	c.kept = append(c.kept, keptPartition{key, part, block})
}

// keep stores the partitions a successful task computed and lists them,
// with those it read, in its status; a partition the store refuses (no
// room) is not listed.
func (c *taskCache) keep(st *api.TaskStatus) *api.TaskStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.State != api.TaskState_TASK_STATE_FINISHED {
		return st
	}
	st.Cached = append(st.Cached, c.found...)
	for _, k := range c.kept {
		gen := c.gens[k.key]
		if err := c.e.store.PutCached(k.key, gen, k.part, k.block); err != nil {
			c.e.log.Warn("executor: keeping a cached partition", "dataset", k.key, "partition", k.part, "err", err)
			continue
		}
		st.Cached = append(st.Cached, &api.CachedPartition{Key: k.key, Partition: int32(k.part), Bytes: int64(len(k.block)), Generation: gen})
	}
	c.kept, c.found = nil, nil
	return st
}

// mapSink writes a map task's output a segment at a time once it passes
// the task's budget (ops.MapSink): the segments stream into one sstable,
// ingested with the last one, so the output appears whole or not at all.
type mapSink struct {
	store   *blockstore.Store
	shuffle uint64
	mapIdx  int
	stats   *ops.TaskStats
	w       *blockstore.MapWriter
}

func (s *mapSink) Segment(blocks [][]byte) error {
	if s.w == nil {
		w, err := s.store.NewMapWriter(s.shuffle, s.mapIdx, len(blocks))
		if err != nil {
			return err
		}
		s.w = w
	}
	return s.w.Segment(blocks)
}

// finish writes the output: its last segment, or all of it when it never
// passed the budget.
func (s *mapSink) finish(blocks [][]byte) error {
	if s.w == nil {
		return s.store.PutMapOutput(s.shuffle, s.mapIdx, blocks)
	}
	return s.w.Finish(blocks)
}

func (s *mapSink) abort() {
	if s.w != nil {
		s.w.Abort()
	}
}
