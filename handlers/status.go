package handlers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ReasonReleasedByHand: the finalizer was removed by hand (`kubectl vpa-drain release`), the
// incident escape hatch.
const ReasonReleasedByHand = "released-by-hand"

// Inspect is the decision the function would make on pod now: DecideWith with the facts it
// would read (the owner, its replicas, the endpoints), read the same way as when a decision is
// applied. It writes nothing, records no Event and schedules no re-check, whatever DryRun says
// (a dry-run's "release every deleting pod" is not applied: the decision is the configured
// policy's). A fact that cannot be read shows as a closed gate with the error in its detail.
// For status views (`kubectl vpa-drain status`).
func (r *Reconciler) Inspect(ctx context.Context, pod *corev1.Pod) Decision {
	cfg := r.CurrentConfig()
	facts := Facts{WaitedForReplacement: r.siblings.waited(pod.UID)}
	d := DecideWith(pod, cfg, r.now(), facts)
	for range 3 { // owner, then replicas and endpoints
		if d.Needs == 0 {
			break
		}
		r.gather(ctx, pod, d.Needs, &facts)
		d = DecideWith(pod, cfg, r.now(), facts)
	}
	return d
}

// now is the Reconciler's clock, or the real time when it has none.
func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}
