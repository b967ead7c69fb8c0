package drain

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"function/config"
	"function/names"
)

// Action is what a decision asks the cluster to do.
type Action int

const (
	// None means nothing to write and nothing to wait for.
	None Action = iota
	// AddFinalizer adds Finalizer to a managed pod that is not deleting.
	AddFinalizer
	// StartDrain writes the drain-started and drain-deadline annotations.
	StartDrain
	// Wait means the drain goes on; look again at Decision.RecheckAt.
	Wait
	// RemoveFinalizer removes Finalizer, for Decision.Reason.
	RemoveFinalizer
)

// String returns the action's name, such as add-finalizer.
func (a Action) String() string {
	switch a {
	case AddFinalizer:
		return "add-finalizer"
	case StartDrain:
		return "start-drain"
	case Wait:
		return "wait"
	case RemoveFinalizer:
		return "remove-finalizer"
	default:
		return "none"
	}
}

// Writes reports whether the action changes the pod.
func (a Action) Writes() bool {
	return a == AddFinalizer || a == StartDrain || a == RemoveFinalizer
}

// Decision is the outcome of Decide. It also records what the decision read, so the patch
// that applies it can be guarded on exactly those values.
type Decision struct {
	Action Action
	// Reason is, for RemoveFinalizer, one of the Reason* constants (replaced, drained, timeout,
	// not-evicted, unmanaged, dry-run, uninstalled); otherwise a short human explanation (why
	// nothing is done, what a wait waits on).
	Reason string
	// Started and Deadline are when the drain started and when it ends at the latest (see
	// drainStart); for StartDrain the values to write.
	Started, Deadline time.Time
	// StartedFrom says where Started comes from.
	StartedFrom StartSource
	// Grace is the pod's effective grace period (set once the pod is draining).
	Grace time.Duration
	// RecheckAt is when a Wait, or a drain just started, should be looked at again: the grace
	// end or the deadline, whichever comes first and is still ahead.
	RecheckAt time.Time
	// FinalizerIndex is the index of Finalizer in metadata.finalizers, -1 if absent.
	FinalizerIndex int
	// ManagedBy is the annotation that made the pod managed ("" if it is not).
	ManagedBy string
	// Stopped is the evidence that the containers have stopped (NotStopped if they have not).
	Stopped Evidence
	// Warnings lists ignored per-pod overrides, for logs and Kubernetes Events.
	Warnings []string

	// Kind is the kind of workload that owns the pod (see config.Kind); Owner its name.
	Kind  config.Kind
	Owner string
	// Evicted means the deletion is an eviction through the Eviction API (DisruptionTarget
	// with reason EvictionByEvictionAPI), not a plain delete.
	Evicted bool
	// Gates are what the drain waits for, each open or closed (set once the pod is draining).
	Gates []Gate
	// Needs lists facts the decision needs from the cluster: read them and decide again.
	Needs Need
}

// Deletion says what deleted the pod: "eviction" (through the Eviction API) or "delete".
func (d Decision) Deletion() string {
	if d.Evicted {
		return "eviction"
	}
	return "delete"
}

// DrainSeconds is how long the drain lasted at now (0 before it started).
func (d Decision) DrainSeconds(now time.Time) float64 {
	if d.Started.IsZero() {
		return 0
	}
	return now.Sub(d.Started).Seconds()
}

// ClockSkew is how far apart API-server times and a replica's stamp may be before the stamp
// is distrusted.
const ClockSkew = time.Minute

// Decide is DecideWith without facts from the cluster (a pod's own state only).
func Decide(pod *corev1.Pod, cfg config.Config, now time.Time) Decision {
	return DecideWith(pod, cfg, now, Facts{})
}

// DecideWith is the whole policy: a pure function of the pod, the configuration, the time and
// what was read about the pod's owner and endpoints. When the decision needs a fact that was
// not read, it says so in Needs (the caller reads it and decides again); a fact that could
// not be read counts as a closed gate, so only the deadline ends such a drain.
func DecideWith(pod *corev1.Pod, cfg config.Config, now time.Time, facts Facts) Decision {
	d := Decision{FinalizerIndex: slices.Index(pod.Finalizers, names.Finalizer)}
	d.ManagedBy = ManagedBy(pod, cfg)
	ours := d.FinalizerIndex >= 0
	deleting := pod.DeletionTimestamp != nil

	switch {
	case cfg.Uninstalling && ours:
		d.Action = RemoveFinalizer
		d.Reason = names.ReasonUninstalled
		return d
	case cfg.Uninstalling:
		d.Reason = "uninstalling: no finalizer is added"
		return d
	case !ours && deleting:
		d.Reason = "deleting without our finalizer (none can be added once deletion started)"
		return d
	}
	if d.ManagedBy != "" {
		// Only an opted-in pod's owner matters; a ReplicaSet's owner may need a read.
		if d.Kind, d.Owner, d.Needs = OwnerOf(pod, facts); d.Needs != 0 {
			d.Reason = "reading the pod's owner"
			return d
		}
		if !cfg.Workload(d.Kind).Manage {
			d.ManagedBy = ""
		}
	}
	switch {
	case !ours && d.ManagedBy == "":
		d.Reason = unmanagedWhy(pod, cfg, d.Kind)
		return d
	case !ours:
		d.Action = AddFinalizer
		d.Reason = fmt.Sprintf("managed by annotation %s (owner kind %s)", d.ManagedBy, d.Kind)
		return d
	case d.ManagedBy == "":
		d.Action = RemoveFinalizer
		d.Reason = names.ReasonUnmanaged
		return d
	case !deleting:
		d.Reason = "finalizer in place, pod not deleting"
		return d
	}

	wl := cfg.Workload(d.Kind)
	grace, timeout := Overrides(pod, wl.GracePeriod, cfg.DrainTimeout, &d.Warnings)
	d.Grace = grace
	d.Stopped = containersStopped(pod)
	stampValue, stampPresent := pod.Annotations[names.AnnotationDrainStarted]
	var stamp time.Time
	stamped := false
	if stampPresent { // not parsing "": its error is an allocation
		var err error
		stamp, err = time.Parse(time.RFC3339, stampValue)
		stamp, stamped = latest(stamp), err == nil
	}
	d.Started, d.StartedFrom, d.Evicted = drainStart(pod, stamp, stamped, &d.Warnings)
	if cfg.HoldOn != config.HoldAll && !d.Evicted {
		// Not the VPA updater's eviction: a rollout, a scale-down, a kubectl delete. Holding it
		// would only slow an ordinary operation.
		d.Action = RemoveFinalizer
		d.Reason = names.ReasonNotEvicted
		return d
	}
	d.Deadline = d.Started.Add(timeout)
	// The deadline annotation may only shorten the drain, never extend it past the timeout,
	// and never end it before it started (one planted on a running pod, or before this
	// deletion, is not this drain's).
	if v, present := pod.Annotations[names.AnnotationDrainDeadline]; present {
		t, err := time.Parse(time.RFC3339, v)
		t = latest(t)
		switch {
		case err != nil:
			d.Warnings = append(d.Warnings, fmt.Sprintf("invalid %s %s: using %s", names.AnnotationDrainDeadline, Quote(v), d.Deadline.Format(time.RFC3339)))
		case t.Before(d.Started):
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s %s is before the drain started (%s): ignored, using %s",
				names.AnnotationDrainDeadline, t.UTC().Format(time.RFC3339), d.Started.Format(time.RFC3339), d.Deadline.Format(time.RFC3339)))
		case t.Before(d.Deadline):
			d.Deadline = t
		}
	}
	graceEnd := d.Started.Add(grace)
	graceOpen, stoppedOpen := !now.Before(graceEnd), d.Stopped != NotStopped
	d.Gates = append(d.Gates,
		Gate{Name: names.GateGracePeriod, Open: graceOpen, Detail: grace.String()},
		Gate{Name: names.GateContainers, Open: stoppedOpen, Detail: d.Stopped.String()})
	// The table's gates this drain waits for (a bit per entry of Gates).
	var waits uint64
	for i := range gateTable {
		if gateTable[i].waitsFor(pod, d.Kind, wl, &d.Warnings) {
			waits |= 1 << i
		}
	}
	if graceOpen && stoppedOpen && now.Before(d.Deadline) {
		// Their facts are read only once nothing else holds the pod.
		for i := range gateTable {
			if waits&(1<<i) != 0 {
				d.Needs |= gateTable[i].needs(facts)
			}
		}
		if d.Needs != 0 {
			d.Action, d.Reason = Wait, readingReason
			return d
		}
	}
	factsOpen, waitReplacement := true, false
	for i := range gateTable {
		if waits&(1<<i) == 0 {
			continue
		}
		g := &gateTable[i]
		gate := g.state(facts, graceOpen && stoppedOpen)
		factsOpen = factsOpen && gate.Open
		waitReplacement = waitReplacement || g.Name == names.GateReplacement
		d.Gates = append(d.Gates, gate)
	}
	switch {
	case graceOpen && stoppedOpen && factsOpen:
		d.Action = RemoveFinalizer
		d.Reason = names.ReasonDrained
		if waitReplacement && (facts.WaitedForReplacement || facts.Replicas != nil && facts.Replicas.ReadyAt.After(maxTime(graceEnd, stoppedAt(pod)))) {
			d.Reason = names.ReasonReplaced // the replacement was the last thing the drain waited for
		}
		return d
	case !now.Before(d.Deadline):
		d.Action = RemoveFinalizer
		d.Reason = names.ReasonTimeout
		return d
	}
	switch {
	case !graceOpen:
		d.Reason = "grace period"
		d.RecheckAt = minTime(graceEnd, d.Deadline)
	case !stoppedOpen:
		d.Reason = "containers running"
		d.RecheckAt = minTime(nextLook(pod, now), d.Deadline)
	default:
		d.Reason = "waiting for " + ClosedGates(d.Gates)
		d.RecheckAt = minTime(now.Add(min(max(now.Sub(d.Started)/8, LookMin), gateLookMax)), d.Deadline)
	}
	d.Action = Wait
	if !stamped {
		// Record the start: the drain is timed from API-server times with or without the stamp,
		// so a stamp that cannot be written never leaves the drain unbounded.
		d.Action = StartDrain
		if stampPresent {
			d.Warnings = append(d.Warnings, fmt.Sprintf("invalid %s %s: stamped again", names.AnnotationDrainStarted, Quote(stampValue)))
		}
	}
	return d
}

// readingReason is the reason of a decision that waits for the gates' facts to be read: "reading
// the owner and endpoints", each gate's Object.
var readingReason = func() string {
	objects := make([]string, 0, gateCount)
	for i := range gateTable {
		objects = append(objects, gateTable[i].Object)
	}
	return "reading the " + listAnd(objects)
}()

// listAnd joins parts as English lists them: "a", "a and b", "a, b and c".
func listAnd(parts []string) string {
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// StartSource says which time a drain is timed from.
type StartSource string

// Where a drain's start comes from, most trusted first.
const (
	// StartEviction is the DisruptionTarget condition's lastTransitionTime, which the API server
	// recorded when it accepted the eviction.
	StartEviction StartSource = "eviction"
	// StartStamp is the drain-started annotation, when not after the deletion request.
	StartStamp StartSource = "drain-started"
	// StartDeletion is deletionTimestamp - deletionGracePeriodSeconds, the time the deletion was
	// requested (until the grace is shortened: the kubelet's final grace-0 DELETE moves it to
	// that moment, a later but still finite bound).
	StartDeletion StartSource = "deletion"
)

// drainStart is when a deleting pod's drain started, from the API server's own records
// wherever they exist, so neither a missing stamp nor a replica's clock can make a drain
// unbounded or shorter:
//   - an accepted eviction's DisruptionTarget time wins over everything;
//   - else the stamp, but never later than the deletion request (a stamp may be written by a
//     replica whose clock is ahead);
//   - else the deletion request.
//
// The stamp itself is never moved: a bad one is reported, not rewritten earlier.
//
// evicted reports whether the deletion is an eviction through the Eviction API.
func drainStart(pod *corev1.Pod, stamp time.Time, stamped bool, warnings *[]string) (started time.Time, from StartSource, evicted bool) {
	requested := latest(deletionRequested(pod)).UTC()
	t, reason, disrupted := evictedAt(pod, requested)
	t = latest(t)
	evicted = disrupted && reason == ReasonEvictionByEvictionAPI
	switch {
	case disrupted:
		return t.UTC(), StartEviction, evicted
	case !stamped:
		return requested, StartDeletion, evicted
	case stamp.After(requested.Add(ClockSkew)):
		*warnings = append(*warnings, fmt.Sprintf("%s %s is over %s after the deletion was requested (%s; a clock ahead?): timing the drain from the request",
			names.AnnotationDrainStarted, stamp.UTC().Format(time.RFC3339), ClockSkew, requested.Format(time.RFC3339)))
		return requested, StartStamp, evicted
	}
	return stamp.UTC(), StartStamp, evicted
}

// ReasonEvictionByEvictionAPI is the DisruptionTarget reason the Eviction API writes.
const ReasonEvictionByEvictionAPI = "EvictionByEvictionAPI"

// maxGraceSeconds caps a grace period read from a pod, so the arithmetic cannot overflow.
const maxGraceSeconds = 100 * 365 * 24 * 60 * 60

// latest is the latest moment a time read from the API could stand for. The API server
// keeps whole seconds (metav1.Time drops the fraction), and so do this function's own
// annotations, so a whole-second t stands for any moment of [t, t+1s): timing a drain from
// its end means a hold is never shorter than its grace period, and at most 1 s longer (with
// the real VPA updater, timing from t released a 30 s grace after 29.15 to 29.21 s). A time
// with a fraction is exact and kept. Written back as RFC 3339 (the drain annotations), the
// result is t again, so rounding is the same on every read.
func latest(t time.Time) time.Time {
	if t.IsZero() || t.Nanosecond() != 0 {
		return t
	}
	return t.Add(time.Second - time.Nanosecond)
}

// deletionRequested is deletionTimestamp - deletionGracePeriodSeconds.
func deletionRequested(pod *corev1.Pod) time.Time {
	t := pod.DeletionTimestamp.Time
	if g := pod.DeletionGracePeriodSeconds; g != nil && *g > 0 {
		t = t.Add(-time.Duration(min(*g, maxGraceSeconds)) * time.Second)
	}
	return t
}

// evictedAt is the lastTransitionTime and reason of a True DisruptionTarget condition (an
// eviction, a preemption, a taint, the pod GC), when it belongs to
// this deletion: not after the deletion request (by more than the clock skew) and not before it
// by more than the pod's termination grace period (the kubelet's final DELETE moves the request
// time up to that much later).
func evictedAt(pod *corev1.Pod, requested time.Time) (time.Time, string, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.DisruptionTarget || c.Status != corev1.ConditionTrue || c.LastTransitionTime.IsZero() {
			continue
		}
		t := c.LastTransitionTime.Time
		spread := ClockSkew
		if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && *g > 0 {
			spread += time.Duration(min(*g, maxGraceSeconds)) * time.Second
		}
		if t.After(requested.Add(ClockSkew)) || t.Before(requested.Add(-spread)) {
			return time.Time{}, "", false
		}
		return t, c.Reason, true
	}
	return time.Time{}, "", false
}

// While containers still run after the grace period, the pod is looked at again when the
// kubelet kills them (deletionTimestamp), then often at first and less and less often: a
// quarter of the time since the kill, between LookMin and lookMax. So a release does not wait
// on the kubelet's status event alone (a sender may hold it back, retrying), and a pod whose
// containers never stop costs few reads.
const (
	LookMin = 500 * time.Millisecond
	lookMax = 30 * time.Second
)

func nextLook(pod *corev1.Pod, now time.Time) time.Time {
	kill := pod.DeletionTimestamp.Time
	if kill.After(now) {
		return kill
	}
	return now.Add(min(max(now.Sub(kill)/4, LookMin), lookMax))
}

// ManagedBy names the annotation that makes the pod managed, or "".
func ManagedBy(pod *corev1.Pod, cfg config.Config) string {
	if !cfg.Namespaces.Selects(pod.Namespace) {
		return ""
	}
	if v, ok := pod.Annotations[names.AnnotationManaged]; ok {
		if strings.EqualFold(strings.TrimSpace(v), "true") {
			return names.AnnotationManaged
		}
		return "" // explicit opt-out ("false" or anything else)
	}
	if cfg.DetectVpaAnnotations {
		for _, a := range names.VPAAnnotations() {
			if _, ok := pod.Annotations[a]; ok {
				return a
			}
		}
	}
	return ""
}

func unmanagedWhy(pod *corev1.Pod, cfg config.Config, kind config.Kind) string {
	if kind != "" {
		return fmt.Sprintf("owner kind %s is not managed (workloadDefaults)", kind)
	}
	if !cfg.Namespaces.Selects(pod.Namespace) {
		return "namespace " + pod.Namespace + " not selected"
	}
	if v, ok := pod.Annotations[names.AnnotationManaged]; ok {
		return fmt.Sprintf("opted out (%s=%s)", names.AnnotationManaged, Quote(v))
	}
	return "not managed (no vpa-managed or VPA annotation)"
}

// Overrides returns the pod's grace period and drain timeout, each from its annotation when
// valid, else the given defaults (with a warning). The timeout is never below the grace period
// and never above defaultTimeout (drainTimeoutSeconds).
func Overrides(pod *corev1.Pod, defaultGrace, defaultTimeout time.Duration, warnings *[]string) (grace, timeout time.Duration) {
	grace, timeout = defaultGrace, defaultTimeout
	if v, ok := pod.Annotations[names.AnnotationGracePeriod]; ok {
		if d, err := config.ParseSeconds(v, 0); err == nil {
			grace = d
		} else {
			*warnings = append(*warnings, fmt.Sprintf("invalid %s %s (%v): using %ds", names.AnnotationGracePeriod, Quote(v), err, int(grace.Seconds())))
		}
	}
	if v, ok := pod.Annotations[names.AnnotationDrainTimeout]; ok {
		switch d, err := config.ParseSeconds(v, 1); {
		case err == nil && d > defaultTimeout:
			// The cluster's drainTimeoutSeconds is the bound every drain keeps: a pod may only
			// ask for less.
			*warnings = append(*warnings, fmt.Sprintf("%s %s exceeds drainTimeoutSeconds: using %ds", names.AnnotationDrainTimeout, Quote(v), int(timeout.Seconds())))
		case err == nil:
			timeout = d
		default:
			*warnings = append(*warnings, fmt.Sprintf("invalid %s %s (%v): using %ds", names.AnnotationDrainTimeout, Quote(v), err, int(timeout.Seconds())))
		}
	}
	if grace > timeout {
		*warnings = append(*warnings, fmt.Sprintf("grace period %ds exceeds drain timeout %ds: using %ds", int(grace.Seconds()), int(timeout.Seconds()), int(timeout.Seconds())))
		grace = timeout
	}
	return grace, timeout
}

// Evidence is what shows that a pod's containers have stopped.
type Evidence int

const (
	// NotStopped means nothing shows the containers have stopped.
	NotStopped Evidence = iota
	// GraceZero means deletionGracePeriodSeconds is 0, the kubelet's last act (or the pod never
	// ran).
	GraceZero
	// TerminalPhase means the phase is Succeeded or Failed.
	TerminalPhase
	// AllTerminated means every container status is terminated.
	AllTerminated
)

// String returns what the evidence is, in words, such as terminal phase.
func (e Evidence) String() string {
	switch e {
	case GraceZero:
		return "deletionGracePeriodSeconds=0"
	case TerminalPhase:
		return "terminal phase"
	case AllTerminated:
		return "all containers terminated"
	default:
		return "containers running"
	}
}

// containersStopped returns the evidence that the pod's containers are gone.
func containersStopped(pod *corev1.Pod) Evidence {
	switch {
	case pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds == 0:
		return GraceZero
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return TerminalPhase
	case len(pod.Status.ContainerStatuses) > 0 && allTerminated(pod.Status.ContainerStatuses) && sidecarsTerminated(pod):
		return AllTerminated
	}
	return NotStopped
}

func allTerminated(statuses []corev1.ContainerStatus) bool {
	for _, s := range statuses {
		if s.State.Terminated == nil {
			return false
		}
	}
	return true
}

// sidecars are the indexes in status.initContainerStatuses of the pod's native sidecars: init
// containers with restartPolicy Always, which keep running beside the app until the pod stops.
// An ordinary init container has terminated long before and is not one of them.
func sidecars(pod *corev1.Pod) []int {
	var out []int
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			continue
		}
		if i := slices.IndexFunc(pod.Status.InitContainerStatuses, func(s corev1.ContainerStatus) bool { return s.Name == c.Name }); i >= 0 {
			out = append(out, i) // one that never started runs nothing
		}
	}
	return out
}

func sidecarsTerminated(pod *corev1.Pod) bool {
	for _, i := range sidecars(pod) {
		if pod.Status.InitContainerStatuses[i].State.Terminated == nil {
			return false
		}
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// MetricReason is the decision's reason as a metric label: one of a few fixed values (a
// release's reason; "managed" for an add; "eviction" or "delete" for a drain start; the first
// closed gate for a wait; "nothing-to-do"), never free text.
func (d Decision) MetricReason() string {
	switch d.Action {
	case RemoveFinalizer:
		return d.Reason
	case AddFinalizer:
		return "managed"
	case StartDrain:
		return d.Deletion()
	case Wait:
		for _, g := range d.Gates {
			if !g.Open {
				return g.Name
			}
		}
		return "reading"
	}
	return "nothing-to-do"
}
