package handlers_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"function/handlers"
)

const (
	waitFor = 5 * time.Second
	tick    = 5 * time.Millisecond
)

// counter counts the calls of the callbacks it makes.
type counter struct{ n atomic.Int32 }

func (c *counter) fn() func() { return func() { c.n.Add(1) } }
func (c *counter) get() int32 { return c.n.Load() }

func fired(c *counter, want int32) func() bool { return func() bool { return c.get() == want } }

func TestTimersFireAtDueTime(t *testing.T) {
	fc := clocktesting.NewFakeClock(now)
	timers := handlers.NewTimers(fc)
	var c counter
	timers.Schedule("a", now.Add(10*time.Second), c.fn())
	require.Equal(t, 1, timers.Len())

	fc.Step(9 * time.Second)
	assert.Equal(t, int32(0), c.get(), "not due yet")
	assert.Equal(t, 1, timers.Len())

	fc.Step(time.Second)
	require.Eventually(t, fired(&c, 1), waitFor, tick)
	assert.Equal(t, 0, timers.Len(), "a fired re-check is no longer pending")

	fc.Step(time.Hour)
	assert.Equal(t, int32(1), c.get(), "fires once")
}

func TestTimersPastDueFiresOnNextTick(t *testing.T) {
	fc := clocktesting.NewFakeClock(now)
	timers := handlers.NewTimers(fc)
	var c counter
	timers.Schedule("a", now.Add(-time.Minute), c.fn())
	fc.Step(0)
	require.Eventually(t, fired(&c, 1), waitFor, tick)
	assert.Equal(t, 0, timers.Len())
}

func TestTimersRescheduleReplaces(t *testing.T) {
	tests := []struct {
		name        string
		first, then time.Duration
	}{
		{"later", 10 * time.Second, 20 * time.Second},
		{"earlier", 20 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := clocktesting.NewFakeClock(now)
			timers := handlers.NewTimers(fc)
			var old, replacement counter
			timers.Schedule("a", now.Add(tt.first), old.fn())
			timers.Schedule("a", now.Add(tt.then), replacement.fn())
			assert.Equal(t, 1, timers.Len())
			assert.Equal(t, 1, fc.Waiters(), "the replaced timer is stopped")

			fc.Step(tt.then)
			require.Eventually(t, fired(&replacement, 1), waitFor, tick)
			fc.Step(time.Minute)
			assert.Equal(t, int32(0), old.get(), "the replaced callback never runs")
			assert.Equal(t, int32(1), replacement.get())
			assert.Equal(t, 0, timers.Len())
		})
	}
}

func TestTimersSameTimeKeepsOne(t *testing.T) {
	fc := clocktesting.NewFakeClock(now)
	timers := handlers.NewTimers(fc)
	var first, second counter
	at := now.Add(10 * time.Second)
	timers.Schedule("a", at, first.fn())
	timers.Schedule("a", at, second.fn())
	assert.Equal(t, 1, timers.Len())
	assert.Equal(t, 1, fc.Waiters(), "no second timer is created")

	fc.Step(10 * time.Second)
	require.Eventually(t, fired(&first, 1), waitFor, tick)
	assert.Equal(t, int32(0), second.get(), "the pending re-check is kept, not replaced")
}

func TestTimersCancel(t *testing.T) {
	fc := clocktesting.NewFakeClock(now)
	timers := handlers.NewTimers(fc)
	var a, b counter
	timers.Schedule("a", now.Add(time.Second), a.fn())
	timers.Schedule("b", now.Add(time.Second), b.fn())
	require.Equal(t, 2, timers.Len())

	timers.Cancel("a")
	timers.Cancel("unknown") // no-op
	assert.Equal(t, 1, timers.Len())
	assert.Equal(t, 1, fc.Waiters())

	fc.Step(time.Second)
	require.Eventually(t, fired(&b, 1), waitFor, tick)
	assert.Equal(t, int32(0), a.get(), "a cancelled re-check never runs")
}

func TestTimersStop(t *testing.T) {
	fc := clocktesting.NewFakeClock(now)
	timers := handlers.NewTimers(fc)
	var before, after counter
	timers.Schedule("a", now.Add(time.Second), before.fn())
	timers.Schedule("b", now.Add(2*time.Second), before.fn())
	require.Equal(t, 2, timers.Len())

	timers.Stop()
	assert.Equal(t, 0, timers.Len())
	assert.False(t, fc.HasWaiters(), "every timer is stopped")

	timers.Schedule("c", now.Add(time.Second), after.fn())
	assert.Equal(t, 0, timers.Len(), "Schedule after Stop does nothing")
	assert.False(t, fc.HasWaiters())

	fc.Step(time.Minute)
	assert.Equal(t, int32(0), before.get())
	assert.Equal(t, int32(0), after.get())
}

func TestTimersLenCountsPods(t *testing.T) {
	fc := clocktesting.NewFakeClock(now)
	timers := handlers.NewTimers(fc)
	assert.Equal(t, 0, timers.Len())
	for i, uid := range []types.UID{"a", "b", "c", "a", "b"} {
		timers.Schedule(uid, now.Add(time.Duration(i+1)*time.Second), func() {})
	}
	assert.Equal(t, 3, timers.Len(), "one pending re-check per pod")

	fc.Step(3 * time.Second) // "c" is due at +3 s; "a" and "b" were moved to +4 s and +5 s
	require.Eventually(t, func() bool { return timers.Len() == 2 }, waitFor, tick)
	fc.Step(2 * time.Second)
	require.Eventually(t, func() bool { return timers.Len() == 0 }, waitFor, tick)
}

// A callback may schedule the next re-check of its own pod, as the Reconciler's re-check
// does while a drain keeps waiting.
func TestTimersCallbackReschedulesItsPod(t *testing.T) {
	fc := clocktesting.NewFakeClock(now)
	timers := handlers.NewTimers(fc)
	var c counter
	var fn func()
	fn = func() {
		c.n.Add(1)
		timers.Schedule("a", fc.Now().Add(10*time.Second), fn)
	}
	timers.Schedule("a", now.Add(10*time.Second), fn)

	fc.Step(10 * time.Second)
	require.Eventually(t, func() bool { return c.get() == 1 && timers.Len() == 1 && fc.HasWaiters() }, waitFor, tick)
	fc.Step(10 * time.Second)
	require.Eventually(t, func() bool { return c.get() == 2 && timers.Len() == 1 && fc.HasWaiters() }, waitFor, tick)
	timers.Stop()
	assert.Equal(t, 0, timers.Len())
}
