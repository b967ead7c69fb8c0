package telemetry_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/telemetry"
)

// slowWriter records every write, each taking a while (a stream whose reader lags).
type slowWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(100 * time.Microsecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func (w *slowWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Every line written to a LineWriter reaches its stream whole, in the order of each writer,
// once Flush returns; lines written while a write is under way go out together.
func TestLineWriter(t *testing.T) {
	out := &slowWriter{}
	lw := telemetry.NewLineWriter(out)
	log := telemetry.NewLogger(lw, slog.LevelInfo)
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				log.Info("decision", slog.Int("writer", w), slog.Int("line", i))
			}
		})
	}
	wg.Wait()
	lw.Flush()

	text := out.String()
	got := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	require.Len(t, got, writers*lines)
	next := make([]int, writers)
	for _, l := range got {
		var w, i int
		_, err := fmt.Sscanf(l[strings.Index(l, `"writer":`):], `"writer":%d,"line":%d}`, &w, &i)
		require.NoError(t, err, l)
		assert.Equal(t, next[w], i, "writer %d's lines in order", w)
		next[w] = i + 1
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	assert.Less(t, out.writes, writers*lines, "lines written during a write go out together")
}

// Flush with nothing written returns at once; a LineWriter can be written to after a Flush.
func TestLineWriterFlush(t *testing.T) {
	var buf bytes.Buffer
	lw := telemetry.NewLineWriter(&buf)
	lw.Flush()
	n, err := lw.Write([]byte("one\n"))
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	lw.Flush()
	_, _ = lw.Write([]byte("two\n"))
	lw.Flush()
	assert.Equal(t, "one\ntwo\n", buf.String())
}

// Each level is named in lower case, as the func-go runtime names its own.
func TestLoggerLevelNames(t *testing.T) {
	for level, want := range map[slog.Level]string{
		slog.LevelDebug: "debug", slog.LevelInfo: "info", slog.LevelWarn: "warn", slog.LevelError: "error",
		slog.LevelInfo + 2: "info+2", slog.LevelError + 4: "error+4", slog.LevelDebug - 1: "debug-1",
	} {
		var buf bytes.Buffer
		telemetry.NewLogger(&buf, slog.LevelDebug-4).Log(t.Context(), level, "line")
		assert.Contains(t, buf.String(), `"level":"`+want+`"`, "level %d", level)
	}
}
