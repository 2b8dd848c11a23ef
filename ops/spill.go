package ops

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
)

// Spilling (Spark's ExternalSorter and ExternalAppendOnlyMap): a task
// with a memory budget (Runner.TaskMemory) keeps at most about that many
// bytes of records in memory in each operator that gathers a partition —
// a reduce-side aggregation, group, join, distinct or sort — and writes
// what is over to sorted runs in files under the executor's spill
// directory, merged when the partition is emitted. Runs are written in
// blocks of records, each with its CRC-32C: a run that does not read back
// fails the task (it is computed again) rather than give a wrong answer.
// A task's runs are removed when the task ends, however it ends.

// entryOverhead is what a record costs in memory beyond its bytes: the
// slice headers and the allocator's rounding.
const entryOverhead = 64

// runBlock is the size of a run's blocks: what a reader holds per run
// while merging.
const runBlock = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// TaskStats are what a task measured of itself, for its report.
type TaskStats struct {
	// SpilledBytes counts the bytes the task wrote to spill runs.
	SpilledBytes atomic.Int64
}

// spill is one task's spill directory: created on first use, removed
// with everything in it by close.
type spill struct {
	root  string // the executor's spill directory ("": spilling is off)
	dir   string
	runs  int
	stats *TaskStats
}

var spillSeq atomic.Uint64

func (sp *spill) create() (*os.File, error) {
	if sp.root == "" {
		return nil, errors.New("ops: no spill directory")
	}
	if sp.dir == "" {
		dir, err := os.MkdirTemp(sp.root, fmt.Sprintf("task-%d-", spillSeq.Add(1)))
		if err != nil {
			return nil, fmt.Errorf("ops: spill: %w", err)
		}
		sp.dir = dir
	}
	sp.runs++
	f, err := os.Create(filepath.Join(sp.dir, fmt.Sprintf("run-%d", sp.runs)))
	if err != nil {
		return nil, fmt.Errorf("ops: spill: %w", err)
	}
	return f, nil
}

// close removes the task's runs.
func (sp *spill) close() {
	if sp != nil && sp.dir != "" {
		os.RemoveAll(sp.dir)
		sp.dir = ""
	}
}

// writeRun writes records, already in order, to a new run file and
// returns its path.
func (sp *spill) writeRun(recs []Record) (string, error) {
	f, err := sp.create()
	if err != nil {
		return "", err
	}
	path := f.Name()
	w := bufio.NewWriterSize(f, runBlock+1024)
	var block []byte
	var written int64
	flush := func() error {
		if len(block) == 0 {
			return nil
		}
		var hdr [binary.MaxVarintLen64]byte
		n := binary.PutUvarint(hdr[:], uint64(len(block)))
		w.Write(hdr[:n])
		w.Write(block)
		var sum [4]byte
		binary.BigEndian.PutUint32(sum[:], crc32.Checksum(block, castagnoli))
		_, err := w.Write(sum[:])
		written += int64(n + len(block) + 4)
		block = block[:0]
		return err
	}
	for _, r := range recs {
		block = AppendRecord(block, r)
		if len(block) >= runBlock {
			if err := flush(); err != nil {
				break
			}
		}
	}
	err = flush()
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("ops: spill: %w", err)
	}
	if sp.stats != nil {
		sp.stats.SpilledBytes.Add(written)
	}
	return path, nil
}

// runReader reads a run's records back, a block at a time.
type runReader struct {
	f     *os.File
	r     *bufio.Reader
	block []byte
	rest  []byte
	cur   Record
}

func openRun(path string) (*runReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ops: spill: %w", err)
	}
	return &runReader{f: f, r: bufio.NewReaderSize(f, runBlock)}, nil
}

var errCorruptRun = errors.New("ops: spill: a run does not read back (corrupt)")

// next moves to the run's next record; false at its end.
func (rr *runReader) next() (bool, error) {
	for len(rr.rest) == 0 {
		n, err := binary.ReadUvarint(rr.r)
		if err == io.EOF {
			return false, nil
		}
		if err != nil || n > 16<<20 {
			return false, errCorruptRun
		}
		if cap(rr.block) < int(n)+4 {
			rr.block = make([]byte, n+4)
		}
		rr.block = rr.block[:n+4]
		if _, err := io.ReadFull(rr.r, rr.block); err != nil {
			return false, errCorruptRun
		}
		data := rr.block[:n]
		if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(rr.block[n:]) {
			return false, errCorruptRun
		}
		rr.rest = data
	}
	var rec Record
	var got bool
	err := DecodeRecords(rr.rest, func(r Record) error {
		rec, got = r, true
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) || !got {
		return false, errCorruptRun
	}
	// Advance past the record just decoded.
	rr.rest = rr.rest[recordLen(rec):]
	rr.cur = rec
	return true, nil
}

func (rr *runReader) close() { rr.f.Close() }

var errStop = errors.New("stop")

// recordLen is the encoded length of a record.
func recordLen(r Record) int {
	h := uint64(len(r.Key)) << 1
	return uvarintLen(h) + len(r.Key) + uvarintLen(uint64(len(r.Value))) + len(r.Value)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// sorter gathers records and gives them back ordered by key (descending
// when desc), records of equal keys in the order they came: in memory up
// to budget bytes, then in sorted runs on disk, merged (an external merge
// sort). A budget of 0 or less never spills.
type sorter struct {
	sp     *spill
	budget int64
	desc   bool
	recs   []Record
	used   int64
	runs   []string
}

func (s *sorter) less(a, b []byte) bool {
	c := bytes.Compare(a, b)
	if s.desc {
		return c > 0
	}
	return c < 0
}

// add copies r into the sorter.
func (s *sorter) add(r Record) error {
	buf := make([]byte, len(r.Key)+len(r.Value))
	copy(buf, r.Key)
	copy(buf[len(r.Key):], r.Value)
	s.recs = append(s.recs, Record{Key: buf[:len(r.Key):len(r.Key)], Value: buf[len(r.Key):], HasKey: r.HasKey})
	s.used += int64(len(buf)) + entryOverhead
	if s.budget > 0 && s.used > s.budget && s.sp != nil && s.sp.root != "" {
		return s.spillRun()
	}
	return nil
}

func (s *sorter) sortMem() {
	sort.SliceStable(s.recs, func(a, b int) bool { return s.less(s.recs[a].Key, s.recs[b].Key) })
}

func (s *sorter) spillRun() error {
	s.sortMem()
	path, err := s.sp.writeRun(s.recs)
	if err != nil {
		return err
	}
	s.runs = append(s.runs, path)
	clear(s.recs)
	s.recs, s.used = s.recs[:0], 0
	return nil
}

// each calls fn with every record in order: the runs merged with what is
// in memory (earlier runs first among equal keys: the order records came).
func (s *sorter) each(fn func(Record) error) error {
	s.sortMem()
	if len(s.runs) == 0 {
		for _, r := range s.recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	m := &merger{less: s.less}
	defer m.close()
	for i, path := range s.runs {
		rr, err := openRun(path)
		if err != nil {
			return err
		}
		m.readers = append(m.readers, rr)
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			m.h = append(m.h, mergeItem{src: i})
		}
	}
	mem := len(s.runs) // the in-memory records are the last source
	memAt := 0
	if len(s.recs) > 0 {
		m.h = append(m.h, mergeItem{src: mem})
	}
	m.cur = func(src int) Record {
		if src == mem {
			return s.recs[memAt]
		}
		return m.readers[src].cur
	}
	heap.Init(m)
	for m.Len() > 0 {
		top := m.h[0]
		if err := fn(m.cur(top.src)); err != nil {
			return err
		}
		var more bool
		if top.src == mem {
			memAt++
			more = memAt < len(s.recs)
		} else {
			var err error
			if more, err = m.readers[top.src].next(); err != nil {
				return err
			}
		}
		if more {
			heap.Fix(m, 0)
		} else {
			heap.Pop(m)
		}
	}
	return nil
}

type mergeItem struct{ src int }

// merger is a heap of sources by their current record's key, ties by
// source (earlier first).
type merger struct {
	h       []mergeItem
	readers []*runReader
	less    func(a, b []byte) bool
	cur     func(src int) Record
}

func (m *merger) Len() int { return len(m.h) }
func (m *merger) Less(i, j int) bool {
	a, b := m.cur(m.h[i].src), m.cur(m.h[j].src)
	if m.less(a.Key, b.Key) {
		return true
	}
	if m.less(b.Key, a.Key) {
		return false
	}
	return m.h[i].src < m.h[j].src
}
func (m *merger) Swap(i, j int) { m.h[i], m.h[j] = m.h[j], m.h[i] }
func (m *merger) Push(x any)    { m.h = append(m.h, x.(mergeItem)) }
func (m *merger) Pop() any {
	x := m.h[len(m.h)-1]
	m.h = m.h[:len(m.h)-1]
	return x
}

func (m *merger) close() {
	for _, r := range m.readers {
		r.close()
	}
}
