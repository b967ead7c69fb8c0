package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/status"

	"function/config"
	"function/handlers/surge"
)

// Kubernetes Event reasons of surge rollouts, on the Deployment.
const (
	EventSurgeRolloutStarted   = "SurgeRolloutStarted"
	EventSurgeRolloutCompleted = "SurgeRolloutCompleted"
	EventSurgeRolloutAborted   = "SurgeRolloutAborted"
	EventSurgeRolloutSkipped   = "SurgeRolloutSkipped"
)

// SurgeOutcome is the metric outcome of an applied surge decision.
func SurgeOutcome(a surge.Action) string {
	switch a {
	case surge.Restart:
		return "started"
	case surge.Complete:
		return "completed"
	case surge.Abort:
		return "aborted"
	case surge.Release:
		return "released"
	case surge.Skip:
		return "skipped"
	}
	return a.String()
}

// SurgeResult is what one pass over the opted-in Deployments did.
type SurgeResult struct {
	Deployments int
	Decisions   map[string]int // by surge.Action.String()
}

// SurgeSweep evaluates every Deployment that opted in to surge rollouts (or has one in flight)
// once: the sweeps run it, on one replica (the sweep Lease). Every write is decided on what
// was read just now and guarded on it (surge.Patch); a Deployment that cannot be read or
// written is logged and left to the next sweep.
func (r *Reconciler) SurgeSweep(ctx context.Context) (SurgeResult, error) {
	res := SurgeResult{Decisions: map[string]int{}}
	cfg := r.CurrentConfig()
	if !cfg.Surge.Enabled || r.Client == nil {
		return res, nil
	}
	list, err := r.Client.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, fmt.Errorf("listing Deployments for surge rollouts: %w", err)
	}
	now := r.now()
	var candidates []*appsv1.Deployment
	var budget surge.Budget
	for i := range list.Items {
		d := &list.Items[i]
		st, _ := surge.ReadState(d)
		if st.Phase == surge.PhaseRolling {
			budget.InFlight++
		}
		if !st.Started.IsZero() && now.Sub(st.Started) < time.Minute {
			budget.LastMinute++
		}
		if st.Phase == surge.PhaseRolling || d.Annotations[surge.AnnotationSurgeRollout] == "true" && cfg.Namespaces.Selects(d.Namespace) {
			candidates = append(candidates, d)
		}
	}
	res.Deployments = len(candidates)
	for _, d := range candidates {
		dec, err := r.surgeOne(ctx, d, cfg, &budget, now)
		if err != nil {
			r.Log.WarnContext(ctx, "surge rollout: cannot evaluate the Deployment; the next sweep retries",
				slog.String("namespace", d.Namespace), slog.String("deployment", d.Name), slog.String("error", err.Error()))
			continue
		}
		res.Decisions[dec.Action.String()]++
	}
	return res, nil
}

// surgeOne reads what the surge policy decides a Deployment on, decides, and applies it.
func (r *Reconciler) surgeOne(ctx context.Context, d *appsv1.Deployment, cfg config.Config, budget *surge.Budget, now time.Time) (surge.Decision, error) {
	pods, err := r.ownPods(ctx, d.Namespace, config.KindDeployment, d.Name, d.Spec.Selector,
		func(p *corev1.Pod) bool { return r.ownedByDeployment(p, d.Name) })
	if err != nil {
		return surge.Decision{}, err
	}
	vpas, err := r.vpasIn(ctx, d.Namespace)
	if err != nil {
		return surge.Decision{}, err
	}
	in := surge.DecideInput{
		Input: surge.Input{Deployment: d, Pods: pods, VPA: surge.ControllingVPA(vpas, d.Namespace, d.Name),
			AdmissionController: r.admissionControllerAlive(ctx, cfg),
			Settings: surge.Settings{PodUpdateThreshold: cfg.Surge.PodUpdateThreshold, InRecommendationBoundsEvictionLifetimeThreshold: cfg.Surge.InBoundsLifetime,
				EvictAfterOOMThreshold: cfg.Surge.EvictAfterOOM, UseAdmissionControllerStatus: cfg.Surge.UseAdmissionControllerStatus}},
		Enabled: cfg.Surge.Enabled, Limits: surge.DefaultLimits(), Budget: *budget, Now: now,
	}
	dec := surge.Decide(in)
	log := r.Log.With(slog.String("namespace", d.Namespace), slog.String("deployment", d.Name),
		slog.String("action", dec.Action.String()), slog.String("reason", dec.Reason))
	if dec.Action == surge.None {
		log.DebugContext(ctx, "surge rollout: nothing to do")
		return dec, nil
	}
	if r.DryRun {
		log.InfoContext(ctx, "surge rollout: dry-run, not applied", slog.Bool("dryRun", true))
		return dec, nil
	}
	patch, err := surge.Patch(d, dec)
	if err != nil {
		return dec, err
	}
	if _, err := r.Client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: Component}); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsConflict(err) {
			return dec, fmt.Errorf("the Deployment changed since it was read (its guard failed): %w", err)
		}
		return dec, fmt.Errorf("patching Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	switch dec.Action {
	case surge.Restart:
		budget.InFlight++
		budget.LastMinute++
	case surge.Complete, surge.Abort, surge.Release:
		budget.InFlight--
	}
	log.InfoContext(ctx, "surge rollout", slog.String("prediction", dec.State.Prediction))
	seconds := -1.0
	if dec.Action == surge.Complete || dec.Action == surge.Abort || dec.Action == surge.Release {
		seconds = now.Sub(dec.State.Started).Seconds()
	}
	r.metrics().SurgeRollout(ctx, SurgeOutcome(dec.Action), seconds)
	eventType, reason := corev1.EventTypeNormal, map[surge.Action]string{
		surge.Restart: EventSurgeRolloutStarted, surge.Complete: EventSurgeRolloutCompleted, surge.Release: EventSurgeRolloutCompleted,
		surge.Abort: EventSurgeRolloutAborted, surge.Skip: EventSurgeRolloutSkipped}[dec.Action]
	if dec.Action == surge.Abort {
		eventType = corev1.EventTypeWarning
	}
	ref := corev1.ObjectReference{Kind: "Deployment", APIVersion: "apps/v1", Namespace: d.Namespace, Name: d.Name, UID: d.UID}
	r.recordEvent(ctx, log, func() error { return r.Events.RecordFor(ctx, ref, eventType, reason, dec.Reason) })
	return dec, nil
}

// vpasIn lists the namespace's VerticalPodAutoscalers (none without a dynamic client or the
// CRD).
func (r *Reconciler) vpasIn(ctx context.Context, ns string) ([]*vpa_types.VerticalPodAutoscaler, error) {
	if r.Dynamic == nil {
		return nil, nil
	}
	list, err := r.Dynamic.Resource(vpaGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if crdAbsent(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing VerticalPodAutoscalers in %s: %w", ns, err)
	}
	vpas := make([]*vpa_types.VerticalPodAutoscaler, 0, len(list.Items))
	for _, u := range list.Items {
		v := &vpa_types.VerticalPodAutoscaler{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
			return nil, fmt.Errorf("reading VerticalPodAutoscaler %s/%s: %w", ns, u.GetName(), err)
		}
		vpas = append(vpas, v)
	}
	return vpas, nil
}

// admissionControllerAlive is whether VPA's admission controller reports itself alive, as the
// updater checks it (its status Lease vpa-admission-controller in kube-system renewed within a
// minute); a Lease that cannot be read counts as not alive.
func (r *Reconciler) admissionControllerAlive(ctx context.Context, cfg config.Config) bool {
	if !cfg.Surge.UseAdmissionControllerStatus {
		return true
	}
	ok, err := status.NewClient(r.Client, status.AdmissionControllerStatusName, status.AdmissionControllerStatusNamespace, time.Minute, Component).
		IsStatusValid(ctx, status.AdmissionControllerStatusTimeout)
	if err != nil {
		r.Log.DebugContext(ctx, "surge rollout: VPA's admission controller status unreadable", slog.String("error", err.Error()))
		return false
	}
	return ok
}
