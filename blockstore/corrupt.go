package blockstore

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble's errors (cockroachdb/errors) carry stack traces and detail
// lines: printed with %+v, as slog prints an error, one is several KB; even
// its Error() ends in "\n<corruption detail carrier>". What Baton says of
// them, in logs and in task failures, is their first line.

// corruptError is a corruption Pebble found, in one line. errors.Is finds
// ErrCorrupt and Pebble's own corruption mark in it.
type corruptError struct{ err error }

func (e corruptError) Error() string   { return ErrCorrupt.Error() + ": " + firstLine(e.err) }
func (e corruptError) Unwrap() []error { return []error{ErrCorrupt, e.err} }

// pebbleError is what a read says of an error from Pebble.
func pebbleError(err error) error {
	if pebble.ExtractDataCorruptionInfo(err) != nil || pebble.IsCorruptionError(err) {
		return corruptError{err}
	}
	return plainError{err}
}

// plainError says another error of Pebble's in one line, "blockstore: ...".
type plainError struct{ err error }

func (e plainError) Error() string { return "blockstore: " + firstLine(e.err) }
func (e plainError) Unwrap() error { return e.err }

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// corruptFiles logs a corrupt file once, then at most every `every`,
// saying how many reads found it since: Pebble reports the corruption on
// every read of the file.
type corruptFiles struct {
	mu    sync.Mutex
	every time.Duration
	seen  map[string]*limiter
}

func (c *corruptFiles) log(l *slog.Logger, info pebble.DataCorruptionInfo) {
	c.mu.Lock()
	lim := c.seen[info.Path]
	if lim == nil {
		if c.seen == nil {
			c.seen = map[string]*limiter{}
		}
		lim = &limiter{every: c.every}
		c.seen[info.Path] = lim
	}
	c.mu.Unlock()
	if ok, held := lim.allow(time.Now()); ok {
		l.Error("corrupt block store file: its blocks are read as lost and computed again", "path", info.Path, "err", firstLine(info.Details), "reads_since_last_said", held)
	}
}
