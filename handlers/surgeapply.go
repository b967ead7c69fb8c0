package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/status"
	"k8s.io/client-go/kubernetes"

	"function/config"
	"function/handlers/surge"
	"function/names"
)

// evaluateLocked reads the Deployment ns/name (listed: as the sweep listed it just now, nil:
// read it) and, when it opted in, decides and applies
// (apply); a failed guard is decided again at once on what it is then (at most
// surgeGuardAttempts times), an error the API server may not repeat is retried with the
// Deployment's backoff, a refusal for good is reported once (SurgeRolloutFailed) and not
// tried again for that decision. nil: nothing applied.
func (c *SurgeController) evaluateLocked(ctx context.Context, cfg config.Config, ns, name string, listed *appsv1.Deployment,
	vpas []*vpa_types.VerticalPodAutoscaler, now time.Time) (*SurgeReport, error) {
	key := ns + "/" + name
	readFailed := func(err error) (*SurgeReport, error) {
		if isAPIStatus(err) || clientUnavailable(err) {
			c.retry(key) // the API server may answer later
		}
		return nil, fmt.Errorf("reading Deployment %s: %w", key, err)
	}
	d := listed // the sweep's copy, for the first attempt only
	if d == nil {
		var err error
		if d, err = c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil, nil // nothing remembered about a name no object has
		} else if err != nil {
			return readFailed(err)
		}
	}
	var (
		rep      *SurgeReport
		optedOut bool
		lastErr  error
	)
	_, err := Guarded(ctx, d, surgeGuardAttempts,
		func(ctx context.Context, d *appsv1.Deployment) error {
			c.bound(d, now)
			if optedOut = d.Annotations[names.AnnotationSurgeRollout] != "true"; optedOut {
				return nil
			}
			rep, lastErr = c.apply(ctx, cfg, d, vpas, now)
			return lastErr
		},
		func(ctx context.Context, d *appsv1.Deployment) (*appsv1.Deployment, bool, error) {
			c.Log.DebugContext(ctx, "surge rollout: "+lastErr.Error()+"; deciding again", slog.String("namespace", ns), slog.String("deployment", name))
			now = c.now()
			fresh, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil, false, nil
			}
			return fresh, err == nil, err
		},
		func(err error) bool { return errors.Is(err, errSurgeGuard) })
	var reread *RereadError
	switch {
	case errors.As(err, &reread):
		return readFailed(reread.Err)
	case errors.Is(err, ErrGone):
		return nil, nil // nothing remembered about a name no object has
	case errors.Is(err, errSurgeGuard):
		c.retry(key) // others keep writing it: later, with its backoff
		return nil, nil
	case errors.Is(err, errSurgeSuppressed):
		c.retry(key) // its decision was refused for good: with the backoff, not every SurgeFollow
		return nil, nil
	case err != nil:
		c.retry(key)
		return nil, err
	case optedOut:
		return nil, nil
	}
	c.init()
	c.queue.Forget(key) // its backoff starts again
	return rep, nil
}

// retry has the Deployment key evaluated again after its backoff.
func (c *SurgeController) retry(key string) { c.enqueue(key, 0, true) }

// apply decides on the opted-in Deployment d as read (with its pods, the namespace's VPAs
// unless given and LimitRanges, VPA's admission controller's status), claims a budget slot
// for a restart and writes the decision in one patch guarded on d's resourceVersion.
func (c *SurgeController) apply(ctx context.Context, cfg config.Config, d *appsv1.Deployment, vpas []*vpa_types.VerticalPodAutoscaler,
	now time.Time) (*SurgeReport, error) {
	key := d.Namespace + "/" + d.Name
	pods, err := listOwnPods(ctx, c.Client, d.Namespace, config.KindDeployment, d.Name, d.Spec.Selector,
		func(p *corev1.Pod) bool { return ownedByDeploymentName(p, d.Name) })
	if err != nil {
		return nil, err
	}
	if vpas == nil {
		if vpas, err = listVPAs(ctx, c.Dynamic, d.Namespace); err != nil {
			return nil, err
		}
	}
	lrs, err := listLimitRanges(ctx, c.Client, d.Namespace)
	if err != nil {
		return nil, err
	}
	limits := surge.LimitsOf(cfg.Surge)
	in := surge.DecideInput{
		Input: surge.Input{Deployment: d, Pods: pods, VPA: surge.ControllingVPA(vpas, d.Namespace, d.Name),
			AdmissionController: admissionControllerAlive(ctx, c.Deps, cfg),
			Settings:            surge.SettingsOf(cfg.Surge),
			LimitRanges:         lrs},
		Enabled: cfg.Surge.Enabled && !cfg.Uninstalling, Excluded: !cfg.Namespaces.Selects(d.Namespace), Limits: limits, Now: now,
	}
	dec := surge.Decide(in)
	c.reports.warnState(ctx, d, dec.Warning)
	if dec.Action != surge.None && holds(&c.refused, key, refusal(dec)) {
		c.Log.DebugContext(ctx, "surge rollout: the API server refused this write before; not tried again for this prediction",
			slog.String("namespace", d.Namespace), slog.String("deployment", d.Name), slog.String("action", dec.Action.String()))
		if st, _ := surge.ReadState(d); st.Phase == surge.PhaseRolling {
			return nil, errSurgeSuppressed // still followed, with the backoff (the sweeps, the deadline)
		}
		return nil, nil
	}
	claimed := false
	if dec.Action == surge.Restart && !c.DryRun {
		why, err := c.Budget.Claim(ctx, key, d.UID, now, limits)
		if err != nil {
			return nil, err
		}
		if why != "" {
			dec = surge.Decision{Reason: why}
		}
		claimed = why == ""
	}
	log := c.Log.With(slog.String("namespace", d.Namespace), slog.String("deployment", d.Name),
		slog.String("action", dec.Action.String()), slog.String("reason", dec.Reason))
	if dec.Action == surge.None {
		log.DebugContext(ctx, "surge rollout: nothing to do")
		if st, _ := surge.ReadState(d); st.Phase == surge.PhaseRolling && !in.Excluded {
			c.enqueue(key, SurgeFollow, false)
		}
		return nil, nil
	}
	report := &SurgeReport{Namespace: d.Namespace, Name: d.Name, UID: d.UID, Decision: dec, DryRun: c.DryRun, At: now}
	if c.DryRun {
		log.InfoContext(ctx, "surge rollout: dry-run, not applied", slog.Bool("dryRun", true))
		return report, nil
	}
	patch, err := surge.Patch(d, dec)
	if err == nil {
		_, err = c.Client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: names.Component})
	}
	if err != nil {
		if claimed && definitelyNotApplied(err) { // else the restart may have been written: its slot stays, to its end or deadline
			if endErr := c.Budget.End(ctx, key, now, limits.Timeout, true); endErr != nil {
				log.WarnContext(ctx, "surge rollout: cannot give back the budget slot; it counts until the rollout's deadline", slog.String("error", endErr.Error()))
			}
		}
		return nil, c.writeFailed(ctx, log, d, dec, err)
	}
	if dec.Action.Ends() {
		if err := c.Budget.End(ctx, key, now, limits.Timeout, false); err != nil {
			log.WarnContext(ctx, "surge rollout: cannot end the budget slot; it counts until the rollout's deadline", slog.String("error", err.Error()))
		}
	}
	if dec.State.Phase == surge.PhaseRolling {
		c.enqueue(key, SurgeFollow, false) // started, or a gap tracked: follow it to its end
		c.asks.put(key, now.Add(SurgeEvalRolling))
	}
	c.reports.report(ctx, log, d, dec, now)
	return report, nil
}

// writeFailed sorts a failed write: a guard failure (errSurgeGuard: decided again), a refusal
// for good (reported once, not tried again for this decision: nil) or an error to retry.
func (c *SurgeController) writeFailed(ctx context.Context, log *slog.Logger, d *appsv1.Deployment, dec surge.Decision, err error) error {
	key := d.Namespace + "/" + d.Name
	var status apierrors.APIStatus
	code := int32(0)
	if errors.As(err, &status) {
		code = status.Status().Code
	}
	switch code {
	case http.StatusConflict, http.StatusNotFound:
		return fmt.Errorf("%w: %w", errSurgeGuard, err)
	case http.StatusUnprocessableEntity:
		// A failed test op of the guard, or an object the API server will never take: read
		// it again to tell (it changed: the guard).
		live, getErr := c.Client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if getErr != nil || live.UID != d.UID || live.ResourceVersion != d.ResourceVersion {
			return fmt.Errorf("%w: %w", errSurgeGuard, err)
		}
	case http.StatusForbidden, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
	default: // 429, 5xx, a transport error: retried with the Deployment's backoff
		return fmt.Errorf("patching Deployment %s: %w", key, err)
	}
	c.refused.put(key, refusal(dec))
	why := fmt.Sprintf("%v: %v", errSurgeRefused, err)
	log.WarnContext(ctx, "surge rollout: the API server refuses the write; not tried again for this prediction", slog.String("error", cut(err.Error())))
	c.metrics().SurgeRollout(ctx, OutcomeFailed, -1, 0)
	msg := fmt.Sprintf("cannot %s the surge rollout (prediction %s): %s; not tried again for this prediction", dec.Action, dec.State.Prediction, cut(why))
	c.reports.record(ctx, log, d, corev1.EventTypeWarning, names.EventSurgeRolloutFailed, msg)
	return nil
}

// errSurgeSuppressed: the decision is one the API server refused for good before.
var errSurgeSuppressed = errors.New("a decision the API server refused before")

// isAPIStatus: err is an answer of the API server (a status), not a client-side error.
func isAPIStatus(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status)
}

// clientUnavailable: the API server could not be reached or did not answer in time.
func clientUnavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)
}

// definitelyNotApplied: the API server answered that it did not apply the write (a refusal or
// a failed guard), unlike a timeout or a 5xx after which it may have.
func definitelyNotApplied(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return !clientUnavailable(err) // built or refused before it was sent
	}
	switch status.Status().Code {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge,
		http.StatusUnprocessableEntity, http.StatusTooManyRequests:
		return true
	}
	return false
}

// refusal names a decision for the refused map: its action and prediction.
func refusal(dec surge.Decision) string { return dec.Action.String() + "/" + dec.State.Prediction }

// limitRanges lists the namespace's LimitRanges, which VPA's admission controller applies to
// the pods it sizes (the surge role lists them: config/rbac-surge.yaml).
func listLimitRanges(ctx context.Context, client kubernetes.Interface, ns string) ([]*corev1.LimitRange, error) {
	list, err := client.CoreV1().LimitRanges(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the LimitRanges of %s: %w", ns, err)
	}
	lrs := make([]*corev1.LimitRange, len(list.Items))
	for i := range list.Items {
		lrs[i] = &list.Items[i]
	}
	return lrs, nil
}

// admissionControllerAlive is whether VPA's admission controller reports itself alive, as the
// updater checks it (its status Lease vpa-admission-controller, in the configured namespace,
// renewed within a minute); a Lease that cannot be read counts as not alive.
func admissionControllerAlive(ctx context.Context, deps Deps, cfg config.Config) bool {
	if !cfg.Surge.UseAdmissionControllerStatus {
		return true
	}
	ns := cfg.Surge.StatusLeaseNamespace
	if ns == "" {
		ns = status.AdmissionControllerStatusNamespace
	}
	ok, err := status.NewClient(deps.Client, status.AdmissionControllerStatusName, ns, time.Minute, names.Component).
		IsStatusValid(ctx, status.AdmissionControllerStatusTimeout)
	if err != nil {
		deps.Log.DebugContext(ctx, "surge rollout: VPA's admission controller status unreadable", slog.String("namespace", ns), slog.String("error", err.Error()))
		return false
	}
	return ok
}
