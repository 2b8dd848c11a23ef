package raftnet

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// records is a slog.Handler that keeps what it is given.
type records struct {
	mu    sync.Mutex
	recs  []slog.Record
	attrs []slog.Attr
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.recs = append(r.recs, rec)
	return nil
}
func (r *records) WithAttrs(as []slog.Attr) slog.Handler {
	return &handlerWith{r, as}
}
func (r *records) WithGroup(string) slog.Handler { return r }

type handlerWith struct {
	r  *records
	as []slog.Attr
}

func (h *handlerWith) Enabled(context.Context, slog.Level) bool { return true }
func (h *handlerWith) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(h.as...)
	return h.r.Handle(ctx, rec)
}
func (h *handlerWith) WithAttrs(as []slog.Attr) slog.Handler {
	return &handlerWith{h.r, append(append([]slog.Attr(nil), h.as...), as...)}
}
func (h *handlerWith) WithGroup(string) slog.Handler { return h }

// find returns the first record whose message is msg, with its attributes.
func (r *records) find(msg string) (slog.Record, map[string]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message == msg {
			m := map[string]string{}
			rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
			return rec, m, true
		}
	}
	return slog.Record{}, nil, false
}

// TestRaftLogsStructuredAttributes: Raft's own log lines reach slog with
// their keys as attributes, not inside the message text, at their level.
func TestRaftLogsStructuredAttributes(t *testing.T) {
	var got records
	addr := freeAddr(t)
	n, err := Open(Options{ID: "a", DataDir: t.TempDir(), RaftAddr: addr, FSM: newTestFSM(), Bootstrap: []Peer{{ID: "a", Addr: addr}},
		Logger: slog.New(&got)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	waitFor(t, "raft to say it entered the follower state", func() bool {
		_, _, ok := got.find("entering follower state")
		return ok
	})
	rec, attrs, _ := got.find("entering follower state")
	if _, ok := attrs["follower"]; !ok || rec.Level != slog.LevelInfo {
		t.Errorf("entering follower state: level %s, attributes %v; want info and a follower attribute", rec.Level, attrs)
	}
	for _, k := range []string{"leader-address", "leader-id"} {
		if _, ok := attrs[k]; !ok {
			t.Errorf("entering follower state: no %s attribute in %v", k, attrs)
		}
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for _, r := range got.recs {
		if strings.Contains(r.Message, "=") || strings.HasPrefix(r.Message, "raft: ") || strings.HasPrefix(r.Message, "[") {
			t.Errorf("a record with its keys or hclog's header in the message: %q", r.Message)
		}
	}
}

// TestHCLoggerValues: hclog's Format and Hex values, an odd argument,
// With, Named and the level gate.
func TestHCLoggerValues(t *testing.T) {
	var got records
	h := newHCLogger(slog.New(&got), "raft", hclog.Info)
	h.Debug("not logged", "k", 1)
	h.With("peer", "b").Named("net").Warn("failed to contact", "took", hclog.Fmt("%dms", 12), "flags", hclog.Hex(255), "odd")
	if _, _, ok := got.find("not logged"); ok {
		t.Error("a debug record passed the Info level")
	}
	rec, attrs, ok := got.find("failed to contact")
	if !ok || rec.Level != slog.LevelWarn {
		t.Fatalf("warn record: %v %v", ok, rec.Level)
	}
	for k, v := range map[string]string{"peer": "b", "logger": "raft.net", "took": "12ms", "flags": "0xff", "EXTRA_VALUE_AT_END": "odd"} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}
	h.SetLevel(hclog.Debug)
	if !h.IsDebug() || h.IsTrace() {
		t.Errorf("after SetLevel(Debug): IsDebug %v, IsTrace %v", h.IsDebug(), h.IsTrace())
	}
}

type state struct{ s string }

func (s *state) String() string { return s.s }

// TestHCLoggerSaysValuesWhenLogged: a Stringer is said when it is
// logged (raft passes itself), and raft's "node" does not shadow ours.
func TestHCLoggerSaysValuesWhenLogged(t *testing.T) {
	var got records
	h := newHCLogger(slog.New(&got).With("node", "a"), "raft", hclog.Info)
	st := &state{"Follower"}
	h.Info("entering follower state", "follower", st, "node", st)
	st.s = "Leader"
	_, attrs, _ := got.find("entering follower state")
	if attrs["follower"] != "Follower" || attrs["raft-node"] != "Follower" || attrs["node"] != "a" {
		t.Errorf("attributes %v: want follower=Follower raft-node=Follower node=a", attrs)
	}
}
