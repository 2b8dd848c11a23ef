package blockstore

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// ErrNoSpace: a write would leave the disk fuller than the store allows.
// The write is refused before Pebble sees it (Pebble treats a write-ahead
// log that cannot be written as fatal), so the task fails with a clear
// message and the executor goes on.
var ErrNoSpace = errors.New("blockstore: no space left on device")

// ErrBroken: the store failed a write fatally and takes no more writes
// until the executor restarts.
var ErrBroken = errors.New("blockstore: the block store failed")

// DefaultMinFree is the default Options.MinFree.
const DefaultMinFree = 64 << 20

// space watches the free space of the store's file system: every write
// checks it first, and Health reports whether the store takes writes.
type space struct {
	dir     string
	minFree uint64
	// free returns the bytes available to the store (statfs by default).
	free func(dir string) (uint64, error)

	mu     sync.Mutex
	full   string // why the last refused write was refused; "" after one fit
	need   uint64 // what the last refused write needed
	broken string // set once a write failed fatally
}

func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// room checks that a write of n bytes fits: the write-ahead log takes n
// bytes, then flushing and compacting take about as much again, and
// minFree stays free for everything else.
func (sp *space) room(n int) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.broken != "" {
		return fmt.Errorf("%w: %s; restart the executor", ErrBroken, sp.broken)
	}
	free, err := sp.free(sp.dir)
	if err != nil {
		return nil // cannot tell: let the write try
	}
	need := 2*uint64(n) + sp.minFree
	if free < need {
		sp.full = fmt.Sprintf("no space left on device: %s free in %s; a write of %s needs %s (%s kept free, execd -min-free-disk)",
			bytesString(free), sp.dir, bytesString(uint64(n)), bytesString(need), bytesString(sp.minFree))
		sp.need = need
		return fmt.Errorf("blockstore: %s: %w", sp.full, ErrNoSpace)
	}
	sp.full, sp.need = "", 0
	return nil
}

// fits checks that an optional write of n bytes (a kept partition) fits
// with room to spare (twice what room asks, so that cached data never
// takes the last of the disk from shuffles), without marking the store
// full when it does not.
func (sp *space) fits(n int) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.broken != "" {
		return fmt.Errorf("%w: %s; restart the executor", ErrBroken, sp.broken)
	}
	free, err := sp.free(sp.dir)
	if err != nil {
		return nil
	}
	if need := 4*uint64(n) + sp.minFree; free < need {
		return fmt.Errorf("blockstore: %s free in %s, not enough to keep %s: %w", bytesString(free), sp.dir, bytesString(uint64(n)), ErrNoSpace)
	}
	return nil
}

// check re-reads the free space and returns why the store takes no
// writes, or "": the disk is below its free minimum, or it still lacks
// the room the last refused write needed.
func (sp *space) check() string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.broken != "" {
		return "block store failed: " + sp.broken + "; restart the executor"
	}
	free, err := sp.free(sp.dir)
	if err != nil {
		return ""
	}
	switch {
	case free < sp.minFree:
		return fmt.Sprintf("no space left on device: %s free in %s, below the %s kept free (execd -min-free-disk)", bytesString(free), sp.dir, bytesString(sp.minFree))
	case sp.full != "" && free < sp.need:
		return sp.full
	}
	sp.full, sp.need = "", 0
	return ""
}

func (sp *space) fail(why string) {
	sp.mu.Lock()
	sp.broken = why
	sp.mu.Unlock()
}

func bytesString(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// limiter lets one message through per interval, counting the others.
type limiter struct {
	mu       sync.Mutex
	every    time.Duration
	last     time.Time
	dropped  int
	lastText string
}

// allow reports whether to log now, and how many were held back since.
func (l *limiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.dropped++
		return false, 0
	}
	n := l.dropped
	l.last, l.dropped = now, 0
	return true, n
}
