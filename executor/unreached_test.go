package executor

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer for a logger and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSchedulersDefaultToBatonAddr: without -schedulers, execd dials
// $BATON_ADDR; -schedulers wins over it.
func TestSchedulersDefaultToBatonAddr(t *testing.T) {
	t.Setenv("BATON_ADDR", "127.0.0.1:7111,127.0.0.1:7112")
	o, _, err := parseFlags("execd", []string{"-data-dir", t.TempDir()}, io.Discard)
	if err != nil || strings.Join(o.Schedulers, ",") != "127.0.0.1:7111,127.0.0.1:7112" {
		t.Errorf("schedulers %v (%v), want $BATON_ADDR's", o.Schedulers, err)
	}
	o, _, err = parseFlags("execd", []string{"-data-dir", t.TempDir(), "-schedulers", "127.0.0.1:7121"}, io.Discard)
	if err != nil || strings.Join(o.Schedulers, ",") != "127.0.0.1:7121" {
		t.Errorf("schedulers %v (%v), want -schedulers'", o.Schedulers, err)
	}
}

// TestAnExecutorThatReachesNoSchedulerSaysSo: pointed at an address
// nobody listens on, an executor warns within seconds that it cannot
// reach a scheduler, naming the addresses and when it will say so again
// (10s, then less and less often).
func TestAnExecutorThatReachesNoSchedulerSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wrong := ln.Addr().String()
	ln.Close()
	var logs lockedBuffer
	e, err := New(Options{ID: "x", DataDir: t.TempDir(), Schedulers: []string{wrong}, Cores: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(logs.String(), "cannot reach a scheduler") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning after 2 minutes:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "cannot reach a scheduler") {
			line = l
			break
		}
	}
	for _, want := range []string{"level=WARN", "schedulers=" + wrong, "next_warning_in=10s", "connection refused"} {
		if !strings.Contains(line, want) {
			t.Errorf("the warning has no %q: %s", want, line)
		}
	}
}
