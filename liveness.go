package function

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"function/names"
)

// Liveness tells the truth about the event path: the process is alive only while that path
// answers. Alive fails when
//   - a probe event sent through Handle, in-process, gets no answer within probeTimeout
//     (a lock or anything else shared by every request is stuck), or
//   - a request has been in Handle for longer than stuckAfter, although every event is
//     bounded by eventTimeout (something ignores its context).
//
// Then Kubernetes restarts the container; drains lose nothing, their state is in the pods.
const (
	defaultEventTimeout = 25 * time.Second
	defaultProbeTimeout = 2 * time.Second
)

// inflight tracks the start times of the requests in Handle.
type inflight struct {
	clock clock.PassiveClock
	mu    sync.Mutex
	next  uint64
	start map[uint64]time.Time
}

func newInflight(c clock.PassiveClock) *inflight {
	return &inflight{clock: c, start: map[uint64]time.Time{}}
}

// begin records a request and returns the func that ends it.
func (t *inflight) begin() func() {
	now := t.clock.Now()
	t.mu.Lock()
	id := t.next
	t.next++
	t.start[id] = now
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.start, id)
		t.mu.Unlock()
	}
}

// oldest is how long the longest-running request has been in Handle (0 when none is).
func (t *inflight) oldest() time.Duration {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var longest time.Duration
	for _, s := range t.start {
		longest = max(longest, now.Sub(s))
	}
	return longest
}

// probeKey marks Alive's probe request in its context: only this process can set it, so a
// request from outside never carries it.
type probeKey struct{}

// probePod is a pod no configuration manages: deciding on it never writes or reads anything.
const probePod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"liveness-probe","namespace":"vpa-graceful-drain-probe","uid":"00000000-0000-0000-0000-000000000000"}}`

// Alive is true while the event path answers (see the constants above).
func (f *Function) Alive(ctx context.Context) (bool, error) {
	if age, limit := f.watch.oldest(), 2*f.eventTimeout; age > limit {
		return false, fmt.Errorf("a request has been handled for %s, over the %s any event may take: the event path is stuck", age.Round(time.Second), limit)
	}
	ctx, cancel := context.WithTimeout(ctx, f.probeTimeout)
	defer cancel()
	// The probe comes from within: it carries no sender token, and probeKey lets it through.
	req, err := http.NewRequestWithContext(context.WithValue(ctx, probeKey{}, true), http.MethodPost, "/", bytes.NewReader([]byte(probePod)))
	if err != nil {
		return false, fmt.Errorf("building the liveness probe event: %w", err)
	}
	for k, v := range map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "liveness-probe", "Ce-Source": names.ReplySource + "/liveness",
		"Ce-Type": "dev.knative.apiserver.resource.update", "Content-Type": "application/json",
	} {
		req.Header.Set(k, v)
	}
	answered := make(chan struct{})
	go func() {
		defer close(answered) // a late answer is dropped with the recorder
		f.Handle(httptest.NewRecorder(), req)
	}()
	select {
	case <-answered:
		return true, nil
	case <-ctx.Done():
		return false, fmt.Errorf("the event path did not answer a probe event within %s: it is stuck", f.probeTimeout)
	}
}
