package dag

import (
	"errors"
	"fmt"
	"slices"
)

// CheckInvariants verifies the state's internal consistency and returns
// every violation found. Tests call it after every command; Unmarshal
// calls it on every snapshot it decodes. It never panics, whatever the
// state holds.
func (s *State) CheckInvariants() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// Scheduling sets: disjoint, sorted, of live stages with a running job.
	inSet := map[uint64]string{}
	for _, set := range []struct {
		name string
		ids  idSet
	}{{"waiting", s.waiting}, {"running", s.running}, {"failed", s.failed}} {
		for i, id := range set.ids {
			if i > 0 && set.ids[i-1] >= id {
				fail("%s set not sorted", set.name)
			}
			if other, ok := inSet[id]; ok {
				fail("stage %d is both %s and %s", id, other, set.name)
			}
			inSet[id] = set.name
			st := s.stages[StageID(id)]
			if st == nil {
				fail("%s stage %d does not exist", set.name, id)
				continue
			}
			if _, ok := s.activeJob(st); !ok {
				fail("%s stage %d has no running job", set.name, id)
			}
		}
	}

	live := 0
	for _, st := range s.stages {
		live += st.nTasks
	}
	for k, c := range s.cache {
		live += c.parts
		if c.key != k || len(c.locs) != c.parts || len(c.bytes) != c.parts || c.gen == 0 || c.gen > s.nextCacheGen {
			fail("persisted dataset %s: index or sizes mismatch", k)
			continue
		}
		n := 0
		for p, e := range c.locs {
			if e == "" {
				continue
			}
			n++
			if x := s.executors[e]; x == nil || !x.alive {
				fail("persisted dataset %s: partition %d on executor %s, which is not alive", k, p, e)
			}
		}
		if n != c.n {
			fail("persisted dataset %s: %d partitions cached, counted %d", k, n, c.n)
		}
	}
	if len(s.cache) > MaxPersistedDatasets {
		fail("%d persisted datasets, over %d", len(s.cache), MaxPersistedDatasets)
	}
	if live != s.liveTasks {
		fail("live tasks counted %d, stages and persisted datasets hold %d", s.liveTasks, live)
	}
	for id, st := range s.stages {
		if st.id != id {
			fail("stage %d stored under id %d", st.id, id)
		}
		if id >= s.nextStage {
			fail("stage %d is not below the next stage id %d", id, s.nextStage)
		}
		if st.graph == nil || st.node < 0 || st.node >= len(st.graph.Nodes) {
			fail("stage %d: no graph node", id)
			continue
		}
		if len(st.pending) != (st.nTasks+63)/64 || len(st.fails) != st.nTasks || len(st.authorized) != st.nTasks {
			fail("stage %d: task arrays do not match %d tasks", id, st.nTasks)
			continue
		}
		for _, p := range st.parents {
			ps := s.stages[p]
			if ps == nil {
				fail("stage %d: parent %d does not exist", id, p)
				continue
			}
			if p >= id {
				fail("stage %d: parent %d has a higher id", id, p)
			}
			if !ps.isMap {
				fail("stage %d: parent %d is not a shuffle map stage", id, p)
			}
			for _, j := range st.jobs {
				if !ps.jobs.has(j) {
					fail("stage %d: job %d needs it but not its parent %d", id, j, p)
				}
			}
		}
		if len(st.jobs) == 0 {
			fail("stage %d: no job needs it", id)
		}
		for _, jid := range st.jobs {
			j := s.jobs[JobID(jid)]
			if j == nil {
				fail("stage %d: job %d does not exist", id, jid)
			} else if !j.stages.has(uint64(id)) {
				fail("stage %d: job %d does not list it", id, jid)
			}
		}
		npend := 0
		for i := 0; i < st.nTasks; i++ {
			if st.pending.has(i) {
				npend++
			}
		}
		if npend != st.npend {
			fail("stage %d: %d pending tasks counted as %d", id, npend, st.npend)
		}
		for i := st.nTasks; i < len(st.pending)*64; i++ {
			if st.pending.has(i) {
				fail("stage %d: pending bit %d beyond %d tasks", id, i, st.nTasks)
				break
			}
		}
		for i, t := range st.authorized {
			if t != 0 && st.failedTask[t] {
				fail("stage %d: partition %d authorised to failed task %d", id, i, t)
			}
		}
		for t := range st.committers {
			if !slices.Contains(st.authorized, t) {
				fail("stage %d: committer of task %d, which holds no authorisation", id, t)
			}
		}
		if st.coalesced != nil {
			parts := st.graph.Nodes[st.node].Partitions
			if st.nTasks != len(st.coalesced) || st.coalesced[0] != 0 || st.attempt < 0 {
				fail("stage %d: %d tasks coalesced from %v (attempt %d)", id, st.nTasks, st.coalesced, st.attempt)
			}
			for i := 1; i < len(st.coalesced); i++ {
				if st.coalesced[i] <= st.coalesced[i-1] || st.coalesced[i] >= parts {
					fail("stage %d: coalesced starts %v not ascending within %d partitions", id, st.coalesced, parts)
					break
				}
			}
		}
		if st.isMap {
			sh := s.shuffles[st.shuffle]
			if sh == nil || sh.stage != id {
				fail("map stage %d: shuffle %d does not point back", id, st.shuffle)
				continue
			}
			if sh.maps != st.nTasks {
				fail("map stage %d: %d tasks for %d maps", id, st.nTasks, sh.maps)
			}
			if s.running.has(uint64(id)) && !st.zombie {
				for i := 0; i < st.nTasks && i < len(sh.outputs); i++ {
					if st.pending.has(i) && sh.outputs[i].exec != "" {
						fail("map stage %d: partition %d both pending and finished", id, i)
					}
				}
			}
		} else {
			j := s.jobs[st.job]
			if j == nil {
				fail("result stage %d: job %d does not exist", id, st.job)
				continue
			}
			if j.final != id {
				fail("result stage %d: job %d's final stage is %d", id, st.job, j.final)
			}
			if st.nTasks != j.nTasks {
				fail("result stage %d: %d tasks, job has %d", id, st.nTasks, j.nTasks)
				continue
			}
			for i := 0; i < st.nTasks; i++ {
				if st.pending.has(i) && j.finished[i] {
					fail("result stage %d: partition %d both pending and finished", id, i)
				}
			}
		}
	}

	if len(s.shuffles) != len(s.byKey) {
		fail("%d shuffles, %d keys", len(s.shuffles), len(s.byKey))
	}
	for id, sh := range s.shuffles {
		if sh.id != id || s.byKey[sh.key] != id {
			fail("shuffle %d: index mismatch", id)
		}
		if id >= s.nextShuffle {
			fail("shuffle %d is not below the next shuffle id %d", id, s.nextShuffle)
		}
		if st := s.stages[sh.stage]; st == nil || !st.isMap || st.shuffle != id {
			fail("shuffle %d: map stage %d does not point back", id, sh.stage)
		}
		if len(sh.outputs) != sh.maps {
			fail("shuffle %d: %d outputs for %d maps", id, len(sh.outputs), sh.maps)
		}
		avail := 0
		for p, o := range sh.outputs {
			if o.exec == "" {
				continue
			}
			avail++
			e := s.executors[o.exec]
			if e == nil || !e.alive {
				fail("shuffle %d: output %d on executor %s, which is not alive", id, p, o.exec)
			}
			if len(o.sizes) != 0 && len(o.sizes) != sh.reducers {
				fail("shuffle %d: output %d has %d sizes for %d reducers", id, p, len(o.sizes), sh.reducers)
			}
		}
		if avail != sh.avail {
			fail("shuffle %d: %d outputs available, counted %d", id, avail, sh.avail)
		}
	}

	if len(s.jobOrder) != len(s.jobs) {
		fail("%d jobs listed, %d stored", len(s.jobOrder), len(s.jobs))
	}
	for i, id := range s.jobOrder {
		if i > 0 && s.jobOrder[i-1] >= id {
			fail("job order not ascending at %d", id)
		}
		j := s.jobs[id]
		if j == nil {
			fail("job %d listed but not stored", id)
			continue
		}
		if id >= s.nextJob {
			fail("job %d is not below the next job id %d", id, s.nextJob)
		}
		if j.status < JobRunning || j.status > JobCancelled {
			fail("job %d: bad status %d", id, j.status)
		}
		if len(j.finished) != j.nTasks || (j.results != nil && len(j.results) != j.nTasks) {
			fail("job %d: result arrays do not match %d tasks", id, j.nTasks)
			continue
		}
		n := 0
		var bytes int64
		for i, f := range j.finished {
			if f {
				n++
				if j.results != nil {
					bytes += j.results[i].Size
				}
			}
		}
		if n != j.numFinished {
			fail("job %d: %d finished, counted %d", id, n, j.numFinished)
		}
		if j.results != nil && (bytes != j.resultBytes || n != j.resultCount) {
			fail("job %d: results add up to %d bytes in %d, counted %d in %d", id, bytes, n, j.resultBytes, j.resultCount)
		}
		if j.status == JobSucceeded && n != j.nTasks {
			fail("job %d succeeded with %d of %d results", id, n, j.nTasks)
		}
		if j.status == JobRunning {
			if j.released {
				fail("running job %d is released", id)
			}
			if st := s.stages[j.final]; st == nil || (!j.mapStage && st.job != id) || (j.mapStage && !st.isMap) {
				fail("running job %d: final stage %d missing", id, j.final)
			}
		}
		if (j.status == JobFailed || j.status == JobCancelled) && (len(j.stages) != 0 || j.results != nil) {
			fail("job %d has %s but holds stages or results", id, j.status)
		}
		if j.released && len(j.stages) != 0 {
			fail("released job %d holds stages", id)
		}
		for _, sid := range j.stages {
			st := s.stages[StageID(sid)]
			if st == nil || !st.jobs.has(uint64(id)) {
				fail("job %d: stage %d does not list it", id, sid)
			}
		}
		if j.key != "" && s.idem[j.key] != id {
			fail("job %d: key %q maps to job %d", id, j.key, s.idem[j.key])
		}
	}
	for k, id := range s.idem {
		if j := s.jobs[id]; j == nil || j.key != k {
			fail("idempotency key %q: job %d does not carry it", k, id)
		}
	}

	if len(s.execOrder) != len(s.executors) {
		fail("%d executors listed, %d stored", len(s.execOrder), len(s.executors))
	}
	for i, id := range s.execOrder {
		if i > 0 && s.execOrder[i-1] >= id {
			fail("executor order not ascending at %s", id)
		}
		if s.executors[id] == nil {
			fail("executor %s listed but not stored", id)
		}
	}
	for id, fe := range s.failedEpoch {
		if fe > s.epoch {
			fail("executor %s failed at epoch %d, after the current epoch %d", id, fe, s.epoch)
		}
	}
	if s.resubmit && len(s.failed) == 0 {
		// Allowed: failed stages may have been cleaned up by job ends
		// before the resubmission arrives (it is then a no-op).
	}
	return errors.Join(errs...)
}
