package function

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"function/config"
)

func newTestFunction(t *testing.T, start bool) *Function {
	t.Helper()
	f := New(WithClient(fake.NewClientset()), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithoutSweeps())
	if start {
		require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir()}))
		t.Cleanup(func() { _ = f.Stop(context.Background()) })
	}
	return f
}

func TestAlive(t *testing.T) {
	tests := []struct {
		name  string
		start bool
	}{
		{"ready: the probe event is decided", true},
		{"not ready: the probe event is answered 503", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFunction(t, tt.start)
			alive, err := f.Alive(context.Background())
			assert.NoError(t, err)
			assert.True(t, alive)
			assert.Zero(t, f.watch.oldest(), "the probe's request has ended")
		})
	}
}

// A lock every event takes is held (as a wedged handler would): the probe gets no answer, so
// the process reports itself dead and is restarted.
func TestAliveFailsWhenTheEventPathIsStuck(t *testing.T) {
	f := newTestFunction(t, true)
	f.probeTimeout = 100 * time.Millisecond
	f.mu.Lock()
	alive, err := f.Alive(context.Background())
	f.mu.Unlock()
	assert.False(t, alive)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not answer a probe event")

	alive, err = f.Alive(context.Background())
	assert.True(t, alive, "alive again once the path answers")
	assert.NoError(t, err)
}

// A request that has been in Handle for longer than twice the event timeout means something
// ignores its context: not alive.
func TestAliveFailsOnARequestStuckInHandle(t *testing.T) {
	f := newTestFunction(t, true)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	f.watch = newInflight(clk)
	end := f.watch.begin()

	clk.SetTime(clk.Now().Add(2 * f.eventTimeout))
	alive, err := f.Alive(context.Background())
	assert.True(t, alive, "at exactly the limit")
	assert.NoError(t, err)

	clk.SetTime(clk.Now().Add(time.Second))
	alive, err = f.Alive(context.Background())
	assert.False(t, alive)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the event path is stuck")

	end()
	alive, err = f.Alive(context.Background())
	assert.True(t, alive)
	assert.NoError(t, err)
}

func TestInflightOldest(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	w := newInflight(clk)
	assert.Zero(t, w.oldest())
	endFirst := w.begin()
	clk.SetTime(clk.Now().Add(3 * time.Second))
	endSecond := w.begin()
	clk.SetTime(clk.Now().Add(time.Second))
	assert.Equal(t, 4*time.Second, w.oldest())
	endFirst()
	assert.Equal(t, time.Second, w.oldest())
	endSecond()
	assert.Zero(t, w.oldest())
}
