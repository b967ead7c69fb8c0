package telemetry

import (
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// NewLogger writes JSON lines in the func-go runtime's own shape (zerolog's: "level" in lower
// case, "time" in Unix seconds, "message"), so the runtime's lines and the function's are one
// format on one stream.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			return slog.Int64("time", a.Value.Time().Unix())
		case slog.LevelKey:
			return slog.String("level", levelName(a.Value))
		case slog.MessageKey:
			return slog.String("message", a.Value.String())
		}
		return a
	}}))
}

// levelName is a level in lower case (info, warn+1), without formatting the usual ones.
func levelName(v slog.Value) string {
	if l, ok := v.Any().(slog.Level); ok {
		switch l {
		case slog.LevelDebug:
			return "debug"
		case slog.LevelInfo:
			return "info"
		case slog.LevelWarn:
			return "warn"
		case slog.LevelError:
			return "error"
		}
	}
	return strings.ToLower(v.String())
}

// SetRuntimeLevel applies the same level to the func-go runtime's logger (zerolog's global
// level, which the runtime otherwise leaves at debug).
func SetRuntimeLevel(l slog.Level) {
	switch {
	case l <= slog.LevelDebug:
		zerolog.SetGlobalLevel(zerolog.DebugLevel)
	case l <= slog.LevelInfo:
		zerolog.SetGlobalLevel(zerolog.InfoLevel)
	case l <= slog.LevelWarn:
		zerolog.SetGlobalLevel(zerolog.WarnLevel)
	default:
		zerolog.SetGlobalLevel(zerolog.ErrorLevel)
	}
}

// maxPendingLog bounds the bytes a LineWriter holds: past it, writers wait for the write
// under way (as they would for a slow stream without it).
const maxPendingLog = 1 << 20

// LineWriter passes what is written to it (whole log lines: a handler writes a line per call)
// on to its writer from a goroutine of its own, at once: a line is never held back to wait
// for more, but the lines written while one write is under way go out together in the next.
// Logging then costs the event path a copy rather than a system call (and the reader of the
// stream one wake-up per batch). Order is kept. Flush waits until every line written so far
// has been passed on.
type LineWriter struct {
	w       io.Writer
	mu      sync.Mutex
	drained sync.Cond // broadcast when a write ends
	pending []byte    // lines not passed on yet
	spare   []byte    // the buffer of the last write, reused
	writing bool      // a goroutine is writing (and drains pending before it stops)
}

// NewLineWriter returns a LineWriter writing to w.
func NewLineWriter(w io.Writer) *LineWriter {
	l := &LineWriter{w: w}
	l.drained.L = &l.mu
	return l
}

// Write queues a copy of p for the writer and returns at once (unless over maxPendingLog
// bytes are queued). A failed write of the stream is not reported (slog ignores it too).
func (l *LineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	for len(l.pending) >= maxPendingLog {
		l.drained.Wait()
	}
	l.pending = append(l.pending, p...)
	if !l.writing {
		l.writing = true
		go l.drain()
	}
	l.mu.Unlock()
	return len(p), nil
}

func (l *LineWriter) drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.pending) > 0 {
		out := l.pending
		l.pending, l.spare = l.spare[:0], nil
		l.mu.Unlock()
		_, _ = l.w.Write(out)
		l.mu.Lock()
		if cap(out) <= 64<<10 { // keep a usual buffer, not one a burst grew
			l.spare = out
		}
		l.drained.Broadcast()
	}
	l.writing = false
	l.drained.Broadcast()
}

// Flush waits until every line written so far has been passed on.
func (l *LineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.writing {
		l.drained.Wait()
	}
}
