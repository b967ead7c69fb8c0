//go:build integration

package integration

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpa_clientset "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/surge"
	"function/names"
	"function/test/cluster"
)

// The surge-rollout budget holds across replicas: three controllers (three replicas of the
// function, as its own ServiceAccount, under config/rbac*.yaml and the admission policy)
// sweep 20 opted-in Deployments that are all due a rollout, at once and again; the budget's
// Lease lets exactly the configured number start, never one more (each replica counting only
// its own, as before, would have started up to three times as many).
func TestIntegrationSurgeBudgetAcrossReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, cp.ApplyRBAC(ctx))
	require.NoError(t, cluster.InstallVPACRDs(cp))
	fnCfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	require.NoError(t, err)
	require.NoError(t, cluster.WaitAdmissionPolicy(ctx, cp.Client, fnCfg))
	fn, err := kubernetes.NewForConfig(fnCfg)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(fnCfg)
	require.NoError(t, err)
	vpas, err := vpa_clientset.NewForConfig(cp.Config)
	require.NoError(t, err)

	for _, tt := range []struct {
		name                   string
		maxInFlight, perMinute int
		want                   int
	}{
		{name: "in flight", maxInFlight: 2, perMinute: 6, want: 2},
		{name: "per minute", maxInFlight: 10, perMinute: 4, want: 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := cp.Namespace(t, "surge-budget")
			deleteBudgetLease(ctx, t)
			t.Cleanup(func() { deleteBudgetLease(context.Background(), t) })
			for i := range 20 {
				dueDeployment(ctx, t, vpas, ns, fmt.Sprintf("web-%d", i))
			}
			cfg := config.Default()
			cfg.Namespaces = config.NamespaceSelector{Include: []string{ns}}
			cfg.Surge.Enabled, cfg.Surge.UseAdmissionControllerStatus = true, false
			cfg.Surge.MaxInFlight, cfg.Surge.MaxPerMinute = tt.maxInFlight, tt.perMinute
			var replicas []*handlers.SurgeController
			for range 3 {
				c := handlers.NewSurgeController(handlers.Deps{Client: fn, Dynamic: dyn, Clock: clock.RealClock{}, Log: slog.New(slog.DiscardHandler),
					Events: handlers.APIEventRecorder{Client: fn, Now: time.Now}}, func() config.Config { return cfg })
				c.Budget.UseLease(fn, cluster.FunctionNamespace, names.SurgeLeaseName)
				replicas = append(replicas, c)
			}
			for range 2 { // every replica sweeps at once, twice
				var wg sync.WaitGroup
				for _, c := range replicas {
					wg.Go(func() {
						_, err := c.Sweep(ctx)
						assert.NoError(t, err)
					})
				}
				wg.Wait()
			}
			list, err := cp.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			started := 0
			for _, d := range list.Items {
				if d.Spec.Template.Annotations[names.AnnotationRestartedAt] != "" {
					started++
					st, err := surge.ReadState(&d)
					require.NoError(t, err)
					assert.Equal(t, surge.PhaseRolling, st.Phase)
				}
			}
			assert.Equal(t, tt.want, started, "rollouts started by 3 replicas over 20 Deployments")
			lease, err := cp.Client.CoordinationV1().Leases(cluster.FunctionNamespace).Get(ctx, names.SurgeLeaseName, metav1.GetOptions{})
			require.NoError(t, err)
			slots, err := surge.ParseSlots(lease.Annotations[names.AnnotationSurgeSlots])
			require.NoError(t, err)
			assert.Len(t, slots.InFlight(), tt.want, "one slot per rollout started")
			t.Logf("%s: %d rollouts started by 3 replicas over 20 Deployments (maxInFlight %d, maxPerMinute %d)", tt.name, started, tt.maxInFlight, tt.perMinute)
		})
	}
}

func deleteBudgetLease(ctx context.Context, t *testing.T) {
	err := cp.Client.CoordinationV1().Leases(cluster.FunctionNamespace).Delete(ctx, names.SurgeLeaseName, metav1.DeleteOptions{})
	if !apierrors.IsNotFound(err) {
		require.NoError(t, err)
	}
}

// dueDeployment creates the opted-in 1-replica Deployment name (maxSurge 1, maxUnavailable 0,
// cpu 10) with its last rollout recorded complete (no controller runs here), its one Ready
// pod of an hour, and a VPA in mode Initial recommending cpu 5: VPA's updater would update it.
func dueDeployment(ctx context.Context, t *testing.T, vpas vpa_clientset.Interface, ns, name string) {
	t.Helper()
	labels := map[string]string{"app": name}
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	d, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{names.AnnotationSurgeRollout: "true"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: req}}}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	_, err = cp.Client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-abc12-x", Labels: map[string]string{"app": name, appsv1.DefaultDeploymentUniqueLabelKey: "abc12"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-abc12", UID: "00000000-0000-0000-0000-000000000001",
				Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: cluster.NodeName, Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: req}}}},
	}
	pod, err = cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: time.Now().Add(-time.Hour)},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	_, err = cp.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)

	cpu := func(v string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(v), corev1.ResourceMemory: resource.MustParse("1Gi")}
	}
	v, err := vpas.AutoscalingV1().VerticalPodAutoscalers(ns).Create(ctx, &vpa_types.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: vpa_types.VerticalPodAutoscalerSpec{TargetRef: &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			UpdatePolicy: &vpa_types.PodUpdatePolicy{UpdateMode: ptr.To(vpa_types.UpdateModeInitial)}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	v.Status.Recommendation = &vpa_types.RecommendedPodResources{ContainerRecommendations: []vpa_types.RecommendedContainerResources{
		{ContainerName: "app", Target: cpu("5"), LowerBound: cpu("1"), UpperBound: cpu("6")}}}
	_, err = vpas.AutoscalingV1().VerticalPodAutoscalers(ns).UpdateStatus(ctx, v, metav1.UpdateOptions{})
	require.NoError(t, err)
}
