package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-sched/baton/internal/localcluster"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevBannerComesFirst: schedd -dev's banner is its first output,
// before Raft's and the node's log lines, and gives the UI's address;
// the lines logged while it started follow it.
func TestDevBannerComesFirst(t *testing.T) {
	ports, err := localcluster.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-dev", "-raft-addr", ports[0], "-api-addr", ports[1], "-http-addr", ports[2]}, &stderr)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stderr.String(), "entering leader state") {
		select {
		case code := <-done:
			t.Fatalf("schedd -dev exited %d:\n%s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner and Raft's lines after 2 minutes:\n%s", stderr.String())
		}
	}
	out := stderr.String()
	if !strings.HasPrefix(out, "Baton dev mode: a single-node quorum") {
		t.Errorf("the first output is not the banner:\n%s", out)
	}
	banner, logs, _ := strings.Cut(out, "  batonctl status\n")
	for _, want := range []string{"UI:  http://" + ports[2] + "/ui/", "export BATON_ADDR=" + ports[1]} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner has no %q:\n%s", want, banner)
		}
	}
	// Held lines say what was so when they were logged.
	if !strings.Contains(logs, `msg="entering follower state" node=dev component=raft follower="Node at `+ports[0]+` [Follower]"`) {
		t.Errorf("Raft's follower line, held, does not say [Follower] with its keys as attributes:\n%s", logs)
	}
	if strings.Contains(banner, "level=") || !strings.Contains(logs, "scheduler node started") {
		t.Errorf("log lines before the banner, or the start's lines lost:\n%s", out)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("schedd -dev stopped with exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("schedd -dev did not stop")
	}
}
