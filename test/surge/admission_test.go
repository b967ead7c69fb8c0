//go:build e2e

package surge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpa_clientset "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/status"
	"k8s.io/utils/ptr"

	"function/test/cluster"
)

// The test bed's VPA admission controller is VPA's own: a pod created for a Deployment that a
// VerticalPodAutoscaler in mode Initial targets gets the recommendation's requests (what a
// surge rollout relies on), and its status Lease is valid as the updater checks it.
func TestVPAAdmissionControllerSizesNewPods(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	ns := cp.Namespace(t, "sized")
	cluster.StartWorkloadKubelet(t, cp.Client, ns, cluster.KubeletOptions{})
	vpas, err := vpa_clientset.NewForConfig(cp.Config)
	require.NoError(t, err)

	target := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}
	v, err := vpas.AutoscalingV1().VerticalPodAutoscalers(ns).Create(ctx, &vpa_types.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: vpa_types.VerticalPodAutoscalerSpec{
			TargetRef:    &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			UpdatePolicy: &vpa_types.PodUpdatePolicy{UpdateMode: ptr.To(vpa_types.UpdateModeInitial)},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	v.Status.Recommendation = &vpa_types.RecommendedPodResources{ContainerRecommendations: []vpa_types.RecommendedContainerResources{{
		ContainerName: "app", Target: target, LowerBound: target, UpperBound: target, UncappedTarget: target}}}
	_, err = vpas.AutoscalingV1().VerticalPodAutoscalers(ns).UpdateStatus(ctx, v, metav1.UpdateOptions{})
	require.NoError(t, err)

	d := cluster.DeploymentSpec(ns, "web", 1, nil)
	for i := range d.Spec.Template.Spec.Containers {
		d.Spec.Template.Spec.Containers[i].Resources.Requests = corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	}
	require.Equal(t, "app", d.Spec.Template.Spec.Containers[0].Name, "the recommendation names the container")
	_, err = cp.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	names, err := cluster.WaitForReadyReplicas(ctx, cp.Client, ns, labels.SelectorFromSet(labels.Set{"app": "web"}), 1)
	require.NoError(t, err)
	pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, names[0], metav1.GetOptions{})
	require.NoError(t, err)
	assert.True(t, equality.Semantic.DeepEqual(target, pod.Spec.Containers[0].Resources.Requests),
		"sized by VPA's admission controller: %v", pod.Spec.Containers[0].Resources.Requests)
	assert.Contains(t, pod.Annotations, "vpaUpdates", "VPA's admission controller records what it changed")

	valid, err := status.NewClient(cp.Client, status.AdmissionControllerStatusName, vac.LeaseNamespace, time.Minute, "test").
		IsStatusValid(ctx, status.AdmissionControllerStatusTimeout)
	require.NoError(t, err)
	assert.True(t, valid, "its status Lease is valid as the updater checks it")
}
