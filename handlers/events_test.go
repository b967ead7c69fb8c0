package handlers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers"
)

// recorded is an EventRecorder that keeps the reasons it was given, and can be held.
type recorded struct {
	mu      sync.Mutex
	reasons []string
	ctxErr  []error
	hold    chan struct{} // nil: never held
}

func (r *recorded) Record(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) error {
	return r.RecordFor(ctx, corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name}, eventType, reason, message)
}

func (r *recorded) RecordFor(ctx context.Context, _ corev1.ObjectReference, _, reason, _ string) error {
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
	r.ctxErr = append(r.ctxErr, ctx.Err())
	return nil
}

func (r *recorded) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func eventPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u"}}
}

// Events are written in the order they were recorded, after the request that recorded them
// ended (its cancellation is not theirs), and the ones still queued are written at shutdown.
func TestAsyncEventsWritesInOrderAfterTheRequest(t *testing.T) {
	next := &recorded{hold: make(chan struct{})}
	a := handlers.NewAsyncEvents(next, 16, quiet)
	reqCtx, endRequest := context.WithCancel(context.Background())
	for _, reason := range []string{"DrainStarted", "DrainWaiting", "DrainCompleted"} {
		require.NoError(t, a.Record(reqCtx, eventPod(), corev1.EventTypeNormal, reason, "m"))
	}
	endRequest()
	assert.Empty(t, next.got(), "nothing written before Run")

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(runCtx); close(done) }()
	close(next.hold)
	require.Eventually(t, func() bool { return len(next.got()) == 3 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"DrainStarted", "DrainWaiting", "DrainCompleted"}, next.got())
	assert.Equal(t, []error{nil, nil, nil}, next.ctxErr, "the request's end does not cancel its Events")

	// Queued when Run's context ends: flushed before Run returns.
	next.hold = make(chan struct{})
	require.NoError(t, a.Record(context.Background(), eventPod(), corev1.EventTypeNormal, "FinalizerRemoved", "m"))
	stop()
	close(next.hold)
	<-done
	assert.Equal(t, []string{"DrainStarted", "DrainWaiting", "DrainCompleted", "FinalizerRemoved"}, next.got())
}

// A full queue drops the Event, says so, and counts it; nothing blocks the caller.
func TestAsyncEventsDropsWhenFull(t *testing.T) {
	a := handlers.NewAsyncEvents(&recorded{}, 2, quiet)
	require.NoError(t, a.Record(context.Background(), eventPod(), corev1.EventTypeNormal, "One", "m"))
	require.NoError(t, a.Record(context.Background(), eventPod(), corev1.EventTypeNormal, "Two", "m"))
	err := a.Record(context.Background(), eventPod(), corev1.EventTypeNormal, "Three", "m")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "event Three for pod ns/p dropped")
	assert.EqualValues(t, 1, a.Dropped())
	assert.False(t, errors.Is(err, context.Canceled))
}
