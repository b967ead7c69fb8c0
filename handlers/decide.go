package handlers

import (
	"context"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"function/handlers/drain"
)

// Inspect is the decision the function would make on pod now: DecideWith with the facts it
// would read (the owner, its replicas, the endpoints), read the same way as when a decision is
// applied. It writes nothing, records no Event and schedules no re-check, whatever DryRun says
// (a dry-run's "release every deleting pod" is not applied: the decision is the configured
// policy's). A fact that cannot be read shows as a closed gate with the error in its detail.
// For status views (`kubectl vpa-drain status`).
func (r *Reconciler) Inspect(ctx context.Context, pod *corev1.Pod) drain.Decision {
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
		r.gather(ctx, pod, d.Needs, &facts)
		if len(facts.Errors) > 0 && r.Log != nil {
			r.Log.WarnContext(ctx, "could not read what the drain waits for; its gate stays closed until the deadline",
				podAttrs(pod), slog.String("needs", d.Needs.String()), slog.String("error", strings.Join(facts.Errors, "; ")))
		}
		now = r.now()
		d = decide(pod, now, facts)
	}
	return d, facts, now
}

// now is the Reconciler's clock, or the real time when it has none.
func (r *Reconciler) now() time.Time {
	if r.Server != nil {
		return r.Server.Now()
	}
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}
