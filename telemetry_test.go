package function_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"k8s.io/client-go/kubernetes/fake"

	function "function"
	"function/eventing"
	"function/names"
	"function/telemetry"
)

// A trace from the sender's traceparent through the function to its reply; the event and its
// decision are counted in the metrics served on the function's own port, and logged in one
// line of the runtime's shape.
func TestTraceMetricsAndLogOfOneEvent(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{SpanExporter: spans, EventTypes: eventing.HandledTypes()})
	require.NoError(t, err)
	var logs bytes.Buffer
	c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
	f := started(t, c, nil, function.WithTelemetry(tel), function.WithLogger(telemetry.NewLogger(&logs, slog.LevelDebug)))
	base := served(t, f)

	header, body := readSample(t, "managed-pod-added.http")
	header.Set("Ce-Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, _ := post(t, base+"/", header, body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, names.ReplyFinalizerAdded, resp.Header.Get("Ce-Type"))

	// The trace: the event's span continues the sender's, and the reply continues the event's.
	var eventSpan tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.Name == "vpagracefuldrain.event" {
			eventSpan = s
		}
	}
	require.Equal(t, "vpagracefuldrain.event", eventSpan.Name)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", eventSpan.SpanContext.TraceID().String())
	assert.Equal(t, "00f067aa0ba902b7", eventSpan.Parent.SpanID().String())
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-"+eventSpan.SpanContext.SpanID().String()+"-01", resp.Header.Get("Ce-Traceparent"))

	// The metrics, on the function's port.
	got, err := http.Get(base + function.MetricsPath)
	require.NoError(t, err)
	defer got.Body.Close()
	text, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	assert.Contains(t, string(text), `vpagracefuldrain_decisions_total{action="add-finalizer",reason="managed"} 1`)
	assert.Contains(t, string(text), `vpagracefuldrain_events_total{code="200",type="dev.knative.apiserver.resource.add"} 1`)

	// One line for the decision, in the runtime's shape, naming the pod and what was done.
	var decision map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "every line is JSON: %s", line)
		for _, k := range []string{"level", "time", "message"} {
			assert.Contains(t, m, k, line)
		}
		if m["message"] == "decision" {
			decision = m
		}
	}
	require.NotNil(t, decision, "a decision line in:\n%s", logs.String())
	assert.Equal(t, "info", decision["level"])
	assert.Equal(t, "default", decision["namespace"])
	assert.Equal(t, "web-7d9f8-abcde", decision["pod"])
	assert.Equal(t, "0c7f6a52-3d0e-4f7a-9a35-1d1f8b6f2a10", decision["uid"])
	assert.Equal(t, "add-finalizer", decision["action"])
	assert.Equal(t, true, decision["applied"])
	assert.NotContains(t, logs.String(), `"spec"`, "no pod specs in the logs")
}
