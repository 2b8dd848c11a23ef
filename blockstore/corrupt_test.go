package blockstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-sched/baton/ops"
	"github.com/cockroachdb/pebble/v2"
)

// TestCorruptionSaidInOneLine: a read of a corrupt sstable fails with one
// plain line (no "\n<corruption detail carrier>") that errors.Is finds
// ErrCorrupt and Pebble's corruption in, and the executor's log says the
// file is corrupt once in a short line, not a Pebble stack on every read.
func TestCorruptionSaidInOneLine(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{WriteMode: WriteIngest})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutMapOutput(1, 0, [][]byte{bytes.Repeat([]byte("abcdefgh"), 4096)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable to corrupt")
	}
	for _, f := range ssts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/3] ^= 0xff
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	s, err = Open(dir, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 5; i++ {
		_, err := s.ShuffleBlock(1, 0, 0)
		if err == nil {
			t.Fatal("a corrupt block was read")
		}
		if !errors.Is(err, ErrCorrupt) || !pebble.IsCorruptionError(err) {
			t.Errorf("read %d: %v is not ErrCorrupt and Pebble's corruption", i, err)
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "carrier") || !strings.HasPrefix(msg, "blockstore: block failed its checksum: pebble: file ") {
			t.Errorf("read %d: %q, want one plain line", i, msg)
		}
	}
	// A reducer fetching it from another executor hears the same line.
	conns := &Conns{}
	defer conns.Close()
	f := &Fetcher{LocalID: "L", Conns: conns}
	in := ops.ShuffleInput{ID: 1, Maps: 1, Locations: []ops.MapLocation{{Map: 0, Executor: "R", Addr: serve(t, s)}}}
	var ff *ops.FetchFailedError
	err = f.Fetch(context.Background(), in, 0, func(int, []byte) error { return nil })
	if !errors.As(err, &ff) || !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "\n") || strings.Count(err.Error(), ErrCorrupt.Error()) != 1 {
		t.Errorf("a remote fetch of the corrupt block: %q", err)
	}
	if n := strings.Count(logs.String(), "corrupt block store file"); n != 1 || logs.Len() > 1000 || strings.Contains(logs.String(), "stack trace") {
		t.Errorf("the log said the corruption %d times in %d bytes, want once in a short line:\n%s", n, logs.Len(), logs.String())
	}
}
