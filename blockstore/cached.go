package blockstore

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Partitions of persisted datasets (Spark's RDD blocks, rdd_<id>_<split>)
// are kept under 'c', the dataset's key, a zero byte, the dataset's
// generation and the partition, sealed like every block. A generation is
// the scheduler's: a dataset unpersisted and persisted again is a new one,
// so blocks of the old never pass for the new. They are written without a
// sync: a kept partition lost in a crash is computed again.

// MaxCachedKey bounds a persisted dataset's key (plan.MaxPersistKey).
const MaxCachedKey = 64

// CachedSet names the kept partitions of one generation of a persisted
// dataset.
type CachedSet struct {
	Key string
	Gen uint64
}

func cachedPrefix(key string) []byte {
	k := make([]byte, 0, 2+len(key)+12)
	k = append(k, 'c')
	k = append(k, key...)
	return append(k, 0)
}

func cachedGenPrefix(key string, gen uint64) []byte {
	return binary.BigEndian.AppendUint64(cachedPrefix(key), gen)
}

// cachedEnd is just past every generation of a dataset's partitions.
func cachedEnd(key string) []byte {
	k := cachedPrefix(key)
	k[len(k)-1] = 1
	return k
}

func cachedKey(key string, gen uint64, part int) []byte {
	return binary.BigEndian.AppendUint32(cachedGenPrefix(key, gen), uint32(part))
}

func checkCachedKey(key string) error {
	if key == "" || len(key) > MaxCachedKey || bytes.IndexByte([]byte(key), 0) >= 0 {
		return fmt.Errorf("blockstore: bad persisted dataset key %q", key)
	}
	return nil
}

// PutCached keeps a partition of a persisted dataset's generation. A write
// the disk has no room for is refused without marking the store full:
// kept partitions are optional.
func (s *Store) PutCached(key string, gen uint64, part int, data []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkCachedKey(key); err != nil {
		return err
	}
	if err := s.space.fits(len(data) + 20 + len(key)); err != nil {
		return err
	}
	return s.commit("write cached partition", func() error { return s.db.Set(cachedKey(key, gen, part), seal(data), pebble.NoSync) })
}

// Cached returns a kept partition, verified (ErrNotFound, ErrCorrupt).
func (s *Store) Cached(key string, gen uint64, part int) ([]byte, error) {
	if err := checkCachedKey(key); err != nil {
		return nil, err
	}
	return s.get(cachedKey(key, gen, part))
}

// DeleteCached deletes every kept partition of a persisted dataset, of
// every generation.
func (s *Store) DeleteCached(key string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkCachedKey(key); err != nil {
		return err
	}
	return s.deleteRange(cachedPrefix(key), cachedEnd(key))
}

// DeleteCachedGen deletes the kept partitions of one generation.
func (s *Store) DeleteCachedGen(key string, gen uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkCachedKey(key); err != nil {
		return err
	}
	start := cachedGenPrefix(key, gen)
	if gen == ^uint64(0) {
		return s.deleteRange(start, cachedEnd(key))
	}
	return s.deleteRange(start, cachedGenPrefix(key, gen+1))
}

// CachedSets returns the generations of persisted datasets with partitions
// here, ascending.
func (s *Store) CachedSets() ([]CachedSet, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'c'}, UpperBound: []byte{'c' + 1}})
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	var out []CachedSet
	for ok := it.First(); ok; {
		k := it.Key()[1:]
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) < i+1+8 {
			return out, fmt.Errorf("%w: cached block key %q", ErrCorrupt, it.Key())
		}
		set := CachedSet{Key: string(k[:i]), Gen: binary.BigEndian.Uint64(k[i+1:])}
		out = append(out, set)
		if set.Gen == ^uint64(0) {
			ok = it.SeekGE(cachedEnd(set.Key))
			continue
		}
		ok = it.SeekGE(cachedGenPrefix(set.Key, set.Gen+1))
	}
	return out, it.Error()
}
