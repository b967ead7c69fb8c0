// Package telemetry is the function's observability: OpenTelemetry metrics (exported for
// Prometheus on the function's own port at /metrics, and pushed with OTLP when the standard
// OTEL_* variables ask for it), traces continued from the CloudEvents traceparent, and the one
// JSON log format shared with the func-go runtime.
package telemetry

// Attribute (label) names.
const (
	AttrAction    = "action"
	AttrReason    = "reason"
	AttrOwnerKind = "owner_kind"
	AttrNamespace = "namespace"
	AttrType      = "type"
	AttrCode      = "code"
	AttrVerb      = "verb"
	AttrResult    = "result"
	AttrOutcome   = "outcome"
)

// Series returns the Prometheus names of the series the function exports (a histogram also
// has the _bucket, _sum and _count series of its name).
func Series() []string {
	return []string{
		"vpagracefuldrain_decisions_total",
		"vpagracefuldrain_drain_duration_seconds",
		"vpagracefuldrain_drains_in_progress",
		"vpagracefuldrain_drains_overdue",
		"vpagracefuldrain_events_total",
		"vpagracefuldrain_event_duration_seconds",
		"vpagracefuldrain_api_requests_total",
		"vpagracefuldrain_sweeps_total",
		"vpagracefuldrain_sweep_pods_total",
		"vpagracefuldrain_sweep_writes_total",
		"vpagracefuldrain_sweep_failures_total",
		"vpagracefuldrain_sweep_duration_seconds",
		"vpagracefuldrain_capacity_gap_seconds",
		"vpagracefuldrain_api_server_clock_offset_seconds",
		"vpagracefuldrain_surge_rollouts_total",
		"vpagracefuldrain_surge_rollout_duration_seconds",
		"vpagracefuldrain_surge_rollout_capacity_gap",
	}
}

// IsHistogram reports whether a series of Series is a histogram (exported as its _bucket,
// _sum and _count series).
func IsHistogram(series string) bool {
	switch series {
	case "vpagracefuldrain_drain_duration_seconds", "vpagracefuldrain_event_duration_seconds",
		"vpagracefuldrain_sweep_duration_seconds", "vpagracefuldrain_capacity_gap_seconds", "vpagracefuldrain_surge_rollout_duration_seconds",
		"vpagracefuldrain_surge_rollout_capacity_gap":
		return true
	}
	return false
}
