package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"function/names"
)

// ServiceName names the function in traces and OTLP metrics.
const ServiceName = names.Component

// Telemetry holds the function's meter and tracer providers. It is created once per process
// (New) and passed where it is needed: nothing here is global. A nil *Telemetry records
// nothing (a request before the function started).
type Telemetry struct {
	meters   *sdkmetric.MeterProvider
	tracers  *sdktrace.TracerProvider
	registry *prometheus.Registry
	tracer   trace.Tracer

	decisions, events, apiRequests, sweeps, sweepPods, sweepWrites, sweepFailures, surgeRollouts metric.Int64Counter
	drainDuration, eventDuration, sweepDuration, capacityGap, surgeDuration                      metric.Float64Histogram
	surgeGap                                                                                     metric.Int64Histogram
	inProgress, overdue                                                                          metric.Int64ObservableGauge
	clockOffset                                                                                  metric.Float64ObservableGauge

	// The attribute sets of the metrics recorded for every event and API request.
	decisionSets, eventSets, apiSets attrCache
	// handled are Options.EventTypes.
	handled map[string]bool
}

// Options adjust New (tests).
type Options struct {
	// Env is the environment the OTEL_* variables are read from (nil: none set).
	Env map[string]string
	// SpanExporter, when set, receives every span (tests); OTLP is still configured by Env.
	SpanExporter sdktrace.SpanExporter
	// EventTypes are the CloudEvents types the function handles (eventing.HandledTypes): the
	// events metric labels these by name, any other as TypeOther.
	EventTypes []string
}

// OTLP is on when one of these standard variables is set (the exporters read the rest of the
// OTEL_EXPORTER_OTLP_* variables themselves).
func otlpTraces(env map[string]string) bool {
	return env["OTEL_TRACES_EXPORTER"] == "otlp" || env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "" || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != ""
}

func otlpMetrics(env map[string]string) bool {
	return env["OTEL_METRICS_EXPORTER"] == "otlp" || env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "" || env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] != ""
}

// New sets up metrics (a Prometheus registry served by MetricsHandler, plus OTLP push when the
// OTEL_* variables ask for it) and tracing (spans always made, so trace context reaches the
// replies; exported with OTLP only when asked). It makes no network call.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(ServiceName))
	t := &Telemetry{registry: prometheus.NewRegistry(),
		decisionSets: attrCache{key1: AttrAction, key2: AttrReason},
		eventSets:    attrCache{key1: AttrType, key2: AttrCode},
		apiSets:      attrCache{key1: AttrVerb, key2: AttrCode}, handled: map[string]bool{}}
	for _, typ := range o.EventTypes {
		t.handled[typ] = true
	}
	promExporter, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("creating the Prometheus exporter: %w", err)
	}
	readers := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExporter)}
	if otlpMetrics(o.Env) {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("creating the OTLP metric exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	t.meters = sdkmetric.NewMeterProvider(readers...)

	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))}
	if otlpTraces(o.Env) {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(exp))
	}
	if o.SpanExporter != nil {
		traceOpts = append(traceOpts, sdktrace.WithSyncer(o.SpanExporter))
	}
	t.tracers = sdktrace.NewTracerProvider(traceOpts...)
	t.tracer = t.tracers.Tracer(ServiceName)
	if err := t.instruments(); err != nil {
		return nil, err
	}
	return t, nil
}

// durations are the histogram buckets of drains and capacity gaps, in seconds.
var durations = []float64{0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 3600}

// latencies are the buckets of event and sweep handling, in seconds.
var latencies = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25}

func (t *Telemetry) instruments() error {
	m := t.meters.Meter(ServiceName)
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	histogram := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	gauge := func(name, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	t.decisions = counter(names.MetricDecisions, "Decisions, by action and reason.")
	t.events = counter(names.MetricEvents, "Events received, by CloudEvents type and HTTP status code.")
	t.apiRequests = counter(names.MetricAPIRequests, "Requests to the Kubernetes API, by verb and status code.")
	t.sweeps = counter(names.MetricSweeps, "Sweeps of every pod, by result.")
	t.sweepPods = counter(names.MetricSweepPods, "Pods the sweeps looked at.")
	t.sweepWrites = counter(names.MetricSweepWrites, "Writes the sweeps made.")
	t.sweepFailures = counter(names.MetricSweepFailures, "Pods the sweeps failed to reconcile.")
	t.drainDuration = histogram(names.MetricDrainDuration, "How long finished drains held their pod, by reason and owner kind.", durations)
	t.capacityGap = histogram(names.MetricCapacityGap, "Per eviction of a Deployment's or StatefulSet's pod: seconds from the eviction until the owner was back at its desired Ready replicas.", durations)
	t.surgeRollouts = counter(names.MetricSurgeRollouts, "Surge-rollout decisions applied, by outcome.")
	t.surgeDuration = histogram(names.MetricSurgeRolloutDuration, "Per surge rollout that ended: seconds from its start to its end, by outcome.", durations)
	var err error
	t.surgeGap, err = m.Int64Histogram(names.MetricSurgeRolloutCapacityGap, metric.WithExplicitBucketBoundaries(0, 1, 2, 3, 5, 10, 20),
		metric.WithDescription("Per surge rollout that ended: the most replicas short of Ready pods seen while it rolled (0 is the point), by outcome."))
	errs = append(errs, err)
	t.eventDuration = histogram(names.MetricEventDuration, "Time to handle one event.", latencies)
	t.sweepDuration = histogram(names.MetricSweepDuration, "Time one sweep took.", latencies)
	// Both results from the start, so increase() sees the first failed sweep.
	for _, r := range []string{"ok", "failed"} {
		t.sweeps.Add(context.Background(), 0, metric.WithAttributes(attribute.String(AttrResult, r)))
	}
	t.inProgress = gauge(names.MetricDrainsInProgress, "Drains this replica is waiting on.")
	t.overdue = gauge(names.MetricDrainsOverdue, "Pods the last sweep found held past their deadline.")
	t.clockOffset, err = m.Float64ObservableGauge(names.MetricClockOffset, metric.WithUnit("s"),
		metric.WithDescription("The API server's clock minus this replica's (drains are timed on the API server's)."))
	errs = append(errs, err)
	return errors.Join(errs...)
}

// SetGauges sets what the two gauges report (once the reconciler exists; before, nothing).
func (t *Telemetry) SetGauges(inProgress, overdue func() int64) error {
	m := t.meters.Meter(ServiceName)
	_, err := m.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		obs.ObserveInt64(t.inProgress, inProgress())
		obs.ObserveInt64(t.overdue, overdue())
		return nil
	}, t.inProgress, t.overdue)
	if err != nil {
		return fmt.Errorf("registering the gauges: %w", err)
	}
	return nil
}

// SetClockOffset reports offset, the API server's clock minus this replica's, as the clock
// offset gauge (only in a cluster: in dry-run nothing is reported).
func (t *Telemetry) SetClockOffset(offset func() time.Duration) error {
	m := t.meters.Meter(ServiceName)
	_, err := m.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		obs.ObserveFloat64(t.clockOffset, offset().Seconds())
		return nil
	}, t.clockOffset)
	if err != nil {
		return fmt.Errorf("registering the clock offset gauge: %w", err)
	}
	return nil
}

// MetricsHandler serves the metrics in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	if t == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "starting: no metrics yet", http.StatusServiceUnavailable)
		})
	}
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Tracer makes the function's spans.
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// Flush sends what the OTLP exporters hold (metrics and spans).
func (t *Telemetry) Flush(ctx context.Context) error {
	return errors.Join(t.meters.ForceFlush(ctx), t.tracers.ForceFlush(ctx))
}

// Shutdown flushes and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.meters.Shutdown(ctx), t.tracers.Shutdown(ctx))
}

// Decision counts one decision.
func (t *Telemetry) Decision(ctx context.Context, action, reason string) {
	if t == nil {
		return
	}
	t.decisions.Add(ctx, 1, t.decisionSets.option(action, reason))
}

// Drain records a finished drain's duration.
func (t *Telemetry) Drain(ctx context.Context, reason, ownerKind string, seconds float64) {
	if t == nil {
		return
	}
	t.drainDuration.Record(ctx, seconds, metric.WithAttributes(attribute.String(AttrReason, reason), attribute.String(AttrOwnerKind, ownerKind)))
}

// SurgeRollout counts one surge-rollout decision applied; for a rollout that ended (completed,
// aborted, released: seconds >= 0) it records its duration and its capacity gap.
func (t *Telemetry) SurgeRollout(ctx context.Context, outcome string, seconds float64, gap int) {
	if t == nil {
		return
	}
	attrs := metric.WithAttributes(attribute.String(AttrOutcome, outcome))
	t.surgeRollouts.Add(ctx, 1, attrs)
	if seconds >= 0 {
		t.surgeDuration.Record(ctx, seconds, attrs)
		t.surgeGap.Record(ctx, int64(gap), attrs)
	}
}

// CapacityGap records what one eviction cost its owner.
func (t *Telemetry) CapacityGap(ctx context.Context, ownerKind, namespace string, seconds float64) {
	if t == nil {
		return
	}
	t.capacityGap.Record(ctx, seconds, metric.WithAttributes(attribute.String(AttrOwnerKind, ownerKind), attribute.String(AttrNamespace, namespace)))
}

// TypeOther is the type label of an event of a type the function does not handle: the label
// comes from a closed set (Options.EventTypes and this), whatever Ce-Type a sender writes.
const TypeOther = "other"

// Event counts one event received and the time it took. ceType is counted as is when the
// function handles it (Options.EventTypes), as TypeOther otherwise.
func (t *Telemetry) Event(ctx context.Context, ceType string, code int, took time.Duration) {
	if t == nil {
		return
	}
	if !t.handled[ceType] {
		ceType = TypeOther
	}
	t.events.Add(ctx, 1, t.eventSets.option(ceType, statusCode(code)))
	t.eventDuration.Record(ctx, took.Seconds())
}

// APIRequest counts one request to the Kubernetes API (code 0: no answer).
func (t *Telemetry) APIRequest(ctx context.Context, verb string, code int) {
	if t == nil {
		return
	}
	t.apiRequests.Add(ctx, 1, t.apiSets.option(verb, statusCode(code)))
}

// Sweep records one sweep.
func (t *Telemetry) Sweep(ctx context.Context, pods, writes, failures int, took time.Duration, err error) {
	if t == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "failed"
	}
	t.sweeps.Add(ctx, 1, metric.WithAttributes(attribute.String(AttrResult, result)))
	t.sweepPods.Add(ctx, int64(pods))
	t.sweepWrites.Add(ctx, int64(writes))
	t.sweepFailures.Add(ctx, int64(failures))
	t.sweepDuration.Record(ctx, took.Seconds())
}
