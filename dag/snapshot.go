package dag

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/baton-sched/baton/plan"
)

// Snapshot format. A snapshot is the magic, a format version, then every
// table of the state in a fixed order, each in ascending key order, so
// equal states encode to equal bytes. Integers are varints; strings and
// byte strings are length-prefixed; graphs are their JSON encoding, stored
// once and referenced by index.
const (
	snapshotMagic   = "BATONDAG"
	snapshotVersion = 9
)

// ErrCorruptSnapshot is returned by Unmarshal for bytes that are not a
// snapshot of this version.
var ErrCorruptSnapshot = errors.New("dag: corrupt snapshot")

// MarshalBinary encodes the whole state. Two states that applied the same
// commands encode to the same bytes.
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(nil)
}

// AppendBinary appends the state's encoding to buf.
func (s *State) AppendBinary(buf []byte) ([]byte, error) {
	e := &encoder{buf: buf}
	e.buf = append(e.buf, snapshotMagic...)
	e.uint(snapshotVersion)

	c := s.cfg
	e.uint(uint64(c.MaxTaskFailures))
	e.uint(uint64(c.MaxConsecutiveStageAttempts))
	e.int(c.MaxResultSize)
	e.uint(uint64(c.RetainedJobs))
	e.uint(uint64(c.MaxGraphNodes))
	e.uint(uint64(c.MaxJobTasks))
	e.uint(uint64(c.MaxLiveTasks))
	e.uint(uint64(c.MaxRunningJobs))
	e.int(int64(c.MaxFailuresPerExecutor))
	e.int(c.ExcludeTimeout)
	e.uint(s.epoch)
	e.int(s.now)
	e.uint(uint64(s.nextJob))
	e.uint(uint64(s.nextStage))
	e.uint(uint64(s.nextShuffle))
	e.bool(s.resubmit)

	stageIDs := make([]StageID, 0, len(s.stages))
	for id := range s.stages {
		stageIDs = append(stageIDs, id)
	}
	slices.Sort(stageIDs)

	// Graphs, in order of first use by stages then jobs.
	graphIdx := map[*plan.Graph]uint64{}
	var graphs []*plan.Graph
	use := func(g *plan.Graph) {
		if _, ok := graphIdx[g]; !ok {
			graphIdx[g] = uint64(len(graphs))
			graphs = append(graphs, g)
		}
	}
	for _, id := range stageIDs {
		use(s.stages[id].graph)
	}
	for _, id := range s.jobOrder {
		use(s.jobs[id].graph)
	}
	e.uint(uint64(len(graphs)))
	for _, g := range graphs {
		b, err := json.Marshal(g)
		if err != nil {
			return nil, fmt.Errorf("dag: encode graph: %w", err)
		}
		e.bytes(b)
	}

	e.uint(uint64(len(s.execOrder)))
	for _, id := range s.execOrder {
		x := s.executors[id]
		e.str(string(x.id))
		e.str(x.addr)
		e.uint(uint64(x.cores))
		e.uint(uint64(len(x.funcs)))
		for _, f := range x.funcs {
			e.str(f)
		}
		e.bool(x.alive)
		e.int(x.registered)
		e.int(x.lost)
		e.str(x.lostReason)
	}

	failed := make([]ExecutorID, 0, len(s.failedEpoch))
	for id := range s.failedEpoch {
		failed = append(failed, id)
	}
	slices.Sort(failed)
	e.uint(uint64(len(failed)))
	for _, id := range failed {
		e.str(string(id))
		e.uint(s.failedEpoch[id])
	}
	e.exclusions(s)

	shuffleIDs := make([]ShuffleID, 0, len(s.shuffles))
	for id := range s.shuffles {
		shuffleIDs = append(shuffleIDs, id)
	}
	slices.Sort(shuffleIDs)
	e.uint(uint64(len(shuffleIDs)))
	for _, id := range shuffleIDs {
		sh := s.shuffles[id]
		e.uint(uint64(sh.id))
		e.str(sh.key)
		e.uint(uint64(sh.maps))
		e.uint(uint64(sh.reducers))
		e.uint(uint64(sh.stage))
		for _, o := range sh.outputs {
			e.str(string(o.exec))
			if o.exec != "" {
				e.uint(uint64(o.task))
				e.uint(o.bytes)
				e.bytes(o.sizes)
			}
		}
	}

	e.uint(uint64(len(stageIDs)))
	for _, id := range stageIDs {
		st := s.stages[id]
		e.uint(uint64(st.id))
		e.uint(graphIdx[st.graph])
		e.uint(uint64(st.node))
		e.bool(st.isMap)
		e.uint(uint64(st.shuffle))
		e.uint(uint64(st.job))
		e.uint(uint64(st.nTasks))
		e.uint(uint64(len(st.parents)))
		for _, p := range st.parents {
			e.uint(uint64(p))
		}
		e.ids(st.jobs)
		e.uint(uint64(st.first))
		e.int(int64(st.attempt))
		e.uint(st.epoch)
		e.bool(st.zombie)
		for _, w := range st.pending {
			e.uint(w)
		}
		e.uint(uint64(st.npend))
		var nf uint64
		for _, f := range st.fails {
			if f != 0 {
				nf++
			}
		}
		e.uint(nf)
		for i, f := range st.fails {
			if f != 0 {
				e.uint(uint64(i))
				e.uint(uint64(f))
			}
		}
		e.ids(st.failedAttempts)
		var na uint64
		for _, t := range st.authorized {
			if t != 0 {
				na++
			}
		}
		e.uint(na)
		for i, t := range st.authorized {
			if t != 0 {
				e.uint(uint64(i))
				e.uint(uint64(t))
				e.str(string(st.committers[t]))
			}
		}
		ft := make([]TaskID, 0, len(st.failedTask))
		for t := range st.failedTask {
			ft = append(ft, t)
		}
		slices.Sort(ft)
		e.uint(uint64(len(ft)))
		for _, t := range ft {
			e.uint(uint64(t))
		}
		e.int(st.submitted)
		e.int(st.completed)
		e.stageExclusions(st)
		e.durations(&st.durs)
		e.lostOn(st)
		e.accMerged(st)
		e.int(st.adaptive)
		e.uint(uint64(len(st.coalesced)))
		for _, r := range st.coalesced {
			e.uint(uint64(r))
		}
	}

	e.uint(uint64(len(s.jobOrder)))
	for _, id := range s.jobOrder {
		j := s.jobs[id]
		e.uint(uint64(j.id))
		e.str(j.name)
		e.str(j.key)
		e.str(j.pool)
		e.uint(graphIdx[j.graph])
		e.bool(j.parts != nil)
		if j.parts != nil {
			e.uint(uint64(len(j.parts)))
			for _, p := range j.parts {
				e.uint(uint64(p))
			}
		}
		e.uint(uint64(j.nTasks))
		e.uint(uint64(j.final))
		e.ids(j.stages)
		e.uint(uint64(j.status))
		e.str(j.msg)
		for _, f := range j.finished {
			e.bool(f)
		}
		e.uint(uint64(j.numFinished))
		e.bool(j.results != nil)
		if j.results != nil {
			for i, r := range j.results {
				if !j.finished[i] {
					continue
				}
				e.int(r.Size)
				e.bool(r.Indirect)
				e.str(string(r.Executor))
				e.uint(uint64(r.Task))
				e.bytes(r.Data)
			}
		}
		e.int(j.resultBytes)
		e.uint(uint64(j.resultCount))
		e.bool(j.released)
		e.int(j.submitted)
		e.int(j.ended)
		e.uint(uint64(j.maxTaskFailures))
		e.int(j.maxResultSize)
		e.int(j.successes)
		e.int(j.failures)
		e.accTable(&j.accs)
		e.accTable(&j.failedAccs)
		e.str(j.group)
		e.bool(j.mapStage)
		e.int(j.adaptive)
	}

	keys := make([]string, 0, len(s.idem))
	for k := range s.idem {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.uint(uint64(s.idem[k]))
	}
	e.ids(s.waiting)
	e.ids(s.running)
	e.ids(s.failed)
	e.uint(s.nextCacheGen)
	e.cache(s)
	return e.buf, nil
}

// Unmarshal decodes a snapshot made by MarshalBinary. It checks the
// result's invariants: a snapshot that decodes into an inconsistent state
// is reported as corrupt, never used.
func Unmarshal(data []byte) (*State, error) {
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) {
		return nil, fmt.Errorf("%w: bad magic", ErrCorruptSnapshot)
	}
	d := &decoder{buf: data[len(snapshotMagic):]}
	d.version = d.uint()
	if d.version < 3 || d.version > snapshotVersion {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("%w: version %d, this build reads versions 3 to %d", ErrCorruptSnapshot, d.version, snapshotVersion)
	}
	cfg := Config{
		MaxTaskFailures:             d.int32(),
		MaxConsecutiveStageAttempts: d.int32(),
		MaxResultSize:               d.int(),
		RetainedJobs:                d.int32(),
	}
	if d.version >= 5 { // earlier versions had no allocation limits: the defaults apply
		cfg.MaxGraphNodes = d.int32()
		cfg.MaxJobTasks = d.int32()
		cfg.MaxLiveTasks = d.int32()
		cfg.MaxRunningJobs = d.int32()
	}
	if d.version >= 6 { // earlier versions excluded no executor from the log: the defaults apply
		cfg.MaxFailuresPerExecutor = int(d.int())
		cfg.ExcludeTimeout = d.int()
	}
	s := New(cfg)
	s.epoch = d.uint()
	s.now = d.int()
	s.nextJob = JobID(d.uint())
	s.nextStage = StageID(d.uint())
	s.nextShuffle = ShuffleID(d.uint())
	s.resubmit = d.bool()

	graphs := make([]*plan.Graph, d.count())
	for i := range graphs {
		g := &plan.Graph{}
		if b := d.bytes(); d.err == nil {
			if err := json.Unmarshal(b, g); err != nil {
				return nil, fmt.Errorf("%w: graph %d: %v", ErrCorruptSnapshot, i, err)
			}
			if err := g.Validate(); err != nil {
				return nil, fmt.Errorf("%w: graph %d: %v", ErrCorruptSnapshot, i, err)
			}
		}
		graphs[i] = g
	}
	graph := func() *plan.Graph {
		i := d.uint()
		if i >= uint64(len(graphs)) {
			d.fail("graph index %d of %d", i, len(graphs))
			return &plan.Graph{Nodes: []plan.Node{{}}}
		}
		return graphs[i]
	}

	for n := d.count(); n > 0 && d.err == nil; n-- {
		x := &executor{id: ExecutorID(d.str()), addr: d.str(), cores: d.int32()}
		for m := d.count(); m > 0 && d.err == nil; m-- {
			x.funcs = append(x.funcs, d.str())
		}
		x.alive = d.bool()
		x.registered = d.int()
		x.lost = d.int()
		x.lostReason = d.str()
		s.executors[x.id] = x
		s.execOrder = append(s.execOrder, x.id)
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		id := ExecutorID(d.str())
		s.failedEpoch[id] = d.uint()
	}
	if d.version >= 6 {
		d.exclusions(s)
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		sh := &shuffle{id: ShuffleID(d.uint()), key: d.str(), maps: d.int32(), reducers: d.int32(), stage: StageID(d.uint())}
		sh.outputs = make([]mapOutput, d.bounded(sh.maps))
		for p := range sh.outputs {
			o := &sh.outputs[p]
			o.exec = ExecutorID(d.str())
			if o.exec != "" {
				o.task = TaskID(d.uint())
				o.bytes = d.uint()
				o.sizes = d.bytes()
				sh.avail++
			}
		}
		s.shuffles[sh.id] = sh
		s.byKey[sh.key] = sh.id
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		st := &stage{id: StageID(d.uint())}
		st.graph = graph()
		st.node = d.int32()
		st.isMap = d.bool()
		st.shuffle = ShuffleID(d.uint())
		st.job = JobID(d.uint())
		st.nTasks = d.bounded(d.int32())
		for m := d.count(); m > 0 && d.err == nil; m-- {
			st.parents = append(st.parents, StageID(d.uint()))
		}
		st.jobs = d.ids()
		st.first = JobID(d.uint())
		st.attempt = int(d.int())
		st.epoch = d.uint()
		st.zombie = d.bool()
		st.initTasks()
		for w := range st.pending {
			st.pending[w] = d.uint()
		}
		st.npend = d.int32()
		for m := d.count(); m > 0 && d.err == nil; m-- {
			i, f := d.index(st.nTasks), d.uint()
			st.fails[i] = uint16(min(f, 0xffff))
		}
		st.failedAttempts = d.ids()
		for m := d.count(); m > 0 && d.err == nil; m-- {
			i := d.index(st.nTasks)
			t := TaskID(d.uint())
			st.authorized[i] = t
			if d.version >= 4 { // version 3 did not record committers
				if ex := ExecutorID(d.str()); ex != "" {
					if st.committers == nil {
						st.committers = map[TaskID]ExecutorID{}
					}
					st.committers[t] = ex
				}
			}
		}
		if m := d.count(); m > 0 {
			st.failedTask = make(map[TaskID]bool, m)
			for ; m > 0 && d.err == nil; m-- {
				st.failedTask[TaskID(d.uint())] = true
			}
		}
		st.submitted = d.int()
		st.completed = d.int()
		if d.version >= 6 {
			d.stageExclusions(st)
			d.durations(&st.durs)
			d.lostOn(st)
		}
		if d.version >= 7 { // earlier versions had no accumulators
			d.accMerged(st)
		}
		if d.version >= 9 { // earlier versions had no adaptive coalescing
			st.adaptive = d.int()
			if m := d.count(); m > 0 {
				st.coalesced = make([]int, 0, m)
				for ; m > 0 && d.err == nil; m-- {
					st.coalesced = append(st.coalesced, d.int32())
				}
			}
		}
		if st.node >= len(st.graph.Nodes) {
			d.fail("stage %d: node %d of %d", st.id, st.node, len(st.graph.Nodes))
		}
		s.stages[st.id] = st
		s.liveTasks += st.nTasks
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		j := &job{id: JobID(d.uint()), name: d.str(), key: d.str(), pool: d.str()}
		j.graph = graph()
		if d.bool() {
			j.parts = []int{}
			for m := d.count(); m > 0 && d.err == nil; m-- {
				j.parts = append(j.parts, d.int32())
			}
		}
		j.nTasks = d.bounded(d.int32())
		j.final = StageID(d.uint())
		j.stages = d.ids()
		j.status = JobStatus(d.uint())
		j.msg = d.str()
		j.finished = make([]bool, j.nTasks)
		for i := range j.finished {
			j.finished[i] = d.bool()
		}
		j.numFinished = d.int32()
		if d.bool() {
			j.results = make([]ResultRef, j.nTasks)
			for i := range j.results {
				if !j.finished[i] {
					continue
				}
				r := &j.results[i]
				r.Job = j.id
				r.Partition = j.partition(i)
				r.Size = d.int()
				r.Indirect = d.bool()
				r.Executor = ExecutorID(d.str())
				r.Task = TaskID(d.uint())
				r.Data = d.bytes()
			}
		}
		j.resultBytes = d.int()
		j.resultCount = d.int32()
		j.released = d.bool()
		j.submitted = d.int()
		j.ended = d.int()
		j.maxTaskFailures = d.int32()
		j.maxResultSize = d.int()
		j.successes = d.int()
		j.failures = d.int()
		if d.version >= 7 {
			d.accTable(&j.accs)
			d.accTable(&j.failedAccs)
		}
		if d.version >= 8 { // version 7 had no job groups
			j.group = d.str()
		}
		if d.version >= 9 { // earlier versions had no map-stage or adaptive jobs
			j.mapStage = d.bool()
			j.adaptive = d.int()
		}
		s.jobs[j.id] = j
		s.jobOrder = append(s.jobOrder, j.id)
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		k := d.str()
		s.idem[k] = JobID(d.uint())
	}
	s.waiting = d.ids()
	s.running = d.ids()
	s.failed = d.ids()
	if d.version >= 9 { // earlier versions persisted nothing
		s.nextCacheGen = d.uint()
		d.cache(s)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorruptSnapshot, len(d.buf))
	}
	if err := s.CheckInvariants(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	return s, nil
}

type encoder struct{ buf []byte }

func (e *encoder) uint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) int(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}
func (e *encoder) str(s string) { e.uint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) bytes(b []byte) {
	if b == nil {
		e.uint(0)
		return
	}
	e.uint(uint64(len(b)) + 1)
	e.buf = append(e.buf, b...)
}
func (e *encoder) ids(s idSet) {
	e.uint(uint64(len(s)))
	for _, id := range s {
		e.uint(id)
	}
}

// decoder reads what encoder wrote. The first error sticks; reads after
// it return zero values, so callers check d.err once at the end.
type decoder struct {
	buf     []byte
	err     error
	version uint64 // the snapshot's format version
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// int32 reads a non-negative int that fits in 31 bits.
func (d *decoder) int32() int {
	v := d.uint()
	if v > 1<<31-1 {
		d.fail("value %d out of range", v)
		return 0
	}
	return int(v)
}

// count reads a collection length, bounded by the bytes left (every
// element takes at least one byte), so corrupt input cannot make a huge
// allocation.
func (d *decoder) count() int { return d.bounded(d.int32()) }

func (d *decoder) bounded(n int) int {
	if n > len(d.buf)+64 {
		d.fail("length %d exceeds the %d bytes left", n, len(d.buf))
		return 0
	}
	return n
}

// index reads an index below n.
func (d *decoder) index(n int) int {
	i := d.int32()
	if i >= n {
		d.fail("index %d out of range %d", i, n)
		return 0
	}
	return i
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.buf) == 0 {
		d.fail("truncated")
		return false
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	if b > 1 {
		d.fail("bad bool %d", b)
	}
	return b == 1
}

func (d *decoder) str() string {
	n := d.int32()
	if d.err != nil {
		return ""
	}
	if n > len(d.buf) {
		d.fail("truncated string")
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

func (d *decoder) bytes() []byte {
	n := d.int32()
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	if n > len(d.buf) {
		d.fail("truncated bytes")
		return nil
	}
	b := append([]byte{}, d.buf[:n]...)
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) ids() idSet {
	var s idSet
	for n := d.count(); n > 0 && d.err == nil; n-- {
		s = append(s, d.uint())
	}
	return s
}
