package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"function/eventing"
	"function/names"
	"function/telemetry"
)

func newTelemetry(t *testing.T) (*telemetry.Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{SpanExporter: spans, EventTypes: eventing.HandledTypes()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, spans
}

func scrape(t *testing.T, tel *telemetry.Telemetry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}

// Every series in telemetry.Series is exported under that exact Prometheus name, with its labels.
func TestEverySeriesIsExported(t *testing.T) {
	tel, _ := newTelemetry(t)
	ctx := context.Background()
	require.NoError(t, tel.SetGauges(func() int64 { return 3 }, func() int64 { return 1 }))
	require.NoError(t, tel.SetClockOffset(func() time.Duration { return -2500 * time.Millisecond }))
	tel.Decision(ctx, "remove-finalizer", "replaced")
	tel.Drain(ctx, "replaced", "Deployment", 12.5)
	tel.CapacityGap(ctx, "Deployment", "shop", 7)
	tel.Event(ctx, "dev.knative.apiserver.resource.update", 200, 3*time.Millisecond)
	tel.APIRequest(ctx, "patch", 200)
	tel.Sweep(ctx, 10, 2, 1, time.Second, errors.New("list failed"))
	tel.SurgeRollout(ctx, "started", -1, 0)
	tel.SurgeRollout(ctx, "completed", 11.4, 0)
	tel.SurgeRollout(ctx, "aborted", 30, 1)

	text := scrape(t, tel)
	for _, name := range telemetry.Series() {
		assert.Regexp(t, `(?m)^`+name+`(_bucket|_sum|_count)?[{ ]`, text, "series %s", name)
	}
	for _, line := range []string{
		`vpagracefuldrain_decisions_total{action="remove-finalizer",reason="replaced"} 1`,
		`vpagracefuldrain_drain_duration_seconds_sum{owner_kind="Deployment",reason="replaced"} 12.5`,
		`vpagracefuldrain_capacity_gap_seconds_count{namespace="shop",owner_kind="Deployment"} 1`,
		`vpagracefuldrain_surge_rollouts_total{outcome="started"} 1`,
		`vpagracefuldrain_surge_rollout_duration_seconds_sum{outcome="completed"} 11.4`,
		`vpagracefuldrain_surge_rollout_capacity_gap_bucket{outcome="completed",le="0"} 1`,
		`vpagracefuldrain_surge_rollout_capacity_gap_bucket{outcome="aborted",le="0"} 0`,
		`vpagracefuldrain_surge_rollout_capacity_gap_sum{outcome="aborted"} 1`,
		`vpagracefuldrain_events_total{code="200",type="dev.knative.apiserver.resource.update"} 1`,
		`vpagracefuldrain_api_requests_total{code="200",verb="patch"} 1`,
		`vpagracefuldrain_sweeps_total{result="failed"} 1`,
		`vpagracefuldrain_sweeps_total{result="ok"} 0`,
		`vpagracefuldrain_sweep_pods_total 10`,
		`vpagracefuldrain_drains_in_progress 3`,
		`vpagracefuldrain_drains_overdue 1`,
		`vpagracefuldrain_api_server_clock_offset_seconds -2.5`,
	} {
		assert.Contains(t, text, line)
	}
}

// The type label of vpagracefuldrain_events_total comes from a closed set: every type the
// function handles as itself, anything a sender makes up as "other".
func TestEventTypeLabelIsClosed(t *testing.T) {
	tests := []struct {
		ceType, label string
	}{
		{"dev.knative.apiserver.resource.add", "dev.knative.apiserver.resource.add"},
		{"dev.knative.apiserver.resource.update", "dev.knative.apiserver.resource.update"},
		{"dev.knative.apiserver.resource.delete", "dev.knative.apiserver.resource.delete"},
		{"dev.knative.apiserver.ref.add", "dev.knative.apiserver.ref.add"},
		{"dev.knative.apiserver.ref.update", "dev.knative.apiserver.ref.update"},
		{"dev.knative.apiserver.ref.delete", "dev.knative.apiserver.ref.delete"},
		{names.TypeSweep, names.TypeSweep},
		{names.TypePing, names.TypePing},
		{"com.example.unknown", telemetry.TypeOther},
		{"", telemetry.TypeOther},
		{"DEV.KNATIVE.APISERVER.RESOURCE.ADD", telemetry.TypeOther},
		{"dev.knative.apiserver.resource.add ", telemetry.TypeOther},
		{strings.Repeat("x", 10_000), telemetry.TypeOther},
		{names.ReplyFinalizerAdded, telemetry.TypeOther}, // a reply type is not one received
	}
	handled := 0
	for _, tt := range tests {
		if tt.label != telemetry.TypeOther {
			handled++
		}
	}
	require.Len(t, eventing.HandledTypes(), handled, "a row for every handled type")
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40s", tt.ceType), func(t *testing.T) {
			tel, _ := newTelemetry(t)
			tel.Event(context.Background(), tt.ceType, 400, time.Millisecond)
			tel.Event(context.Background(), tt.ceType, 400, time.Millisecond)
			text := scrape(t, tel)
			assert.Contains(t, text, `vpagracefuldrain_events_total{code="400",type="`+tt.label+`"} 2`)
			assert.Equal(t, 1, strings.Count(text, "vpagracefuldrain_events_total{"), "one series")
		})
	}
}

func TestAPIVerb(t *testing.T) {
	tests := []struct {
		method, path string
		watch        bool
		verb, res    string
	}{
		{"GET", "/api/v1/namespaces/ns/pods/web-1", false, "get", "pods"},
		{"GET", "/api/v1/namespaces/ns/pods", false, "list", "pods"},
		{"GET", "/api/v1/pods", false, "list", "pods"},
		{"GET", "/api/v1/namespaces/ns/configmaps", true, "watch", "configmaps"},
		{"PATCH", "/api/v1/namespaces/ns/pods/web-1", false, "patch", "pods"},
		{"PATCH", "/api/v1/namespaces/ns/pods/web-1/status", false, "patch", "pods/status"},
		{"POST", "/api/v1/namespaces/ns/events", false, "create", "events"},
		{"POST", "/api/v1/namespaces/ns/pods/web-1/eviction", false, "create", "pods/eviction"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/sweep", false, "update", "leases"},
		{"GET", "/apis/apps/v1/namespaces/ns/deployments/web", false, "get", "deployments"},
		{"DELETE", "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/web", false, "delete", "poddisruptionbudgets"},
		{"GET", "/api/v1/namespaces/ns", false, "get", "namespaces"},
		{"GET", "/version", false, "get", "/version"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			verb, res := telemetry.APIVerb(tt.method, tt.path, tt.watch)
			assert.Equal(t, tt.verb, verb)
			assert.Equal(t, tt.res, res)
		})
	}
}

// An event's span continues the trace of its traceparent; API calls made for it are its
// children and counted; the reply carries the event's trace context.
func TestTraceFromTheEventToTheReplyAndTheAPICalls(t *testing.T) {
	tel, spans := newTelemetry(t)
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := event.New()
	in.SetID("1")
	in.SetType("dev.knative.apiserver.resource.update")
	in.SetSource("https://127.0.0.1:6443")
	in.SetExtension(telemetry.ExtensionTraceparent, incoming)

	ctx, span := tel.StartEvent(context.Background(), in)
	api := tel.WrapTransport(roundTrip(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusUnprocessableEntity, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	}))
	req := httptest.NewRequest(http.MethodPatch, "https://api/api/v1/namespaces/ns/pods/web-1", nil).WithContext(ctx)
	_, err := api.RoundTrip(req)
	require.NoError(t, err)
	reply := event.New()
	telemetry.InjectEvent(ctx, &reply)
	span.End()

	got := spans.GetSpans()
	require.Len(t, got, 2)
	apiSpan, eventSpan := got[0], got[1]
	assert.Equal(t, "vpagracefuldrain.event", eventSpan.Name)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", eventSpan.SpanContext.TraceID().String(), "the event continues the incoming trace")
	assert.Equal(t, "00f067aa0ba902b7", eventSpan.Parent.SpanID().String(), "its parent is the sender's span")
	assert.Equal(t, "k8s patch pods", apiSpan.Name)
	assert.Equal(t, eventSpan.SpanContext.SpanID(), apiSpan.Parent.SpanID(), "the API call is a child of the event")

	tp, ok := reply.Extensions()[telemetry.ExtensionTraceparent].(string)
	require.True(t, ok, "the reply carries traceparent")
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-"+eventSpan.SpanContext.SpanID().String()+"-01", tp)
	assert.Contains(t, scrape(t, tel), `vpagracefuldrain_api_requests_total{code="422",verb="patch"} 1`)
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The function's log lines have the func-go runtime's shape: level, time (Unix seconds), message.
func TestLogLineShape(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, slog.LevelDebug)
	log.Info("decision", slog.String("namespace", "shop"), slog.String("pod", "web-1"), slog.String("action", "remove-finalizer"))
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	assert.Equal(t, "info", line["level"])
	assert.Equal(t, "decision", line["message"])
	assert.InDelta(t, float64(time.Now().Unix()), line["time"], 5)
	assert.Equal(t, "web-1", line["pod"])
	assert.NotContains(t, line, "msg")

}
