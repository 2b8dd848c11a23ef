package blockstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestStoreRoundTrip(t *testing.T) {
	for _, mode := range []WriteMode{WriteBatch, WriteIngest} {
		t.Run(mode.String(), func(t *testing.T) {
			s, err := Open("db", &Options{FS: vfs.NewMem(), WriteMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			blocks := [][]byte{[]byte("zero"), {}, bytes.Repeat([]byte("x"), 100000)}
			if err := s.PutMapOutput(7, 3, blocks); err != nil {
				t.Fatal(err)
			}
			for r, want := range blocks {
				got, err := s.ShuffleBlock(7, 3, r)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("block %d: %v, %d bytes", r, err, len(got))
				}
			}
			if _, err := s.ShuffleBlock(7, 4, 0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing block: %v", err)
			}
			if err := s.PutResult(1, 99, []byte("result")); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Result(1, 99); err != nil || string(got) != "result" {
				t.Fatalf("result: %q %v", got, err)
			}
			if err := s.PutMapOutput(8, 0, [][]byte{[]byte("other")}); err != nil {
				t.Fatal(err)
			}
			if ids, err := s.Shuffles(); err != nil || fmt.Sprint(ids) != "[7 8]" {
				t.Fatalf("shuffles %v %v", ids, err)
			}
			if err := s.DeleteShuffle(7); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ShuffleBlock(7, 3, 0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted block: %v", err)
			}
			if _, err := s.ShuffleBlock(8, 0, 0); err != nil {
				t.Fatalf("a neighbouring shuffle was deleted: %v", err)
			}
			if err := s.DeleteJobResults(1); err != nil {
				t.Fatal(err)
			}
			if s.HasResult(1, 99) {
				t.Fatal("deleted result still there")
			}
		})
	}
}

// TestCorruptBlockDetected flips bytes in the store's files on disk and
// checks every read either succeeds with the right bytes or reports
// ErrCorrupt (or Pebble's own corruption error): never wrong data.
func TestCorruptBlockDetected(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{WriteMode: WriteIngest})
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("abcdefgh"), 4096)
	if err := s.PutMapOutput(1, 0, [][]byte{block}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Flip a byte in the middle of every sstable.
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable to corrupt")
	}
	for _, f := range ssts {
		b, _ := os.ReadFile(f)
		b[len(b)/3] ^= 0xff
		os.WriteFile(f, b, 0o644)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ShuffleBlock(1, 0, 0)
	if err == nil && !bytes.Equal(got, block) {
		t.Fatal("a corrupt block was returned as valid")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the corruption was reported as %v, want ErrCorrupt", err)
	}
}

func TestUnsealDetectsFlips(t *testing.T) {
	v := seal([]byte("hello world"))
	for i := range v {
		c := append([]byte(nil), v...)
		c[i] ^= 0x01
		if _, err := unseal(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d not detected", i)
		}
	}
}

// BenchmarkPutMapOutput compares the two bulk write paths for a map task's
// output (200 reducer blocks of 4 KiB each, synced): one synced batch
// against one ingested sstable. The faster is the default.
func BenchmarkPutMapOutput(b *testing.B) {
	for _, mode := range []WriteMode{WriteBatch, WriteIngest} {
		b.Run(mode.String(), func(b *testing.B) {
			s, err := Open(b.TempDir(), &Options{WriteMode: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			blocks := make([][]byte, 200)
			for i := range blocks {
				blocks[i] = bytes.Repeat([]byte{byte(i)}, 4096)
			}
			i := 0
			for b.Loop() {
				if err := s.PutMapOutput(1, i, blocks); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.SetBytes(200 * 4096)
		})
	}
}
