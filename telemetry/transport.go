package telemetry

import (
	"context"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"knative.dev/pkg/network"

	"function/names"
)

// WrapTransport counts every Kubernetes API request by verb and status code and makes a
// client span for it, a child of the span in the request's context (the event's).
func (t *Telemetry) WrapTransport(rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	return network.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		verb, resource := APIVerb(req.Method, req.URL.Path, req.URL.Query().Get("watch") == "true")
		ctx, span := t.tracer.Start(req.Context(), "k8s "+verb+" "+resource, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("url.path", req.URL.Path)))
		defer span.End()
		resp, err := rt.RoundTrip(req.WithContext(ctx))
		code := 0
		if resp != nil {
			code = resp.StatusCode
			span.SetAttributes(attribute.Int("http.response.status_code", code))
		}
		if err != nil || code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
		t.APIRequest(ctx, verb, code)
		return resp, err
	})
}

// APIVerb is the Kubernetes verb of an API request (get, list, watch, create, update, patch,
// delete, deletecollection) and the resource it is about (with its subresource).
func APIVerb(method, path string, watch bool) (verb, resource string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// /api/v1/... or /apis/GROUP/VERSION/...
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(method), path
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:] // namespaced: the resource follows the namespace
	}
	named := len(parts) >= 2
	if len(parts) > 0 {
		resource = parts[0]
		if len(parts) >= 3 {
			resource += "/" + parts[2]
		}
	}
	switch method {
	case http.MethodGet:
		switch {
		case watch:
			return "watch", resource
		case named:
			return "get", resource
		}
		return "list", resource
	case http.MethodPost:
		return "create", resource
	case http.MethodPut:
		return "update", resource
	case http.MethodPatch:
		return "patch", resource
	case http.MethodDelete:
		if named {
			return "delete", resource
		}
		return "deletecollection", resource
	}
	return strings.ToLower(method), resource
}

// The CloudEvents distributed-tracing extension carries W3C trace context in these attributes.
const (
	ExtensionTraceparent = "traceparent"
	ExtensionTracestate  = "tracestate"
)

var traceContext = propagation.TraceContext{}

// StartEvent starts the span of one event, continuing the trace its traceparent extension
// carries (a new trace when it has none).
func (t *Telemetry) StartEvent(ctx context.Context, e event.Event) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx) // a no-op span
	}
	ctx = traceContext.Extract(ctx, carrierOf(e))
	return t.tracer.Start(ctx, names.SpanEvent, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("cloudevents.event_type", e.Type()), attribute.String("cloudevents.event_subject", e.Subject()),
			attribute.String("cloudevents.event_id", e.ID())))
}

// extensionCarrier is an event's extensions as a read-only propagation.TextMapCarrier (to
// extract from): its distributed-tracing extensions are the W3C trace context headers. Only
// string values count.
type extensionCarrier map[string]any

// carrierOf is e's extensions, read in place (Event.Extensions copies the map on every call).
func carrierOf(e event.Event) extensionCarrier {
	if c, ok := e.Context.(*event.EventContextV1); ok && c != nil {
		return c.Extensions
	}
	return e.Extensions()
}

func (c extensionCarrier) Get(key string) string {
	v, _ := c[key].(string)
	return v
}

// Set does nothing: the event read is not changed (InjectEvent writes a reply's).
func (c extensionCarrier) Set(string, string) {}

func (c extensionCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectEvent puts the trace context of ctx into a reply's distributed-tracing extension.
func InjectEvent(ctx context.Context, e *event.Event) {
	traceContext.Inject(ctx, replyCarrier{e})
}

// replyCarrier sets what the propagator injects as extensions of the event.
type replyCarrier struct{ e *event.Event }

func (c replyCarrier) Get(key string) string {
	return carrierOf(*c.e).Get(key)
}

func (c replyCarrier) Set(key, value string) { c.e.SetExtension(key, value) }

func (c replyCarrier) Keys() []string { return carrierOf(*c.e).Keys() }
