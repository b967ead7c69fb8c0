// Package telemetry is the function's observability: OpenTelemetry metrics (exported for
// Prometheus on the function's own port at /metrics, and pushed with OTLP when the standard
// OTEL_* variables ask for it), traces continued from the CloudEvents traceparent, and the one
// JSON log format shared with the func-go runtime.
package telemetry

// Metric names, as OpenTelemetry instruments. The Prometheus exporter shows them with dots as
// underscores, the unit as a suffix (_seconds) and counters with _total: Series lists those.
const (
	// Decisions counts decisions by action and reason.
	Decisions = "vpagracefuldrain.decisions"
	// DrainDuration is how long each finished drain held its pod, by reason and owner_kind.
	DrainDuration = "vpagracefuldrain.drain.duration"
	// DrainsInProgress is the number of drains this replica is waiting on.
	DrainsInProgress = "vpagracefuldrain.drains.in_progress"
	// DrainsOverdue is the number of pods the last sweep found held past their deadline (a
	// bug or a refused patch: should stay 0).
	DrainsOverdue = "vpagracefuldrain.drains.overdue"
	// Events counts the events received, by CloudEvents type (one the function handles, or
	// TypeOther) and HTTP status code.
	Events = "vpagracefuldrain.events"
	// EventDuration is the time to handle one event.
	EventDuration = "vpagracefuldrain.event.duration"
	// APIRequests counts the requests made to the Kubernetes API, by verb and status code.
	APIRequests = "vpagracefuldrain.api.requests"
	// Sweeps counts sweeps by result (ok, failed).
	Sweeps = "vpagracefuldrain.sweeps"
	// SweepPods, SweepWrites and SweepFailures count what the sweeps saw and did.
	SweepPods     = "vpagracefuldrain.sweep.pods"
	SweepWrites   = "vpagracefuldrain.sweep.writes"
	SweepFailures = "vpagracefuldrain.sweep.failures"
	// SweepDuration is the time one sweep took.
	SweepDuration = "vpagracefuldrain.sweep.duration"
	// CapacityGap is, for each eviction of a Deployment's or StatefulSet's pod, the seconds
	// from the eviction until the owner was back at its desired number of Ready replicas: what
	// the eviction cost the service. By owner_kind and namespace.
	CapacityGap = "vpagracefuldrain.capacity_gap"
	// ClockOffset is the API server's clock minus this replica's, in seconds, as learned from
	// the Date headers of the API server's answers: drains are timed on the API server's
	// clock, so a replica whose clock is off still holds each pod as long as it should.
	ClockOffset = "vpagracefuldrain.api_server.clock_offset"
	// SurgeRollouts counts surge-rollout decisions applied, by outcome (started, completed,
	// aborted, released, skipped, failed).
	SurgeRollouts = "vpagracefuldrain.surge_rollouts"
	// SurgeRolloutDuration is, per surge rollout that ended, the seconds from its start to its
	// end, by outcome (completed, aborted, released).
	SurgeRolloutDuration = "vpagracefuldrain.surge_rollout.duration"
	// SurgeRolloutCapacityGap is, per surge rollout that ended, its capacity gap: the most
	// replicas short of Ready pods seen while it rolled (0 is the point), by outcome.
	SurgeRolloutCapacityGap = "vpagracefuldrain.surge_rollout.capacity_gap"
)

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
