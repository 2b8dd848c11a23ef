package blockstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestFullDiskRefusesWritesAndRecovers(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	s, err := Open(t.TempDir(), &Options{MinFree: 10 << 20, FreeSpace: func(string) (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	blk := bytes.Repeat([]byte("x"), 1<<20)
	if err := s.PutMapOutput(1, 0, [][]byte{blk}); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h != "" {
		t.Fatalf("health %q with room", h)
	}
	free.Store(11 << 20) // 11 MiB free: a 1 MiB write needs 12
	err = s.PutMapOutput(1, 1, [][]byte{blk})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "no space left on device: 11.0 MiB free") || !strings.Contains(err.Error(), "execd -min-free-disk") {
		t.Fatalf("write on a full disk: %v", err)
	}
	if err := s.PutResult(1, 1, blk); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("result on a full disk: %v", err)
	}
	if h := s.Health(); !strings.Contains(h, "no space left on device") {
		t.Fatalf("health %q on a full disk", h)
	}
	// What was written before is still there.
	if b, err := s.ShuffleBlock(1, 0, 0); err != nil || len(b) != len(blk) {
		t.Fatalf("block written before the disk filled: %d bytes, %v", len(b), err)
	}
	free.Store(1 << 30)
	if h := s.Health(); h != "" {
		t.Fatalf("health %q once space returned", h)
	}
	if err := s.PutMapOutput(1, 1, [][]byte{blk}); err != nil {
		t.Fatalf("write once space returned: %v", err)
	}
}

// TestRealFullDisk fills a real (tmpfs) file system: the store refuses
// the write that would fill it, Pebble never sees a failed write, and
// once space is freed the store writes again.
func TestRealFullDisk(t *testing.T) {
	dir := tinyFS(t, 32)
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(dir, "blocks"), &Options{MinFree: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	blk := bytes.Repeat([]byte("y"), 512<<10)
	refused := false
	for i := 0; i < 100; i++ {
		err := s.PutMapOutput(1, i, [][]byte{blk, blk})
		if errors.Is(err, ErrNoSpace) {
			refused = true
			break
		}
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if !refused {
		t.Fatal("a 32 MiB file system never filled")
	}
	if s.Health() == "" {
		t.Fatal("healthy on a full disk")
	}
	os.Remove(filler)
	if h := s.Health(); h != "" {
		t.Fatalf("health %q after freeing space", h)
	}
	if err := s.PutMapOutput(2, 0, [][]byte{blk}); err != nil {
		t.Fatalf("write after freeing space: %v", err)
	}
}

// tinyFS mounts a tmpfs of mb MiB (root only; skipped elsewhere).
func tinyFS(t *testing.T, mb int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mb), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}
