package blockstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors. Callers test them with errors.Is.
var (
	// ErrNotFound: no such block.
	ErrNotFound = errors.New("blockstore: not found")
	// ErrCorrupt: a block failed its checksum.
	ErrCorrupt = errors.New("blockstore: block failed its checksum")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("blockstore: closed")
)

// WriteMode is how a map task's blocks reach the store.
type WriteMode uint8

// Write modes; both write all of a map task's blocks at once, durably.
const (
	// WriteBatch writes the blocks in one batch and syncs it once.
	WriteBatch WriteMode = iota + 1
	// WriteIngest writes the blocks, sorted, into an sstable and ingests
	// it (no write-ahead log, no memtable).
	WriteIngest
)

func (m WriteMode) String() string {
	switch m {
	case WriteBatch:
		return "batch"
	case WriteIngest:
		return "ingest"
	}
	return fmt.Sprintf("WriteMode(%d)", uint8(m))
}

// Options configure a Store. The zero value is usable.
type Options struct {
	// FS is the file system; default vfs.Default. Tests use vfs.NewMem().
	FS vfs.FS
	// WriteMode is how map outputs are written. Default WriteBatch, the
	// faster of the two by `make bench` (see BenchmarkPutMapOutput).
	WriteMode WriteMode
	// CacheSize is Pebble's block cache. Default 64 MiB.
	CacheSize int64
	// MinFree is how many bytes of the store's file system writes must
	// leave free: a write that would leave less is refused (ErrNoSpace)
	// before Pebble sees it. Default 64 MiB.
	MinFree uint64
	// FreeSpace returns the bytes available in dir; default statfs (tests
	// replace it).
	FreeSpace func(dir string) (uint64, error)
	Logger    *slog.Logger
}

// EnsureDefaults fills unset fields.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.WriteMode == 0 {
		o.WriteMode = WriteBatch
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinFree == 0 {
		o.MinFree = DefaultMinFree
	}
	if o.FreeSpace == nil {
		o.FreeSpace = statfsFree
	}
}

// Store keeps an executor's shuffle blocks and indirect results in Pebble.
//
// Keys:
//
//	's' shuffle(8) map(4) seq(4) reduce(4)   a shuffle block's segment (segments.go)
//	'r' job(8) task(8)                an indirect result
//
// Values are the block followed by its CRC32C (4 bytes, big-endian); every
// read verifies it.
//
// A Store is safe for concurrent use.
type Store struct {
	db     *pebble.DB
	opts   Options
	dir    string
	tmp    atomic.Uint64
	closed atomic.Bool
	space  *space
	// bgLog rate-limits Pebble's background errors (a full disk makes
	// the same one many times a second).
	bgLog limiter
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Open opens (or creates) the store in dir.
func Open(dir string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.EnsureDefaults()
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref()
	s := &Store{opts: o, dir: dir, bgLog: limiter{every: 10 * time.Second}}
	po := &pebble.Options{FS: o.FS, Cache: cache, Logger: quietLogger{o.Logger}}
	// A corrupt file is an error for the read that finds it (the block is
	// then recomputed), not a reason to stop the executor.
	corrupt := &corruptFiles{every: time.Minute}
	po.EventListener = &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) { corrupt.log(o.Logger, info) },
		BackgroundError: func(err error) {
			if ok, held := s.bgLog.allow(time.Now()); ok {
				o.Logger.Error("block store background error", "err", firstLine(err), "similar_errors_held_back", held)
			}
		},
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("blockstore: open %s: %w", dir, err)
	}
	s.db = db
	s.space = &space{dir: dir, minFree: o.MinFree, free: o.FreeSpace}
	return s, nil
}

// Health returns why the store takes no writes now (its disk is full, or
// it failed), or "" when it does. It looks at the disk again each time.
func (s *Store) Health() string { return s.space.check() }

// commit runs a Pebble write, turning the panic Pebble raises when its
// write-ahead log cannot be written (quietLogger.Fatalf) into ErrBroken:
// the executor stays up, says it is unhealthy, and fails its tasks with
// the reason instead of dying.
func (s *Store) commit(what string, write func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			why := fmt.Sprint(r)
			s.space.fail(why)
			s.opts.Logger.Error("block store failed; it takes no more writes until the executor restarts", "err", why)
			err = fmt.Errorf("%w: %s: %s", ErrBroken, what, why)
		}
	}()
	if err := write(); err != nil {
		return fmt.Errorf("blockstore: %s: %w", what, err)
	}
	return nil
}

// Close closes the store.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	// Leave the blocks in sstables rather than only in the write-ahead
	// log: a restart then needs no replay.
	if err := s.db.Flush(); err != nil {
		s.opts.Logger.Warn("block store flush before close failed", "err", err)
	}
	return s.db.Close()
}

func shuffleKey(shuffle uint64, mapIdx, reduce int) []byte {
	k := make([]byte, 17)
	k[0] = 's'
	binary.BigEndian.PutUint64(k[1:], shuffle)
	binary.BigEndian.PutUint32(k[9:], uint32(mapIdx))
	binary.BigEndian.PutUint32(k[13:], uint32(reduce))
	return k
}

func resultKey(job, task uint64) []byte {
	k := make([]byte, 17)
	k[0] = 'r'
	binary.BigEndian.PutUint64(k[1:], job)
	binary.BigEndian.PutUint64(k[9:], task)
	return k
}

func seal(data []byte) []byte {
	v := make([]byte, len(data)+4)
	copy(v, data)
	binary.BigEndian.PutUint32(v[len(data):], crc32.Checksum(data, castagnoli))
	return v
}

func unseal(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, ErrCorrupt
	}
	data := v[:len(v)-4]
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(v[len(data):]) {
		return nil, ErrCorrupt
	}
	return data, nil
}

// PutMapOutput stores a map task's blocks, one per reducer (an empty
// block is stored too, so that empty and missing differ), durably, in one
// write, as an output of one segment (segments.go).
func (s *Store) PutMapOutput(shuffle uint64, mapIdx int, blocks [][]byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	size := 0
	for _, data := range blocks {
		size += len(data) + 4 + 21
	}
	if err := s.space.room(size); err != nil {
		return err
	}
	if s.opts.WriteMode == WriteIngest {
		w, err := s.NewMapWriter(shuffle, mapIdx, len(blocks))
		if err != nil {
			return err
		}
		return w.Finish(blocks)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.putSegment(b, shuffle, mapIdx, blocks); err != nil {
		return err
	}
	return s.commit("write map output", func() error { return b.Commit(pebble.Sync) })
}

func (s *Store) get(key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, pebbleError(err)
	}
	defer closer.Close()
	data, err := unseal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), data...), nil
}

// PutResult stores a task's indirect result durably.
func (s *Store) PutResult(job, task uint64, data []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.space.room(len(data) + 4 + 17); err != nil {
		return err
	}
	return s.commit("write result", func() error { return s.db.Set(resultKey(job, task), seal(data), pebble.Sync) })
}

// Result returns a task's indirect result, verified.
func (s *Store) Result(job, task uint64) ([]byte, error) {
	return s.get(resultKey(job, task))
}

// HasResult reports whether a task's result is stored.
func (s *Store) HasResult(job, task uint64) bool {
	_, err := s.Result(job, task)
	return err == nil
}

// DeleteShuffle deletes every block of a shuffle.
func (s *Store) DeleteShuffle(shuffle uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	start := shuffleKey(shuffle, 0, 0)[:9]
	end := shuffleKey(shuffle+1, 0, 0)[:9]
	if shuffle == ^uint64(0) {
		end = []byte{'s' + 1}
	}
	return s.deleteRange(start, end)
}

// DeleteResult deletes one indirect result.
func (s *Store) DeleteResult(job, task uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.db.Delete(resultKey(job, task), pebble.NoSync)
}

// DeleteJobResults deletes every indirect result of a job.
func (s *Store) DeleteJobResults(job uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	start := resultKey(job, 0)[:9]
	end := resultKey(job+1, 0)[:9]
	if job == ^uint64(0) {
		end = []byte{'r' + 1}
	}
	return s.deleteRange(start, end)
}

func (s *Store) deleteRange(start, end []byte) error {
	if err := s.db.DeleteRange(start, end, pebble.NoSync); err != nil {
		return fmt.Errorf("blockstore: delete: %w", err)
	}
	return nil
}

// Shuffles returns the ids of the shuffles with blocks here, ascending.
func (s *Store) Shuffles() ([]uint64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'s'}, UpperBound: []byte{'s' + 1}})
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	var out []uint64
	for ok := it.First(); ok; {
		id := binary.BigEndian.Uint64(it.Key()[1:9])
		out = append(out, id)
		if id == ^uint64(0) {
			break
		}
		ok = it.SeekGE(shuffleKey(id+1, 0, 0)[:9])
	}
	return out, it.Error()
}

// ResultJobs returns the ids of the jobs with results here, ascending.
func (s *Store) ResultJobs() ([]uint64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'r'}, UpperBound: []byte{'r' + 1}})
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	var out []uint64
	for ok := it.First(); ok; {
		id := binary.BigEndian.Uint64(it.Key()[1:9])
		out = append(out, id)
		if id == ^uint64(0) {
			break
		}
		ok = it.SeekGE(resultKey(id+1, 0)[:9])
	}
	return out, it.Error()
}

// DiskUsage returns the bytes the store occupies on disk.
func (s *Store) DiskUsage() uint64 {
	if s.closed.Load() {
		return 0
	}
	return s.db.Metrics().DiskSpaceUsage()
}

// quietLogger sends Pebble's messages to slog at debug level (errors at
// error level).
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(format string, args ...any)  { q.l.Debug(fmt.Sprintf(format, args...)) }
func (q quietLogger) Errorf(format string, args ...any) { q.l.Error(fmt.Sprintf(format, args...)) }
func (q quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("blockstore: pebble: "+format, args...))
}
