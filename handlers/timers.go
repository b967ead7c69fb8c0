package handlers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Timers holds at most one pending re-check per pod. It is the only in-memory state of the
// function and only an accelerator: the drain's truth is in the pod's annotations, so a
// restarted process loses nothing but the wake-up, which the next event (or any replica's
// timer) provides again.
type Timers struct {
	clock   clock.WithDelayedExecution
	mu      sync.Mutex
	pending map[types.UID]pending
	stopped bool
}

type pending struct {
	at    time.Time
	timer clock.Timer
}

// NewTimers returns an empty set of timers driven by c.
func NewTimers(c clock.WithDelayedExecution) *Timers {
	return &Timers{clock: c, pending: map[types.UID]pending{}}
}

// Schedule runs fn at (or just after) at, replacing the pod's pending re-check unless that
// one is due at the same time. fn runs on its own goroutine.
func (t *Timers) Schedule(uid types.UID, at time.Time, fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if p, ok := t.pending[uid]; ok {
		if p.at.Equal(at) {
			return
		}
		p.timer.Stop()
	}
	var timer clock.Timer
	timer = t.clock.AfterFunc(max(at.Sub(t.clock.Now()), 0), func() {
		// Not inline: a fake clock runs AfterFunc callbacks while holding its own lock, which
		// Schedule takes under t.mu. Run fn only if this timer is still the pod's pending one
		// (it was not replaced, cancelled or stopped while it fired).
		go func() {
			t.mu.Lock()
			p, ok := t.pending[uid]
			current := ok && p.timer == timer
			if current {
				delete(t.pending, uid)
			}
			t.mu.Unlock()
			if current {
				fn()
			}
		}()
	})
	t.pending[uid] = pending{at: at, timer: timer}
}

// Cancel drops the pod's pending re-check, if any.
func (t *Timers) Cancel(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.pending[uid]; ok {
		p.timer.Stop()
		delete(t.pending, uid)
	}
}

// Len is the number of pending re-checks.
func (t *Timers) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Stop cancels every pending re-check; later Schedule calls do nothing.
func (t *Timers) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for uid, p := range t.pending {
		p.timer.Stop()
		delete(t.pending, uid)
	}
}
