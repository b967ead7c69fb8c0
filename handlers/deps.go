package handlers

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Deps are what the function's controllers share: the clients (Client nil: no cluster),
// the clock (Now: the API server's, decisions are made on it), the log, the Kubernetes Event
// recorder, the metrics, and dry-run. Each controller (Reconciler, OwnerChecks, Sweeper,
// Releaser, SurgeController) holds its own copy; NewDeps makes one, UseServerClock moves it to
// the API server's time.
type Deps struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Clock   clock.WithTicker
	Now     func() time.Time
	Log     *slog.Logger
	Events  EventRecorder
	Metrics Metrics
	DryRun  bool
}

// NewDeps are the Deps of a process on client (nil: no cluster, which is dry-run): real
// time, Kubernetes Events written through the API.
func NewDeps(client kubernetes.Interface, dryRun bool, log *slog.Logger) Deps {
	c := clock.RealClock{}
	d := Deps{Client: client, Clock: c, Log: log, DryRun: dryRun || client == nil}
	if client != nil {
		d.Events = APIEventRecorder{Client: client, Now: c.Now}
	}
	return d
}

// UseServerClock makes decisions, and the Events' times, follow c's time (the API server's).
func (d Deps) UseServerClock(c *ServerClock) Deps {
	d.Now = c.Now
	if e, ok := d.Events.(APIEventRecorder); ok {
		e.Now = c.Now
		d.Events = e
	}
	return d
}

// now is the time decisions are made on: Now, else Clock, else the real time.
func (d Deps) now() time.Time {
	switch {
	case d.Now != nil:
		return d.Now()
	case d.Clock != nil:
		return d.Clock.Now()
	}
	return time.Now()
}

// metrics is Metrics, or one that records nothing.
func (d Deps) metrics() Metrics {
	if d.Metrics == nil {
		return noMetrics{}
	}
	return d.Metrics
}

// clock is Clock, or the real one.
func (d Deps) clock() clock.WithTicker {
	if d.Clock == nil {
		return clock.RealClock{}
	}
	return d.Clock
}

// recordEvent runs record when there is a recorder. An Event is a report, never part of a
// decision: a failure is logged, not returned.
func (d Deps) recordEvent(ctx context.Context, log *slog.Logger, record func() error) {
	if d.Events == nil {
		return
	}
	if err := record(); err != nil {
		log.WarnContext(ctx, "could not record Kubernetes Event", slog.String("error", err.Error()))
	}
}

// event records a Kubernetes Event on the pod (see recordEvent).
func (d Deps) event(ctx context.Context, pod *corev1.Pod, eventType, reason, msg string) {
	d.recordEvent(ctx, d.Log.With(podAttrs(pod)), func() error { return d.Events.Record(ctx, pod, eventType, reason, msg) })
}

// ErrNoCluster is returned for work that needs the cluster while there is none.
var ErrNoCluster = errors.New("no cluster configured (dry-run without a cluster): the pod cannot be read")

// podAttrs names the pod in a log line: namespace, pod, uid and the resourceVersion decided on.
func podAttrs(pod *corev1.Pod) slog.Attr {
	return slog.Group("", slog.String("namespace", pod.Namespace), slog.String("pod", pod.Name),
		slog.String("uid", string(pod.UID)), slog.String("resourceVersion", pod.ResourceVersion))
}
