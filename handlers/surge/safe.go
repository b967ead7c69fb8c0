package surge

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpa_api_util "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/vpa"
	"k8s.io/utils/ptr"

	"function/handlers/drain"
)

// Condition names one precondition of a surge rollout, as the SurgeRolloutSkipped Event and
// the logs name it.
type Condition string

// The preconditions, in the order they are checked.
const (
	CondNotRollingUpdate        Condition = "not-rolling-update"
	CondNoSurge                 Condition = "max-surge-zero"
	CondSingleReplicaUnavail    Condition = "single-replica-max-unavailable"
	CondPaused                  Condition = "paused"
	CondRolloutInProgress       Condition = "rollout-in-progress"
	CondPodDeleting             Condition = "pod-deleting"
	CondPodUnready              Condition = "pod-unready"
	CondNoVPA                   Condition = "no-vpa"
	CondVPAEvicts               Condition = "vpa-evicts"
	CondVPANotInitial           Condition = "vpa-mode-not-initial"
	CondNoRecommendation        Condition = "no-recommendation"
	CondAdmissionControllerDown Condition = "admission-controller-down"
	// CondGaveUp: Limits.MaxAttempts rollouts in a row were aborted (not a precondition of
	// Check: Decide reports it, once, as a Warning SurgeRolloutFailed).
	CondGaveUp Condition = "gave-up"
)

// updateModeAuto is VPA's deprecated Auto mode (the default when unset): it still evicts.
const updateModeAuto vpa_types.UpdateMode = "Auto"

// Input is what the preconditions are checked on: the Deployment and its own pods as read,
// its controlling VerticalPodAutoscaler (nil: none) and whether VPA's admission controller is
// alive (its status Lease is fresh).
type Input struct {
	Deployment          *appsv1.Deployment
	Pods                []*corev1.Pod
	VPA                 *vpa_types.VerticalPodAutoscaler
	AdmissionController bool
	Settings            Settings
	// LimitRanges are the namespace's, applied as VPA's admission controller and updater do.
	LimitRanges []*corev1.LimitRange
}

// Failed is a precondition that does not hold, and why.
type Failed struct {
	Condition Condition
	Detail    string
}

// Check returns the first precondition that does not hold (nil when it is safe to surge):
// a RollingUpdate whose maxSurge resolves to at least 1 (and, for 1 replica, maxUnavailable to
// 0), not paused, its last rollout complete and observed, no pod deleting or unready, a VPA in
// mode Initial with a recommendation (a VPA that evicts would race the rollout: refused), and
// VPA's admission controller alive when the settings ask for it.
func Check(in Input) *Failed {
	d := in.Deployment
	fail := func(c Condition, format string, args ...any) *Failed {
		return &Failed{Condition: c, Detail: fmt.Sprintf(format, args...)}
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType && d.Spec.Strategy.Type != "" {
		return fail(CondNotRollingUpdate, "strategy %s replaces every pod at once", d.Spec.Strategy.Type)
	}
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	surge, unavailable, err := Fenceposts(d)
	switch {
	case err != nil:
		return fail(CondNoSurge, "%v", err)
	case surge < 1:
		return fail(CondNoSurge, "maxSurge resolves to %d for %d replicas: no new pod can start before an old one goes", surge, replicas)
	case replicas == 1 && unavailable > 0:
		return fail(CondSingleReplicaUnavail, "maxUnavailable resolves to %d for 1 replica: the rollout may remove the only pod first", unavailable)
	case d.Spec.Paused:
		return fail(CondPaused, "the Deployment is paused")
	}
	if f := rolloutComplete(d, replicas); f != "" {
		return fail(CondRolloutInProgress, "%s", f)
	}
	for _, p := range in.Pods {
		if p.DeletionTimestamp != nil {
			return fail(CondPodDeleting, "pod %s is deleting", p.Name)
		}
		if !drain.Ready(p) {
			return fail(CondPodUnready, "pod %s is not Ready", p.Name)
		}
	}
	if in.VPA == nil {
		return fail(CondNoVPA, "no VerticalPodAutoscaler targets the Deployment")
	}
	switch mode := vpa_api_util.GetUpdateMode(in.VPA); mode {
	case vpa_types.UpdateModeInitial:
	case vpa_types.UpdateModeRecreate, updateModeAuto, vpa_types.UpdateModeInPlaceOrRecreate, vpa_types.UpdateModeInPlace:
		return fail(CondVPAEvicts, "VerticalPodAutoscaler %s has updateMode %s: its updater would race the rollout (set it to Initial)", in.VPA.Name, mode)
	default:
		return fail(CondVPANotInitial, "VerticalPodAutoscaler %s has updateMode %s (surge rollouts need Initial)", in.VPA.Name, mode)
	}
	if r := in.VPA.Status.Recommendation; r == nil || len(r.ContainerRecommendations) == 0 {
		return fail(CondNoRecommendation, "VerticalPodAutoscaler %s has no recommendation yet", in.VPA.Name)
	}
	if in.Settings.UseAdmissionControllerStatus && !in.AdmissionController {
		return fail(CondAdmissionControllerDown, "VPA's admission controller is not reporting itself alive: new pods would not be sized")
	}
	return nil
}

// Fenceposts resolves the Deployment's maxSurge and maxUnavailable as the Deployment
// controller does: maxSurge of a percentage rounded up, maxUnavailable rounded down, and
// maxUnavailable 1 when both come to 0. Unset values are the API defaults (25%).
func Fenceposts(d *appsv1.Deployment) (surge, unavailable int32, err error) {
	replicas := int(ptr.Deref(d.Spec.Replicas, 1))
	def := intstr.FromString("25%")
	maxSurge, maxUnavailable := &def, &def
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			maxSurge = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			maxUnavailable = ru.MaxUnavailable
		}
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(maxSurge, replicas, true)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid maxSurge %s: %w", maxSurge.String(), err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, replicas, false)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid maxUnavailable %s: %w", maxUnavailable.String(), err)
	}
	if s == 0 && u == 0 {
		u = 1 // the Deployment controller's fencepost: a rollout must make progress
	}
	return int32(s), int32(u), nil
}

// rolloutComplete says why the Deployment's last rollout is not complete and observed ("" if
// it is), as `kubectl rollout status` judges it.
func rolloutComplete(d *appsv1.Deployment, replicas int32) string {
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return fmt.Sprintf("generation %d not observed yet (observed %d)", d.Generation, st.ObservedGeneration)
	case st.UpdatedReplicas < replicas:
		return fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, replicas)
	case st.Replicas > st.UpdatedReplicas:
		return fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return ""
}
