package handlers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"function/names"
)

// PodKey names one pod: the uid tells a pod from a later one of the same name.
type PodKey struct {
	Namespace, Name string
	UID             types.UID
}

// A failed re-check runs again after recheckRetry, doubling up to recheckRetryMax, until it
// succeeds (then its backoff is forgotten) or the pod is gone.
const (
	recheckRetry    = 2 * time.Second
	recheckRetryMax = 30 * time.Second
)

// Rechecks holds the pods to look at again, on client-go's workqueue: each pod at most once,
// at its earliest due time (a later request never postpones an earlier one), failed re-checks
// retried with rate-limited backoff. It is only an accelerator: the drain's truth is in the
// pod, so a restarted process loses nothing but the wake-up, which the next event, any
// replica or the next sweep provides again.
//
// Bounded: only a pod read live is ever scheduled (an event's copy may only Advance a pending
// re-check), at most MaxRechecks at once (beyond, a drain is finished by its events and the
// sweeps), and never later than MaxRecheckDelay from now.
type Rechecks struct {
	clock clock.Clock
	// now is the time due times are given in (the API server's; default the clock's).
	now   func() time.Time
	queue workqueue.TypedRateLimitingInterface[PodKey]
	mu    sync.Mutex
	due   map[PodKey]time.Time // the pending re-checks, each at its earliest due time
}

// NewRechecks returns an empty queue driven by c.
func NewRechecks(c clock.WithTicker) *Rechecks {
	return &Rechecks{
		clock: c,
		due:   map[PodKey]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[PodKey](recheckRetry, recheckRetryMax),
			workqueue.TypedRateLimitingQueueConfig[PodKey]{Name: names.Component + "-rechecks", Clock: c}),
	}
}

// MaxRechecks bounds the pending re-checks; MaxRecheckDelay how far ahead one may be due.
const (
	MaxRechecks     = 50000
	MaxRecheckDelay = time.Hour
)

// Schedule asks for a re-check of key at (or just after) at, unless one is already due
// earlier; at most MaxRecheckDelay ahead. It returns false when it was not scheduled: after
// ShutDown, or when MaxRechecks are pending.
func (q *Rechecks) Schedule(key PodKey, at time.Time) bool {
	return q.schedule(key, at, true)
}

// Advance brings key's pending re-check forward to at; it never creates one.
func (q *Rechecks) Advance(key PodKey, at time.Time) {
	q.schedule(key, at, false)
}

func (q *Rechecks) schedule(key PodKey, at time.Time, create bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queue.ShuttingDown() {
		return false
	}
	d, ok := q.due[key]
	switch {
	case ok && !d.After(at):
		return true
	case !ok && (!create || len(q.due) >= MaxRechecks):
		return false
	}
	now := q.Now()
	if limit := now.Add(MaxRecheckDelay); limit.Before(at) {
		at = limit
	}
	q.due[key] = at
	q.queue.AddAfter(key, at.Sub(now))
	return true
}

// Now is the time due times are given in.
func (q *Rechecks) Now() time.Time {
	if q.now != nil {
		return q.now()
	}
	return q.clock.Now()
}

// Pending reports whether a re-check of the pod with this uid is pending.
func (q *Rechecks) Pending(uid types.UID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k := range q.due {
		if k.UID == uid {
			return true
		}
	}
	return false
}

// Cancel drops the pending re-check of the pod with this uid, if any.
func (q *Rechecks) Cancel(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k := range q.due {
		if k.UID == uid {
			delete(q.due, k)
		}
	}
}

// Len is the number of pending re-checks.
func (q *Rechecks) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.due)
}

// ShutDown drops every pending re-check and makes next return false once the queue is
// empty; later Schedule calls do nothing.
func (q *Rechecks) ShutDown() {
	q.mu.Lock()
	clear(q.due)
	q.mu.Unlock()
	q.queue.ShutDown()
}

// next blocks until a re-check is due and returns its pod; false once shut down. A cancelled
// re-check is skipped. Call finish when done with it.
func (q *Rechecks) next() (PodKey, bool) {
	for {
		key, shutdown := q.queue.Get()
		if shutdown {
			return PodKey{}, false
		}
		q.mu.Lock()
		_, wanted := q.due[key]
		delete(q.due, key)
		q.mu.Unlock()
		if wanted {
			return key, true
		}
		q.queue.Forget(key)
		q.queue.Done(key)
	}
}

// finish ends a re-check: on success its backoff is forgotten, on failure it is retried
// after the backoff.
func (q *Rechecks) finish(key PodKey, err error) {
	defer q.queue.Done(key)
	if err == nil {
		q.queue.Forget(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queue.ShuttingDown() {
		return
	}
	if _, ok := q.due[key]; !ok {
		q.due[key] = q.Now() // pending; the queue holds the backoff
	}
	q.queue.AddRateLimited(key)
}

// retries is how often key has failed in a row.
func (q *Rechecks) retries(key PodKey) int { return q.queue.NumRequeues(key) }
