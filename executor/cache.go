package executor

import (
	"errors"
	"sync"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
)

// taskCache is one task's access to the executor's kept partitions of
// persisted datasets (ops.Cache): it reads them from the block store, and
// keeps the partitions the task computed once the task has succeeded,
// listing them in its status for the scheduler to record.
type taskCache struct {
	e    *Executor
	mu   sync.Mutex // a task's narrow closure runs on one goroutine; pipes may not
	kept []keptPartition
}

type keptPartition struct {
	key   string
	part  int
	block []byte
}

func (c *taskCache) Get(key string, part int) ([]byte, bool) {
	b, err := c.e.store.Cached(key, part)
	switch {
	case err == nil:
		c.e.metrics.cached.WithLabelValues("hit").Inc()
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

func (c *taskCache) Keep(key string, part int, block []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.kept {
		if k.key == key && k.part == part {
			return
		}
	}
	c.kept = append(c.kept, keptPartition{key, part, block})
}

// keep stores the partitions a successful task computed and lists them in
// its status; a partition the store refuses (a full disk) is not listed.
func (c *taskCache) keep(st *api.TaskStatus) *api.TaskStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.State != api.TaskState_TASK_STATE_FINISHED {
		return st
	}
	for _, k := range c.kept {
		if err := c.e.store.PutCached(k.key, k.part, k.block); err != nil {
			c.e.log.Warn("executor: keeping a cached partition", "dataset", k.key, "partition", k.part, "err", err)
			continue
		}
		st.Cached = append(st.Cached, &api.CachedPartition{Key: k.key, Partition: int32(k.part), Bytes: int64(len(k.block))})
	}
	c.kept = nil
	return st
}
