package handlers

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"function/handlers/drain"
	"function/names"
)

// Inspect is the decision the function would make on pod now: DecideWith with the facts it
// would read (the owner, its replicas, the endpoints), read the same way as when a decision is
// applied. It writes nothing, records no Event and schedules no re-check, whatever DryRun says
// (a dry-run's "release every deleting pod" is not applied: the decision is the configured
// policy's). A fact that cannot be read shows as a closed gate with the error in its detail.
// For status views (`kubectl vpa-drain status`).
func (r *Reconciler) Inspect(ctx context.Context, pod *corev1.Pod) drain.Decision {
	r.init()
	cfg := r.CurrentConfig()
	d, _, _ := r.decideWithFacts(ctx, pod, func(pod *corev1.Pod, now time.Time, facts drain.Facts) drain.Decision {
		return drain.DecideWith(pod, cfg, now, facts)
	})
	return d
}

// decideWithFacts decides on pod, reads what the decision needs (the owner, then its replicas
// and the endpoints) and decides again, as often as needed. It returns the final decision, the
// facts it was made on and when.
func (r *Reconciler) decideWithFacts(ctx context.Context, pod *corev1.Pod, decide policy) (drain.Decision, drain.Facts, time.Time) {
	now := r.now()
	facts := drain.Facts{WaitedForReplacement: r.siblings.waited(pod.UID)}
	d := decide(pod, now, facts)
	for range 3 {
		if d.Needs == 0 {
			break
		}
		factReader{Deps: r.Deps, owners: r.Owners}.gather(ctx, pod, d.Needs, &facts)
		if len(facts.Errors) > 0 && r.Log != nil {
			r.Log.WarnContext(ctx, "could not read what the drain waits for; its gate stays closed until the deadline",
				podAttrs(pod), slog.String("needs", d.Needs.String()), slog.String("error", strings.Join(facts.Errors, "; ")))
		}
		now = r.now()
		d = decide(pod, now, facts)
	}
	return d, facts, now
}

// decideAndApply decides on pod and applies the decision. pod is live when it was read from
// the API server; an event's copy (live false) is only decided on: a decision that would
// write, or that would record anything about the pod, returns errNeedsLive instead.
func (r *Reconciler) decideAndApply(ctx context.Context, pod *corev1.Pod, live bool, decide policy) (Outcome, error) {
	d, facts, now := r.decideWithFacts(ctx, pod, decide)
	if !live && d.Action.Writes() && (!r.DryRun || d.Reason == names.ReasonDryRun) {
		// (A dry-run writes only its releases: what it would add or stamp stays unwritten.)
		return Outcome{Pod: pod, Decision: d, At: now}, errNeedsLive
	}
	out := Outcome{Pod: pod, Decision: d, At: now, DryRun: r.DryRun}
	// One line per decision: the pod, the action, its reason, the gates and durations. The
	// attributes are formatted only for a line that is written (no Logger.With per event).
	dlog := decisionLog{logger: r.Log, pod: pod, d: d, now: now}
	for _, w := range d.Warnings {
		dlog.write(ctx, slog.LevelWarn, "ignoring invalid annotation", slog.String("warning", w))
	}
	if !d.Action.Writes() || r.DryRun && d.Reason != names.ReasonDryRun {
		r.metrics().Decision(ctx, d.Action.String(), d.MetricReason())
	}
	if d.Action == drain.Wait {
		if !live {
			// An event's copy may bring a pending re-check forward (its read is live), never
			// create one, nor note anything about the drain.
			r.Rechecks.Advance(PodKey{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}, d.RecheckAt)
			dlog.write(ctx, slog.LevelDebug, "decision", slog.Time("recheckAt", d.RecheckAt), slog.Bool("eventCopy", true))
			return out, nil
		}
		r.scheduleRecheck(pod, d.RecheckAt)
		r.siblings.note(ctx, r.Deps, pod, d)
		dlog.write(ctx, slog.LevelDebug, "decision", slog.Time("recheckAt", d.RecheckAt))
		return out, nil
	}
	if !d.Action.Writes() {
		dlog.write(ctx, slog.LevelDebug, "decision")
		return out, nil
	}
	if r.DryRun && d.Reason != names.ReasonDryRun {
		out.Applied = true
		dlog.write(ctx, slog.LevelInfo, "decision", slog.Bool("dryRun", true), slog.String("stopped", d.Stopped.String()))
		if d.Action == drain.AddFinalizer {
			out.Advice = r.Checks.AfterFinalizerAdded(ctx, pod, d, now) // reads only, in dry-run
		}
		return out, nil
	}
	out.DryRun = false
	patch, err := drain.Patch(pod, d)
	if err != nil {
		return out, err
	}
	patched, err := r.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, patch,
		metav1.PatchOptions{FieldManager: names.Component})
	switch {
	case apierrors.IsNotFound(err):
		dlog.write(ctx, slog.LevelInfo, "decision", slog.Bool("applied", false), slog.String("result", "pod is gone, nothing to do"))
		out.Decision = gone()
		r.Forget(pod.UID)
		return out, nil
	case err != nil:
		if !IsGuardFailure(err) { // (a decision whose guard failed is made again on a fresh read: counted then)
			r.metrics().Decision(ctx, d.Action.String(), d.MetricReason())
		}
		return out, fmt.Errorf("patching pod %s/%s (%s): %w", pod.Namespace, pod.Name, d.Action, err)
	}
	r.metrics().Decision(ctx, d.Action.String(), d.MetricReason())
	out.Applied = true
	if patched != nil {
		r.writes.wrote(pod.UID, patched.ResourceVersion)
	}
	dlog.write(ctx, slog.LevelInfo, "decision", slog.Bool("applied", true), slog.String("stopped", d.Stopped.String()))
	if d.Action == drain.RemoveFinalizer {
		if !d.Started.IsZero() {
			r.metrics().Drain(ctx, d.Reason, string(d.Kind), d.DrainSeconds(now))
		}
		r.gaps.record(ctx, r.metrics(), pod, d, facts)
	}
	r.afterWrite(ctx, pod, d, now)
	if d.Action == drain.AddFinalizer {
		out.Advice = r.Checks.AfterFinalizerAdded(ctx, pod, d, now)
	}
	return out, nil
}

// afterWrite keeps the re-check timer right after a write and records the Kubernetes Event of
// its milestone (milestone).
func (r *Reconciler) afterWrite(ctx context.Context, pod *corev1.Pod, d drain.Decision, now time.Time) {
	switch d.Action {
	case drain.StartDrain:
		r.scheduleRecheck(pod, d.RecheckAt)
	case drain.RemoveFinalizer:
		// Released: no re-check, no sibling wait. The last write stays remembered, so the
		// older events still on their way cost nothing (the delete event forgets it).
		r.Rechecks.Cancel(pod.UID)
		r.siblings.forget(pod.UID)
	}
	if eventType, reason, msg := milestone(d, now); reason != "" {
		r.event(ctx, pod, eventType, reason, msg)
	}
}

// milestone is the Kubernetes Event of a written decision: its type, reason and message
// (reason "" for a write that is no milestone: the finalizer added).
func milestone(d drain.Decision, now time.Time) (eventType, reason, msg string) {
	switch {
	case d.Action == drain.StartDrain:
		eventType, reason = corev1.EventTypeNormal, names.EventDrainStarted
		msg = fmt.Sprintf("Drain started (%s, %s pod); finalizer %s is removed once these gates open: %s; by %s at the latest",
			d.Deletion(), d.Kind, names.Finalizer, drain.GateNames(d.Gates), d.Deadline.Format(time.RFC3339))
		if len(d.Warnings) > 0 {
			msg += " (" + strings.Join(d.Warnings, "; ") + ")"
		}
	case d.Action == drain.RemoveFinalizer:
		switch d.Reason {
		case names.ReasonDrained:
			eventType, reason = corev1.EventTypeNormal, names.EventDrainCompleted
			msg = fmt.Sprintf("Drained after %.1fs (%s); finalizer %s removed", d.DrainSeconds(now), d.Stopped, names.Finalizer)
		case names.ReasonReplaced:
			eventType, reason = corev1.EventTypeNormal, names.EventDrainCompleted
			msg = fmt.Sprintf("Replacement Ready after %.1fs (the capacity gap of this eviction; containers: %s); finalizer %s removed", d.DrainSeconds(now), d.Stopped, names.Finalizer)
		case names.ReasonNotEvicted:
			eventType, reason = corev1.EventTypeNormal, names.EventFinalizerRemoved
			msg = fmt.Sprintf("Deleted, not evicted (holdOn: evictions): a rollout, scale-down or delete is not held; finalizer %s removed", names.Finalizer)
		case names.ReasonTimeout:
			eventType, reason = corev1.EventTypeWarning, names.EventDrainTimedOut
			msg = fmt.Sprintf("Drain timed out after %.1fs (still closed: %s); finalizer %s removed", d.DrainSeconds(now), cmp.Or(drain.ClosedGates(d.Gates), "none"), names.Finalizer)
		case names.ReasonUninstalled:
			eventType, reason = corev1.EventTypeNormal, names.EventFinalizerRemoved
			msg = fmt.Sprintf("vpa-graceful-drain is being uninstalled; finalizer %s removed", names.Finalizer)
		case names.ReasonDryRun:
			eventType, reason = corev1.EventTypeNormal, names.EventFinalizerRemoved
			msg = fmt.Sprintf("vpa-graceful-drain runs in dry-run mode, which never holds a pod; finalizer %s removed", names.Finalizer)
		default:
			eventType, reason = corev1.EventTypeNormal, names.EventFinalizerRemoved
			msg = fmt.Sprintf("Pod is no longer managed; finalizer %s removed", names.Finalizer)
		}
	}
	return eventType, reason, msg
}

// decisionLog writes the lines about one decision: the pod, the action, its reason and, with
// gates, the owner, the gates' states, the drain's seconds and its deadline, then the line's
// own attributes. It formats them only for a line its level lets through.
type decisionLog struct {
	logger *slog.Logger
	pod    *corev1.Pod
	d      drain.Decision
	now    time.Time
}

func (l decisionLog) write(ctx context.Context, level slog.Level, msg string, extra ...slog.Attr) {
	if !l.logger.Enabled(ctx, level) {
		return
	}
	d := l.d
	attrs := make([]slog.Attr, 0, 8+len(extra))
	attrs = append(attrs, podAttrs(l.pod), slog.String("action", d.Action.String()), slog.String("reason", d.Reason))
	if len(d.Gates) > 0 {
		attrs = append(attrs, slog.String("ownerKind", string(d.Kind)), slog.String("owner", d.Owner), slog.String("gates", drain.GateStates(d.Gates)),
			slog.Float64("drainSeconds", d.DrainSeconds(l.now)), slog.Time("deadline", d.Deadline))
	}
	l.logger.LogAttrs(ctx, level, msg, append(attrs, extra...)...)
}
