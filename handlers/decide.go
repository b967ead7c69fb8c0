package handlers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"function/config"
)

// Action is what a decision asks the cluster to do.
type Action int

const (
	// None: nothing to write and nothing to wait for.
	None Action = iota
	// AddFinalizer adds Finalizer to a managed pod that is not deleting.
	AddFinalizer
	// StartDrain writes the drain-started and drain-deadline annotations.
	StartDrain
	// Wait: the drain goes on; look again at Decision.RecheckAt.
	Wait
	// RemoveFinalizer removes Finalizer, for Decision.Reason.
	RemoveFinalizer
)

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
	// Reason: for RemoveFinalizer one of ReasonDrained, ReasonTimeout, ReasonUnmanaged;
	// otherwise a short human explanation (why nothing is done, what a wait waits on).
	Reason string
	// Started and Deadline: for StartDrain the values to write, for Wait and RemoveFinalizer
	// the values read from the pod.
	Started, Deadline time.Time
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
}

// DrainSeconds is how long the drain lasted at now (0 before it started).
func (d Decision) DrainSeconds(now time.Time) float64 {
	if d.Started.IsZero() {
		return 0
	}
	return now.Sub(d.Started).Seconds()
}

// clockSkew is how far in the future a drain-started stamp may be (another replica's clock)
// before it is treated as invalid and stamped again.
const clockSkew = time.Minute

// Decide is the whole policy: a pure function of the pod, the configuration and the time.
func Decide(pod *corev1.Pod, cfg config.Config, now time.Time) Decision {
	d := Decision{FinalizerIndex: slices.Index(pod.Finalizers, Finalizer)}
	d.ManagedBy = managedBy(pod, cfg)
	ours := d.FinalizerIndex >= 0
	deleting := pod.DeletionTimestamp != nil

	switch {
	case !ours && deleting:
		d.Reason = "deleting without our finalizer (none can be added once deletion started)"
		return d
	case !ours && d.ManagedBy == "":
		d.Reason = unmanagedWhy(pod, cfg)
		return d
	case !ours:
		d.Action = AddFinalizer
		d.Reason = "managed by annotation " + d.ManagedBy
		return d
	case d.ManagedBy == "":
		d.Action = RemoveFinalizer
		d.Reason = ReasonUnmanaged
		return d
	case !deleting:
		d.Reason = "finalizer in place, pod not deleting"
		return d
	}

	grace, timeout := overrides(pod, cfg, &d.Warnings)
	d.Grace = grace
	started, ok := parseStarted(pod.Annotations[AnnotationDrainStarted], now)
	if !ok {
		d.Action = StartDrain
		d.Started = ceilSecond(now)
		d.Deadline = d.Started.Add(timeout)
		d.RecheckAt = d.Started.Add(grace)
		if _, present := pod.Annotations[AnnotationDrainStarted]; present {
			d.Warnings = append(d.Warnings, fmt.Sprintf("invalid %s %q: drain restarted", AnnotationDrainStarted, pod.Annotations[AnnotationDrainStarted]))
		}
		return d
	}
	d.Started = started
	// The deadline annotation may only shorten the drain, never extend it past the timeout.
	d.Deadline = started.Add(timeout)
	if v, present := pod.Annotations[AnnotationDrainDeadline]; present {
		if t, err := time.Parse(time.RFC3339, v); err == nil && t.Before(d.Deadline) {
			d.Deadline = t
		} else if err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("invalid %s %q: using %s", AnnotationDrainDeadline, v, d.Deadline.Format(time.RFC3339)))
		}
	}
	graceEnd := started.Add(grace)
	d.Stopped = containersStopped(pod)
	switch {
	case !now.Before(graceEnd) && d.Stopped != NotStopped:
		d.Action = RemoveFinalizer
		d.Reason = ReasonDrained
	case !now.Before(d.Deadline):
		d.Action = RemoveFinalizer
		d.Reason = ReasonTimeout
	case now.Before(graceEnd):
		d.Action = Wait
		d.Reason = "grace period"
		d.RecheckAt = minTime(graceEnd, d.Deadline)
	default:
		d.Action = Wait
		d.Reason = "containers running"
		d.RecheckAt = d.Deadline
	}
	return d
}

// managedBy names the annotation that makes the pod managed, or "".
func managedBy(pod *corev1.Pod, cfg config.Config) string {
	if !cfg.Namespaces.Selects(pod.Namespace) {
		return ""
	}
	if v, ok := pod.Annotations[AnnotationManaged]; ok {
		if strings.EqualFold(strings.TrimSpace(v), "true") {
			return AnnotationManaged
		}
		return "" // explicit opt-out ("false" or anything else)
	}
	if cfg.DetectVpaAnnotations {
		for _, a := range VPAAnnotations {
			if _, ok := pod.Annotations[a]; ok {
				return a
			}
		}
	}
	return ""
}

func unmanagedWhy(pod *corev1.Pod, cfg config.Config) string {
	if !cfg.Namespaces.Selects(pod.Namespace) {
		return "namespace " + pod.Namespace + " not selected"
	}
	if v, ok := pod.Annotations[AnnotationManaged]; ok {
		return fmt.Sprintf("opted out (%s=%q)", AnnotationManaged, v)
	}
	return "not managed (no vpa-managed or VPA annotation)"
}

// overrides returns the pod's grace period and drain timeout, each from its annotation when
// valid, else from cfg (with a warning). The timeout is never below the grace period.
func overrides(pod *corev1.Pod, cfg config.Config, warnings *[]string) (grace, timeout time.Duration) {
	grace, timeout = cfg.GracePeriod, cfg.DrainTimeout
	if v, ok := pod.Annotations[AnnotationGracePeriod]; ok {
		if d, err := config.ParseSeconds(v, 0); err == nil {
			grace = d
		} else {
			*warnings = append(*warnings, fmt.Sprintf("invalid %s %q (%v): using %ds", AnnotationGracePeriod, v, err, int(grace.Seconds())))
		}
	}
	if v, ok := pod.Annotations[AnnotationDrainTimeout]; ok {
		if d, err := config.ParseSeconds(v, 1); err == nil {
			timeout = d
		} else {
			*warnings = append(*warnings, fmt.Sprintf("invalid %s %q (%v): using %ds", AnnotationDrainTimeout, v, err, int(timeout.Seconds())))
		}
	}
	if grace > timeout {
		*warnings = append(*warnings, fmt.Sprintf("grace period %ds exceeds drain timeout %ds: using %ds", int(grace.Seconds()), int(timeout.Seconds()), int(timeout.Seconds())))
		grace = timeout
	}
	return grace, timeout
}

func parseStarted(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil || t.After(now.Add(clockSkew)) {
		return time.Time{}, false
	}
	return t, true
}

// Evidence is what shows that a pod's containers have stopped.
type Evidence int

const (
	// NotStopped: nothing shows the containers have stopped.
	NotStopped Evidence = iota
	// GraceZero: deletionGracePeriodSeconds is 0, the kubelet's last act (or the pod never ran).
	GraceZero
	// TerminalPhase: phase Succeeded or Failed.
	TerminalPhase
	// AllTerminated: every container status is terminated.
	AllTerminated
)

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
	case len(pod.Status.ContainerStatuses) > 0 && allTerminated(pod.Status.ContainerStatuses):
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

// ceilSecond rounds up to a whole second, so the stamped start (second precision) is never
// before the real one and a drain lasts at least its grace period.
func ceilSecond(t time.Time) time.Time {
	s := t.UTC().Truncate(time.Second)
	if s.Before(t) {
		s = s.Add(time.Second)
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
