package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/baton-sched/baton/internal/devcluster"
	"github.com/baton-sched/baton/internal/server"
)

// runDev runs a dev cluster (-dev) until ctx ends. Its banner comes
// first: the records logged while the cluster starts (Raft's election,
// the executor's registration) are held, and written after it.
func runDev(ctx context.Context, cfg server.Config, logger *slog.Logger, stderr io.Writer) int {
	h := &hold{held: true}
	logger = slog.New(&holdHandler{inner: logger.Handler(), h: h})
	cfg.Logger = logger
	// A start that hangs must not hide its logs.
	stuck := time.AfterFunc(10*time.Second, h.release)
	dc, err := devcluster.Start(ctx, devcluster.Options{Server: cfg, Logger: logger, Cores: devCores})
	stuck.Stop()
	if err != nil {
		h.release()
		fmt.Fprintln(stderr, "schedd:", err)
		return 1
	}
	fmt.Fprint(stderr, banner(dc, cfg))
	h.release()
	<-ctx.Done()
	logger.Info("stopping")
	if err := dc.Close(); err != nil {
		fmt.Fprintln(stderr, "schedd: stop:", err)
		return 1
	}
	return 0
}

// banner says what runs, where the UI is, and how to reach it.
func banner(dc *devcluster.Cluster, cfg server.Config) string {
	slots := runtime.NumCPU()
	if devCores > 0 {
		slots = devCores
	}
	b := fmt.Sprintf("Baton dev mode: a single-node quorum and an executor with %d slots in %s\n", slots, dc.Dir())
	if a := dc.Server.HTTPAddr(); a != "" {
		scheme := "http"
		if cfg.TLS != nil {
			scheme = "https"
		}
		b += fmt.Sprintf("  UI:  %s://%s/ui/\n", scheme, a)
	}
	b += fmt.Sprintf("  API: %s\n  export BATON_ADDR=%s\n  batonctl status\n", dc.Addr(), dc.Addr())
	return b
}

// hold keeps records back until release, then writes them in order.
type hold struct {
	mu   sync.Mutex
	held bool
	recs []heldRecord
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

func (h *hold) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		r.h.Handle(context.Background(), r.r)
	}
	h.recs, h.held = nil, false
}

// holdHandler is a slog.Handler that holds records while its hold does.
type holdHandler struct {
	inner slog.Handler
	h     *hold
}

func (l *holdHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.inner.Enabled(ctx, level)
}

func (l *holdHandler) Handle(ctx context.Context, r slog.Record) error {
	l.h.mu.Lock()
	if l.h.held {
		// Said now, as it would have been: a value's state changes.
		held := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			held.AddAttrs(slog.Attr{Key: a.Key, Value: a.Value.Resolve()})
			return true
		})
		l.h.recs = append(l.h.recs, heldRecord{l.inner, held})
		l.h.mu.Unlock()
		return nil
	}
	l.h.mu.Unlock()
	return l.inner.Handle(ctx, r)
}

func (l *holdHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &holdHandler{inner: l.inner.WithAttrs(as), h: l.h}
}

func (l *holdHandler) WithGroup(name string) slog.Handler {
	return &holdHandler{inner: l.inner.WithGroup(name), h: l.h}
}
