package blockstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A map output is one or more segments: a map task with a memory budget
// writes its records a bounded batch at a time, each batch a segment of
// every reducer's block. Keys:
//
//	's' shuffle(8) map(4) seq(4) reduce(4)   segment seq of reducer reduce's block
//	's' shuffle(8) map(4) ffffffff 00000000  the header: the segment count
//
// A reducer's block is its segments in order. An output is there when its
// header is (an empty block is an empty segment, so empty and missing
// differ). Segments stream into one sstable that is ingested with the
// header at the end, so an output appears whole or not at all, and a
// second attempt of the same map, ingested later, replaces every key the
// first wrote (every segment has every reducer, empty or not).
// Outputs written before segments (17-byte keys 's' shuffle map reduce)
// are still read.

const headerSeq = ^uint32(0)

func segKey(shuffle uint64, mapIdx int, seq uint32, reduce int) []byte {
	k := make([]byte, 21)
	k[0] = 's'
	binary.BigEndian.PutUint64(k[1:], shuffle)
	binary.BigEndian.PutUint32(k[9:], uint32(mapIdx))
	binary.BigEndian.PutUint32(k[13:], seq)
	binary.BigEndian.PutUint32(k[17:], uint32(reduce))
	return k
}

func headerKey(shuffle uint64, mapIdx int) []byte { return segKey(shuffle, mapIdx, headerSeq, 0) }

func headerValue(segments uint32) []byte {
	return seal(binary.AppendUvarint(nil, uint64(segments)))
}

// segments returns how many segments a map output has.
func (s *Store) segments(shuffle uint64, mapIdx int) (uint32, error) {
	v, err := s.get(headerKey(shuffle, mapIdx))
	if err != nil {
		return 0, err
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) || n == 0 || n >= uint64(headerSeq) {
		return 0, fmt.Errorf("%w: map output header of shuffle %d map %d", ErrCorrupt, shuffle, mapIdx)
	}
	return uint32(n), nil
}

// ShuffleSegments calls fn with each segment of reducer reduce's block
// from map mapIdx, verified, in order; last is set for the last one.
func (s *Store) ShuffleSegments(shuffle uint64, mapIdx, reduce int, fn func(data []byte, last bool) error) error {
	n, err := s.segments(shuffle, mapIdx)
	if errors.Is(err, ErrNotFound) {
		// An output written before segments.
		data, err := s.get(shuffleKey(shuffle, mapIdx, reduce))
		if err != nil {
			return err
		}
		return fn(data, true)
	}
	if err != nil {
		return err
	}
	for seq := uint32(0); seq < n; seq++ {
		data, err := s.get(segKey(shuffle, mapIdx, seq, reduce))
		if err != nil {
			return err
		}
		if err := fn(data, seq == n-1); err != nil {
			return err
		}
	}
	return nil
}

// ShuffleBlock returns the whole block of reducer reduce from map mapIdx,
// verified (its segments joined).
func (s *Store) ShuffleBlock(shuffle uint64, mapIdx, reduce int) ([]byte, error) {
	var out []byte
	err := s.ShuffleSegments(shuffle, mapIdx, reduce, func(data []byte, last bool) error {
		if last && out == nil {
			out = data
			return nil
		}
		out = append(out, data...)
		return nil
	})
	return out, err
}

// MapWriter writes a map output a segment at a time, into an sstable
// ingested by Finish: at most one segment is in memory.
type MapWriter struct {
	s        *Store
	shuffle  uint64
	mapIdx   int
	reducers int
	seq      uint32
	path     string
	w        *sstable.Writer
	done     bool
}

// NewMapWriter starts a map output of reducers reducers.
func (s *Store) NewMapWriter(shuffle uint64, mapIdx, reducers int) (*MapWriter, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	path := filepath.Join(s.dir, fmt.Sprintf("ingest-%d-%d-%d.sst", shuffle, mapIdx, s.tmp.Add(1)))
	f, err := s.opts.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
		TableFormat: s.db.FormatMajorVersion().MaxTableFormat(),
		Compression: sstable.NoCompression,
	})
	return &MapWriter{s: s, shuffle: shuffle, mapIdx: mapIdx, reducers: reducers, path: path, w: w}, nil
}

// Segment writes one segment: a block (possibly empty) per reducer.
func (w *MapWriter) Segment(blocks [][]byte) error {
	if len(blocks) != w.reducers {
		return fmt.Errorf("blockstore: a segment of %d blocks for %d reducers", len(blocks), w.reducers)
	}
	if w.seq >= headerSeq-1 {
		return fmt.Errorf("blockstore: too many segments")
	}
	size := 0
	for _, b := range blocks {
		size += len(b) + 4 + 21
	}
	if err := w.s.space.room(size); err != nil {
		return err
	}
	for r, data := range blocks {
		if err := w.w.Set(segKey(w.shuffle, w.mapIdx, w.seq, r), seal(data)); err != nil {
			return fmt.Errorf("blockstore: %w", err)
		}
	}
	w.seq++
	return nil
}

// Finish writes the last segment and the header, and ingests the output.
func (w *MapWriter) Finish(blocks [][]byte) error {
	if err := w.Segment(blocks); err != nil {
		w.Abort()
		return err
	}
	if err := w.w.Set(headerKey(w.shuffle, w.mapIdx), headerValue(w.seq)); err != nil {
		w.Abort()
		return fmt.Errorf("blockstore: %w", err)
	}
	w.done = true
	if err := w.w.Close(); err != nil {
		w.s.opts.FS.Remove(w.path)
		return fmt.Errorf("blockstore: %w", err)
	}
	err := w.s.commit("ingest map output", func() error { return w.s.db.Ingest(context.Background(), []string{w.path}) })
	if err != nil {
		w.s.opts.FS.Remove(w.path)
		return fmt.Errorf("blockstore: ingest map output: %w", err)
	}
	return nil
}

// Abort drops an unfinished output.
func (w *MapWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.w.Close()
	w.s.opts.FS.Remove(w.path)
}

// putSegment writes a map output of one segment in a batch, synced.
func (s *Store) putSegment(b *pebble.Batch, shuffle uint64, mapIdx int, blocks [][]byte) error {
	for r, data := range blocks {
		if err := b.Set(segKey(shuffle, mapIdx, 0, r), seal(data), nil); err != nil {
			return fmt.Errorf("blockstore: %w", err)
		}
	}
	return b.Set(headerKey(shuffle, mapIdx), headerValue(1), nil)
}
