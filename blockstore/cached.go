package blockstore

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Partitions of persisted datasets (Spark's RDD blocks, rdd_<id>_<split>)
// are kept under 'c', the dataset's key, a zero byte and the partition,
// sealed like every block. They are written without a sync: a cached
// partition lost with its executor's page cache is computed again, and
// the scheduler forgets an executor's partitions when it loses it.

// MaxCachedKey bounds a persisted dataset's key (plan.MaxPersistKey).
const MaxCachedKey = 64

func cachedPrefix(key string) []byte {
	k := make([]byte, 0, 2+len(key))
	k = append(k, 'c')
	k = append(k, key...)
	return append(k, 0)
}

func cachedKey(key string, part int) []byte {
	return binary.BigEndian.AppendUint32(cachedPrefix(key), uint32(part))
}

func checkCachedKey(key string) error {
	if key == "" || len(key) > MaxCachedKey || bytes.IndexByte([]byte(key), 0) >= 0 {
		return fmt.Errorf("blockstore: bad persisted dataset key %q", key)
	}
	return nil
}

// PutCached keeps a partition of a persisted dataset.
func (s *Store) PutCached(key string, part int, data []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkCachedKey(key); err != nil {
		return err
	}
	if err := s.space.room(len(data) + 8 + len(key)); err != nil {
		return err
	}
	return s.commit("write cached partition", func() error { return s.db.Set(cachedKey(key, part), seal(data), pebble.NoSync) })
}

// Cached returns a kept partition, verified (ErrNotFound, ErrCorrupt).
func (s *Store) Cached(key string, part int) ([]byte, error) {
	if err := checkCachedKey(key); err != nil {
		return nil, err
	}
	return s.get(cachedKey(key, part))
}

// DeleteCached deletes every kept partition of a persisted dataset.
func (s *Store) DeleteCached(key string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkCachedKey(key); err != nil {
		return err
	}
	start := cachedPrefix(key)
	end := append(cachedPrefix(key)[:len(start)-1], 1)
	return s.deleteRange(start, end)
}

// CachedKeys returns the keys of the persisted datasets with partitions
// here, ascending.
func (s *Store) CachedKeys() ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'c'}, UpperBound: []byte{'c' + 1}})
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; {
		k := it.Key()[1:]
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return out, fmt.Errorf("%w: cached block key %q", ErrCorrupt, it.Key())
		}
		key := string(k[:i])
		out = append(out, key)
		next := append(cachedPrefix(key)[:1+len(key)], 1)
		ok = it.SeekGE(next)
	}
	return out, it.Error()
}
