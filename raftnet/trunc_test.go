package raftnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDamagedLogStoreIsAClearError: a raft.db cut short (a full disk, a
// bad copy) used to stop the node with a bbolt assertion's stack trace;
// now Open says the store is damaged and what to do.
func TestDamagedLogStoreIsAClearError(t *testing.T) {
	c := newCluster(t, 1)
	_, leader := c.leader()
	for i := 0; i < 2000; i++ {
		if _, err := leader.Apply(register(fmt.Sprintf("e%d", i)), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c.nodes[0].Shutdown()
	c.nodes[0] = nil
	path := filepath.Join(c.dirs[0], "raft", "raft.db")
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := 0
	for _, size := range []int{len(whole) / 2, len(whole) / 4, 3 * 4096, 100} {
		if err := os.WriteFile(path, whole[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		f := newTestFSM()
		nd, err := Open(Options{ID: "n0", DataDir: c.dirs[0], RaftAddr: c.addrs[0], FSM: f})
		if err == nil {
			// Only free pages were cut: nothing may be missing.
			waitApplied(t, nd, 2000)
			n := executors(f)
			nd.Shutdown()
			if n != 2000 {
				t.Fatalf("raft.db cut to %d of %d bytes opened with %d of 2000 entries applied", size, len(whole), n)
			}
			t.Logf("cut to %d bytes: only free pages lost", size)
			continue
		}
		if !errors.Is(err, ErrDamagedLog) && size > 4096 {
			t.Fatalf("raft.db cut to %d of %d bytes: %v, want %v", size, len(whole), err, ErrDamagedLog)
		}
		damaged++
		t.Logf("cut to %d bytes: %v", size, err)
	}
	if damaged == 0 {
		t.Fatal("no cut damaged the store")
	}
	// Whole again, it opens and holds every entry.
	if err := os.WriteFile(path, whole, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(0, nil)
	_, leader = c.leader()
	waitApplied(t, leader, 2000)
	if n := executors(c.fsms[0]); n != 2000 {
		t.Fatalf("%d executors after reopening, want 2000", n)
	}
}
