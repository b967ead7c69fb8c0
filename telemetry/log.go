package telemetry

import (
	"io"
	"log/slog"
	"strings"

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
			return slog.String("level", strings.ToLower(a.Value.String()))
		case slog.MessageKey:
			return slog.String("message", a.Value.String())
		}
		return a
	}}))
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
