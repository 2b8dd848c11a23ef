package raftnet

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hclogger is the hclog.Logger hashicorp/raft logs through, writing slog
// records: the message as raft says it ("entering follower state") and
// its key-value pairs as the record's attributes (follower=...
// leader-address=...), never inside the message text. Levels map to
// slog's (Trace to Debug); below Info is dropped unless SetLevel says
// otherwise, and the slog handler filters as it is set up to.
type hclogger struct {
	l     *slog.Logger
	name  string
	args  []any         // implied by With
	level *atomic.Int32 // an hclog.Level, shared with derived loggers
}

var _ hclog.Logger = (*hclogger)(nil)

func newHCLogger(l *slog.Logger, name string, level hclog.Level) *hclogger {
	lv := new(atomic.Int32)
	lv.Store(int32(level))
	return &hclogger{l: l, name: name, level: lv}
}

func slogLevel(l hclog.Level) slog.Level {
	switch {
	case l <= hclog.Debug:
		return slog.LevelDebug
	case l == hclog.Info:
		return slog.LevelInfo
	case l == hclog.Warn:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// renamed are raft's keys that Baton's loggers use for their own: raft's
// "node" (its own description, "Node at ... [Follower]") would shadow the
// node id in JSON logs.
var renamed = map[string]string{"node": "raft-node"}

// attrs turns hclog's alternating keys and values into slog's, saying
// hclog's Format, Hex, Octal and Binary values as hclog would. Values are
// said when logged, as hclog does: raft passes itself as a fmt.Stringer
// whose state changes.
func attrs(args []any) []any {
	out := make([]any, 0, len(args)+1)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, "EXTRA_VALUE_AT_END", value(args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		if k, ok := renamed[key]; ok {
			key = k
		}
		out = append(out, key, value(args[i+1]))
	}
	return out
}

func value(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) > 0 {
			if f, ok := v[0].(string); ok {
				return fmt.Sprintf(f, v[1:]...)
			}
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(v))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(v))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(v))
	case error:
		return v.Error()
	case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, time.Duration, time.Time:
		return v
	}
	return fmt.Sprint(v)
}

func (h *hclogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || (level != hclog.NoLevel && level < h.GetLevel()) {
		return
	}
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	h.l.Log(context.Background(), slogLevel(level), msg, attrs(args)...)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) enabled(l hclog.Level) bool {
	return l >= h.GetLevel() && h.l.Enabled(context.Background(), slogLevel(l))
}

func (h *hclogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogger) ImpliedArgs() []any { return append([]any(nil), h.args...) }

func (h *hclogger) With(args ...any) hclog.Logger {
	return &hclogger{l: h.l.With(attrs(args)...), name: h.name, args: append(h.ImpliedArgs(), args...), level: h.level}
}

func (h *hclogger) Name() string { return h.name }

// Named gives a sub-logger ("raft.net"); its records say which.
func (h *hclogger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	return &hclogger{l: h.l.With("logger", name), name: name, args: h.ImpliedArgs(), level: h.level}
}

func (h *hclogger) SetLevel(level hclog.Level) { h.level.Store(int32(level)) }
func (h *hclogger) GetLevel() hclog.Level      { return hclog.Level(h.level.Load()) }

func (h *hclogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

func (h *hclogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(opts).Writer()
}
