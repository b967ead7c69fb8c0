// Package drain is the drain policy, pure: what to do with a pod (Decide, DecideWith: pod +
// configuration + clock + facts in, a Decision out), the gates that hold a drain and the facts
// they need, when a drain started, and the guarded JSON patch that applies a decision (Patch).
// It does no I/O: it imports the configuration, the Kubernetes API types and the standard
// library only (TestPolicyIsPure fails otherwise). Package handlers reads the facts a decision
// asks for and writes what it decides.
package drain

// Names users see: the finalizer and the annotations this function reads and writes.
const (
	// Finalizer holds an evicted pod's API object while it drains.
	Finalizer = "vpagracefuldrain.dev/drain"

	// AnnotationDrainStarted is when the drain started (RFC 3339), written by the function.
	AnnotationDrainStarted = "vpagracefuldrain.dev/drain-started"
	// AnnotationDrainDeadline is when the finalizer is removed whatever else holds (RFC 3339).
	AnnotationDrainDeadline = "vpagracefuldrain.dev/drain-deadline"
	// AnnotationGracePeriod overrides gracePeriodSeconds for one pod.
	AnnotationGracePeriod = "vpagracefuldrain.dev/grace-period-seconds"
	// AnnotationDrainTimeout overrides drainTimeoutSeconds for one pod.
	AnnotationDrainTimeout = "vpagracefuldrain.dev/drain-timeout-seconds"

	// AnnotationManaged is the opt-in: "true" manages the pod, "false" opts out even when
	// VPA's own annotations are present.
	AnnotationManaged = "vpa-managed"
)

// VPAAnnotations mark a pod as VPA-managed when detectVpaAnnotations is on: the two the VPA
// admission controller sets today and two legacy ones.
var VPAAnnotations = []string{
	"vpaObservedContainers",
	"vpaUpdates",
	"vpa-updater.client.k8s.io/last-updated",
	"vpa.k8s.io/resource-name",
}

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

// Per-pod overrides of the owner kind's gates ("true" or "false").
const (
	AnnotationWaitForReplacement = "vpagracefuldrain.dev/wait-for-replacement"
	AnnotationWaitForEndpoints   = "vpagracefuldrain.dev/wait-for-endpoints"
)

// Surge rollouts (package handlers/surge): the opt-in and state on a Deployment, and what the
// restart writes into its pod template.
const (
	// AnnotationSurgeRollout opts a Deployment in ("true"), with the surgeRollout key.
	AnnotationSurgeRollout = "vpagracefuldrain.dev/surge-rollout"
	// AnnotationSurgeState is a surge rollout's state on the Deployment (JSON).
	AnnotationSurgeState = "vpagracefuldrain.dev/surge-state"
	// AnnotationRestartedAt (pod template) restarts the rollout, as `kubectl rollout restart`.
	AnnotationRestartedAt = "vpagracefuldrain.dev/restarted-at"
	// AnnotationPredictedResources (pod template) is the hash of the predicted requests.
	AnnotationPredictedResources = "vpagracefuldrain.dev/predicted-resources"
)
