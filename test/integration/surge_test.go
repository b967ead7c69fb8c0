//go:build integration

package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/surge"
	"function/names"
	"function/test/cluster"
)

// The surge policy's restart and abort, as the real API server applies them: the restart
// sets the template annotations and the state in one write and makes exactly the generation
// the state records (what follow compares to tell the user's changes from ours); a patch
// decided on another read is refused; the abort removes what the restart added.
func TestIntegrationSurgePatchOnTheAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := cp.Namespace(t, "surge")
	d := surgeDeployment(ctx, t, ns)

	dec, v := restart(t, d)
	patch, err := surge.Patch(d, dec)
	require.NoError(t, err)

	// A patch decided on another read: refused, nothing written.
	stale := d.DeepCopy()
	stale.ResourceVersion = "1"
	stalePatch, err := surge.Patch(stale, dec)
	require.NoError(t, err)
	_, err = cp.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.JSONPatchType, stalePatch, metav1.PatchOptions{})
	require.Error(t, err)
	assert.True(t, apierrors.IsInvalid(err) || apierrors.IsConflict(err), "a failed test op: %v", err)

	restarted, err := cp.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.JSONPatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err)
	assert.Equal(t, dec.Template, restarted.Spec.Template.Annotations)
	assert.Equal(t, dec.State.Generation, restarted.Generation, "the restart makes the generation the state records")
	st, err := surge.ReadState(restarted)
	require.NoError(t, err)
	assert.Equal(t, surge.PhaseRolling, st.Phase)
	assert.Equal(t, dec.Prediction.Hash, st.Prediction)
	assert.Equal(t, "true", restarted.Annotations[names.AnnotationSurgeRollout])

	// A capacity gap tracked (no pod serves): the state annotation alone is written, which the
	// API server counts as a new generation; the state records it, so the next decision on the
	// Deployment still follows the rollout (not "the user's").
	in := surge.DecideInput{Input: surge.Input{Deployment: restarted, VPA: v, Settings: surge.DefaultSettings()},
		Enabled: true, Limits: surge.LimitsOf(config.Default().Surge), Now: time.Now().UTC()}
	track := surge.Decide(in)
	require.Equal(t, surge.Track, track.Action, track.Reason)
	patch, err = surge.Patch(restarted, track)
	require.NoError(t, err)
	tracked, err := cp.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.JSONPatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err)
	assert.Equal(t, restarted.Generation+1, tracked.Generation, "an annotation change is a new generation")
	assert.Equal(t, track.State.Generation, tracked.Generation)
	in.Deployment = tracked
	again := surge.Decide(in)
	assert.NotEqual(t, surge.Release, again.Action, again.Reason)
	restarted = tracked

	// The abort, decided on the restarted Deployment: the template annotations removed again.
	restarted.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}
	abort := surge.Decide(surge.DecideInput{Input: surge.Input{Deployment: restarted, VPA: v, Settings: surge.DefaultSettings()},
		Enabled: true, Limits: surge.LimitsOf(config.Default().Surge), Now: time.Now().UTC()})
	require.Equal(t, surge.Abort, abort.Action, abort.Reason)
	patch, err = surge.Patch(restarted, abort)
	require.NoError(t, err)
	reverted, err := cp.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.JSONPatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err)
	assert.Empty(t, reverted.Spec.Template.Annotations, "the template as before the restart")
	assert.Equal(t, d.Spec.Template, reverted.Spec.Template)
	st, err = surge.ReadState(reverted)
	require.NoError(t, err)
	assert.Equal(t, surge.PhaseAborted, st.Phase)
}

// surgeDeployment creates the opted-in 1-replica Deployment web (maxSurge 1, maxUnavailable 0,
// cpu 10) in ns, its last rollout recorded complete (no controller runs here).
func surgeDeployment(ctx context.Context, t *testing.T, ns string) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": "web"}
	d, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels, Annotations: map[string]string{names.AnnotationSurgeRollout: "true"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("10"), corev1.ResourceMemory: resource.MustParse("1Gi")}}}}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	d, err = cp.Client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	return d
}

// restart is the surge decision to restart d, decided as the sweeps decide it (its one Ready
// pod running for an hour, a VPA recommending cpu 5: outside the pod's bounds), and that VPA.
func restart(t *testing.T, d *appsv1.Deployment) (surge.Decision, *vpa_types.VerticalPodAutoscaler) {
	t.Helper()
	now := time.Now().UTC()
	cpu := func(v string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(v), corev1.ResourceMemory: resource.MustParse("1Gi")}
	}
	v := &vpa_types.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: d.Namespace},
		Spec: vpa_types.VerticalPodAutoscalerSpec{TargetRef: &autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
			UpdatePolicy: &vpa_types.PodUpdatePolicy{UpdateMode: ptr.To(vpa_types.UpdateModeInitial)}},
		Status: vpa_types.VerticalPodAutoscalerStatus{Recommendation: &vpa_types.RecommendedPodResources{ContainerRecommendations: []vpa_types.RecommendedContainerResources{
			{ContainerName: "app", Target: cpu("5"), LowerBound: cpu("1"), UpperBound: cpu("6")}}}},
	}
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: d.Namespace}, Spec: d.Spec.Template.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: now.Add(-time.Hour)},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	dec := surge.Decide(surge.DecideInput{
		Input:   surge.Input{Deployment: d, Pods: []*corev1.Pod{running}, VPA: v, AdmissionController: true, Settings: surge.DefaultSettings()},
		Enabled: true, Limits: surge.LimitsOf(config.Default().Surge), Now: now,
	})
	require.Equal(t, surge.Restart, dec.Action, dec.Reason)
	return dec, v
}

// restartPatch is surge.Patch of a restart of d.
func restartPatch(t *testing.T, d *appsv1.Deployment) []byte {
	t.Helper()
	dec, _ := restart(t, d)
	patch, err := surge.Patch(d, dec)
	require.NoError(t, err)
	return patch
}

// With surge rollouts, the admission policy lets the function's ServiceAccount make exactly the
// restart's write to a Deployment, and refuses every other change with a 403.
func TestIntegrationAdmissionPolicyDeployments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, cp.ApplyRBAC(ctx))
	ns := cp.Namespace(t, "vap-deploy")
	fn := functionClient(t, ns)
	fnCfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	require.NoError(t, err)
	require.NoError(t, cluster.WaitAdmissionPolicy(ctx, cp.Client, fnCfg))
	require.NoError(t, cluster.WaitAuthorized(ctx, fnCfg, authorizationv1.ResourceAttributes{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: ns}))
	d := surgeDeployment(ctx, t, ns)

	refused := []struct {
		name  string
		patch []byte
	}{
		{"an image change", jsonPatch(t, []any{"replace", "/spec/template/spec/containers/0/image", "evil.example.com/miner"})},
		{"a replicas change", jsonPatch(t, []any{"replace", "/spec/replicas", 0})},
		{"a label change", jsonPatch(t, []any{"add", "/metadata/labels/owner", "eve"})},
		{"a template label change", jsonPatch(t, []any{"add", "/spec/template/metadata/labels/track", "canary"})},
		{"another template annotation", jsonPatch(t, []any{"add", "/spec/template/metadata/annotations", map[string]string{"example.com/x": "1"}})},
		{"another annotation", jsonPatch(t, []any{"add", "/metadata/annotations/example.com~1x", "1"})},
		{"pausing it", jsonPatch(t, []any{"add", "/spec/paused", true})},
	}
	for _, tt := range refused {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			_, err := fn.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.JSONPatchType, tt.patch, metav1.PatchOptions{})
			require.Error(t, err)
			assert.True(t, cluster.IsAdmissionPolicyRefusal(err), "refused by the policy with a 403: %v", err)
		})
	}
	t.Run("refused: deleting it", func(t *testing.T) {
		err := fn.AppsV1().Deployments(ns).Delete(ctx, d.Name, metav1.DeleteOptions{})
		require.Error(t, err)
		assert.True(t, apierrors.IsForbidden(err), "%v", err)
	})

	t.Run("the restart passes", func(t *testing.T) {
		live, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		require.NoError(t, err)
		restarted, err := fn.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.JSONPatchType, restartPatch(t, live), metav1.PatchOptions{})
		require.NoError(t, err)
		assert.NotEmpty(t, restarted.Spec.Template.Annotations[names.AnnotationRestartedAt])
		assert.Equal(t, live.Spec.Template.Spec, restarted.Spec.Template.Spec, "the pod spec as it was")
	})
	t.Run("the admin is not narrowed", func(t *testing.T) {
		_, err := cp.Client.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.JSONPatchType,
			jsonPatch(t, []any{"replace", "/spec/template/spec/containers/0/image", "busybox:1.37"}), metav1.PatchOptions{})
		require.NoError(t, err)
	})
}
