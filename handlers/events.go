package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"function/names"
)

// EventRecorder writes a Kubernetes Event about a pod, or about another object (a pod's owner).
type EventRecorder interface {
	Record(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) error
	RecordFor(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string) error
}

// APIEventRecorder writes core/v1 Events synchronously, so a caller (and a test) knows each
// one was written when Record returns.
type APIEventRecorder struct {
	Client kubernetes.Interface
	Now    func() time.Time
}

// Record creates one Event whose involvedObject is pod.
func (r APIEventRecorder) Record(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) error {
	return r.RecordFor(ctx, podRef(pod), eventType, reason, message)
}

// podRef is the Event's reference to a pod.
func podRef(pod *corev1.Pod) corev1.ObjectReference {
	return corev1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
	}
}

// RecordFor creates one Event whose involvedObject is ref, in ref's namespace.
func (r APIEventRecorder) RecordFor(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string) error {
	now := metav1.NewTime(r.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ref.Name + ".",
			Namespace:    ref.Namespace,
		},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             message,
		Type:                eventType,
		Source:              corev1.EventSource{Component: names.Component},
		ReportingController: names.ReportingController,
		ReportingInstance:   names.Component,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
	}
	if _, err := r.Client.CoreV1().Events(ref.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating event %s for %s %s/%s: %w", reason, strings.ToLower(ref.Kind), ref.Namespace, ref.Name, err)
	}
	return nil
}

// AsyncEvents writes Events in the background, one at a time in the order they were recorded,
// so that the request that decided never waits for an Event: with the ApiServerSource adapter
// delivering events one at a time, a synchronous Event would slow every later pod's event.
// Events are best-effort (as client-go's own recorder makes them): when the queue is full an
// Event is dropped, counted and logged. Run writes them; it returns once its ctx has ended and
// the queue is flushed (for at most flushTimeout).
type AsyncEvents struct {
	next    EventRecorder
	log     *slog.Logger
	queue   chan queuedEvent
	dropped atomic.Int64
}

type queuedEvent struct {
	ctx                        context.Context
	ref                        corev1.ObjectReference
	eventType, reason, message string
}

// eventTimeout bounds one Event write; flushTimeout bounds the flush at shutdown.
const (
	eventTimeout = 10 * time.Second
	flushTimeout = 5 * time.Second
)

// NewAsyncEvents queues up to size Events for next.
func NewAsyncEvents(next EventRecorder, size int, log *slog.Logger) *AsyncEvents {
	return &AsyncEvents{next: next, log: log, queue: make(chan queuedEvent, max(size, 1))}
}

// Record queues an Event about the pod.
func (a *AsyncEvents) Record(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) error {
	return a.RecordFor(ctx, podRef(pod), eventType, reason, message)
}

// RecordFor queues an Event about ref. The Event keeps ctx's values (its trace) but not its
// cancellation: the request that recorded it ends first. It fails only when the queue is full.
func (a *AsyncEvents) RecordFor(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string) error {
	select {
	case a.queue <- queuedEvent{ctx: context.WithoutCancel(ctx), ref: ref, eventType: eventType, reason: reason, message: message}:
		return nil
	default:
		a.dropped.Add(1)
		return fmt.Errorf("event %s for %s %s/%s dropped: %d Events queued already", reason, strings.ToLower(ref.Kind), ref.Namespace, ref.Name, cap(a.queue))
	}
}

// Dropped is how many Events were dropped because the queue was full.
func (a *AsyncEvents) Dropped() int64 { return a.dropped.Load() }

// Run writes the queued Events until ctx ends, then those still queued, for at most
// flushTimeout.
func (a *AsyncEvents) Run(ctx context.Context) {
	for {
		select {
		case q := <-a.queue:
			a.write(q)
		case <-ctx.Done():
			flush := time.NewTimer(flushTimeout)
			defer flush.Stop()
			for {
				select {
				case q := <-a.queue:
					a.write(q)
				case <-flush.C:
					a.log.Warn("Events not written at shutdown", slog.Int("queued", len(a.queue)))
					return
				default:
					return
				}
			}
		}
	}
}

func (a *AsyncEvents) write(q queuedEvent) {
	ctx, cancel := context.WithTimeout(q.ctx, eventTimeout)
	defer cancel()
	if err := a.next.RecordFor(ctx, q.ref, q.eventType, q.reason, q.message); err != nil {
		a.log.WarnContext(ctx, "writing a Kubernetes Event failed", slog.String("error", err.Error()))
	}
}
