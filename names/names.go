// Package names is every name users of vpa-graceful-drain see: the finalizer, the annotations
// and labels it reads and writes, the objects it names, the Kubernetes Event reasons it
// records, the CloudEvent types it receives and replies with, and its metric names. They are
// part of the product (docs/configuration.md, docs/events.md, docs/observability.md): a
// change here is a breaking change. Every other package takes them from here; this one
// imports nothing.
package names

// Component is the field manager of every write, the source and reporting controller of the
// Kubernetes Events, and the value of LabelManagedBy.
const Component = "vpa-graceful-drain"

// ReportingController is the reporting controller of every Kubernetes Event the function
// records (the admission policy lets its account create Events only with it).
const ReportingController = "vpagracefuldrain.dev/" + Component

// SpanEvent is the name of the trace span of one event handled.
const SpanEvent = "vpagracefuldrain.event"

// Finalizer holds an evicted pod's API object while it drains.
const Finalizer = "vpagracefuldrain.dev/drain"

// Pod annotations: the opt-in, what the function writes about a drain, and the per-pod
// overrides.
const (
	// AnnotationManaged is the opt-in: "true" manages the pod, "false" opts out even when
	// VPA's own annotations are present.
	AnnotationManaged = "vpa-managed"
	// AnnotationDrainStarted is when the drain started (RFC 3339), written by the function.
	AnnotationDrainStarted = "vpagracefuldrain.dev/drain-started"
	// AnnotationDrainDeadline is when the finalizer is removed whatever else holds (RFC 3339).
	AnnotationDrainDeadline = "vpagracefuldrain.dev/drain-deadline"
	// AnnotationGracePeriod overrides gracePeriodSeconds for one pod.
	AnnotationGracePeriod = "vpagracefuldrain.dev/grace-period-seconds"
	// AnnotationDrainTimeout overrides drainTimeoutSeconds for one pod.
	AnnotationDrainTimeout = "vpagracefuldrain.dev/drain-timeout-seconds"
	// AnnotationWaitForReplacement and AnnotationWaitForEndpoints override the owner kind's
	// gates for one pod ("true" or "false").
	AnnotationWaitForReplacement = "vpagracefuldrain.dev/wait-for-replacement"
	AnnotationWaitForEndpoints   = "vpagracefuldrain.dev/wait-for-endpoints"
)

// VPAAnnotations mark a pod as VPA-managed when detectVpaAnnotations is on: the two the VPA
// admission controller sets today and two legacy ones (a new slice each call).
func VPAAnnotations() []string {
	return []string{"vpaObservedContainers", "vpaUpdates", "vpa-updater.client.k8s.io/last-updated", "vpa.k8s.io/resource-name"}
}

// Surge rollouts: the opt-in and state on a Deployment, what the restart writes into its pod
// template, and the budget on the function's Lease.
const (
	// AnnotationSurgeRollout opts a Deployment in ("true"), with the surgeRollout key.
	AnnotationSurgeRollout = "vpagracefuldrain.dev/surge-rollout"
	// AnnotationSurgeState is a surge rollout's state on the Deployment (JSON).
	AnnotationSurgeState = "vpagracefuldrain.dev/surge-state"
	// AnnotationRestartedAt (pod template) restarts the rollout, as `kubectl rollout restart`.
	AnnotationRestartedAt = "vpagracefuldrain.dev/restarted-at"
	// AnnotationPredictedResources (pod template) is the hash of the predicted requests.
	AnnotationPredictedResources = "vpagracefuldrain.dev/predicted-resources"
	// AnnotationSurgeSlots, on the Lease SurgeLeaseName, holds the budget's slots (JSON).
	AnnotationSurgeSlots = "vpagracefuldrain.dev/surge-slots"
)

// AnnotationUninstalling on the followed ConfigMap ("true") puts every replica in uninstall
// mode; `release-finalizers` sets it.
const AnnotationUninstalling = "vpagracefuldrain.dev/uninstalling"

// The Leases, in the ConfigMap's namespace: the sweeps' shared schedule and the surge-rollout
// budget every replica claims its slots from.
const (
	SweepLeaseName = "vpa-graceful-drain-sweep"
	SurgeLeaseName = "vpa-graceful-drain-surge"
)

// Eviction pacing's PodDisruptionBudgets: named W-vpa-graceful-drain for workload W, labelled
// as the function's (nothing without the label is ever deleted) and with their workload's kind.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelOwnerKind = "vpagracefuldrain.dev/owner-kind"
	PDBNameSuffix  = "-" + Component
)

// Removal reasons, as they appear in reply events and Kubernetes Events.
const (
	ReasonDrained   = "drained"
	ReasonTimeout   = "timeout"
	ReasonUnmanaged = "unmanaged"
	// ReasonDryRun means a dry-run released the pod: it never holds one, so a deleting pod is
	// released at once.
	ReasonDryRun = "dry-run"
	// ReasonUninstalled means the finalizer was removed because the function is being
	// uninstalled.
	ReasonUninstalled = "uninstalled"
	// ReasonReleasedByHand means the finalizer was removed by hand (`kubectl vpa-drain
	// release`), the incident escape hatch.
	ReasonReleasedByHand = "released-by-hand"
	// ReasonNotEvicted means a plain delete, not an eviction, with holdOn: evictions.
	ReasonNotEvicted = "not-evicted"
	// ReasonReplaced means the owner was back at its desired Ready replicas last, after the
	// containers stopped: the drain lasted the capacity gap the eviction caused.
	ReasonReplaced = "replaced"
)

// Gate names, as logs, Events and reply events show them.
const (
	GateGracePeriod = "grace-period"
	GateContainers  = "containers-stopped"
	GateReplacement = "replacement-ready"
	GateEndpoints   = "endpoints-gone"
)

// Kubernetes Event reasons: on the pod (`kubectl describe pod` shows them), on a pod's owner
// (advice), and on a Deployment (surge rollouts).
const (
	EventDrainStarted     = "DrainStarted"
	EventDrainCompleted   = "DrainCompleted"
	EventDrainTimedOut    = "DrainTimedOut"
	EventFinalizerRemoved = "FinalizerRemoved"
	EventDrainWaiting     = "DrainWaiting"
	// EventDrainNotGraceful is the Warning Event on a pod's owner that lists advice's findings.
	EventDrainNotGraceful = "DrainNotGraceful"

	EventSurgeRolloutStarted   = "SurgeRolloutStarted"
	EventSurgeRolloutCompleted = "SurgeRolloutCompleted"
	EventSurgeRolloutAborted   = "SurgeRolloutAborted"
	EventSurgeRolloutSkipped   = "SurgeRolloutSkipped"
	// EventSurgeRolloutFailed: a write the API server refuses for good (a 403 from the
	// admission policy, an object over its size limit), or the surgeMaxAttempts-th aborted
	// rollout in a row: the function stops for that prediction (or Deployment), says why.
	EventSurgeRolloutFailed = "SurgeRolloutFailed"
	// EventSurgeRolloutStateInvalid: the Deployment's state annotation was ignored (not the
	// function's: unreadable, a phase out of the closed set, a time in the future).
	EventSurgeRolloutStateInvalid = "SurgeRolloutStateInvalid"
)

// Reply CloudEvent types: what was done to a pod, advice about its owner, a surge rollout of a
// Deployment (started, or ended: completed, also when released by hand, or aborted).
const (
	ReplyFinalizerAdded   = "dev.vpagracefuldrain.finalizer.added"
	ReplyDrainStarted     = "dev.vpagracefuldrain.drain.started"
	ReplyFinalizerRemoved = "dev.vpagracefuldrain.finalizer.removed"
	// ReplyAdvice replaces finalizer.added when adding the finalizer found what defeats a
	// graceful eviction of the pod's owner.
	ReplyAdvice           = "dev.vpagracefuldrain.advice"
	ReplyRolloutStarted   = "dev.vpagracefuldrain.rollout.started"
	ReplyRolloutCompleted = "dev.vpagracefuldrain.rollout.completed"
	ReplyRolloutAborted   = "dev.vpagracefuldrain.rollout.aborted"
)

// ReplySource is the source attribute of every reply; ExtensionDryRun marks replies for
// actions that were decided but not written.
const (
	ReplySource     = "vpagracefuldrain.dev/function"
	ExtensionDryRun = "dryrun"
)

// Sweep requests the function receives: TypeSweep from anyone (curl, a CronJob), TypePing
// from eventing/knative.yaml's PingSource (a Knative PingSource's type).
const (
	TypeSweep = "dev.vpagracefuldrain.sweep"
	TypePing  = "dev.knative.sources.ping"
)

// Metric names, as OpenTelemetry instruments. The Prometheus exporter shows them with dots as
// underscores, the unit as a suffix (_seconds) and counters with _total (telemetry.Series).
const (
	// MetricDecisions counts decisions by action and reason.
	MetricDecisions = "vpagracefuldrain.decisions"
	// MetricDrainDuration is how long each finished drain held its pod, by reason and owner_kind.
	MetricDrainDuration = "vpagracefuldrain.drain.duration"
	// MetricDrainsInProgress is the number of drains this replica is waiting on.
	MetricDrainsInProgress = "vpagracefuldrain.drains.in_progress"
	// MetricDrainsOverdue is the number of pods the last sweep found held past their deadline
	// (a bug or a refused patch: should stay 0).
	MetricDrainsOverdue = "vpagracefuldrain.drains.overdue"
	// MetricEvents counts the events received, by CloudEvents type (one the function handles,
	// or telemetry.TypeOther) and HTTP status code.
	MetricEvents = "vpagracefuldrain.events"
	// MetricEventDuration is the time to handle one event.
	MetricEventDuration = "vpagracefuldrain.event.duration"
	// MetricAPIRequests counts the requests made to the Kubernetes API, by verb and status code.
	MetricAPIRequests = "vpagracefuldrain.api.requests"
	// MetricSweeps counts sweeps by result (ok, failed).
	MetricSweeps = "vpagracefuldrain.sweeps"
	// MetricSweepPods, MetricSweepWrites and MetricSweepFailures count what the sweeps saw and did.
	MetricSweepPods     = "vpagracefuldrain.sweep.pods"
	MetricSweepWrites   = "vpagracefuldrain.sweep.writes"
	MetricSweepFailures = "vpagracefuldrain.sweep.failures"
	// MetricSweepDuration is the time one sweep took.
	MetricSweepDuration = "vpagracefuldrain.sweep.duration"
	// MetricCapacityGap is, for each eviction of a Deployment's or StatefulSet's pod, the
	// seconds from the eviction until the owner was back at its desired number of Ready
	// replicas: what the eviction cost the service. By owner_kind and namespace.
	MetricCapacityGap = "vpagracefuldrain.capacity_gap"
	// MetricClockOffset is the API server's clock minus this replica's, in seconds, as learned
	// from the Date headers of the API server's answers: drains are timed on the API server's
	// clock, so a replica whose clock is off still holds each pod as long as it should.
	MetricClockOffset = "vpagracefuldrain.api_server.clock_offset"
	// MetricSurgeRollouts counts surge-rollout decisions applied, by outcome (started,
	// completed, aborted, released, skipped, failed).
	MetricSurgeRollouts = "vpagracefuldrain.surge_rollouts"
	// MetricSurgeRolloutDuration is, per surge rollout that ended, the seconds from its start
	// to its end, by outcome (completed, aborted, released).
	MetricSurgeRolloutDuration = "vpagracefuldrain.surge_rollout.duration"
	// MetricSurgeRolloutCapacityGap is, per surge rollout that ended, its capacity gap: the
	// most replicas short of Ready pods seen while it rolled (0 is the point), by outcome.
	MetricSurgeRolloutCapacityGap = "vpagracefuldrain.surge_rollout.capacity_gap"
)
