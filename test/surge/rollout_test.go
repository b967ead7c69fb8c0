//go:build e2e

package surge

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpa_clientset "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"

	"function/handlers"
	"function/handlers/surge"
	"function/test/cluster"
)

// readyWatch follows a Deployment's pods (app=name, owned by a ReplicaSet) from one watch stream and keeps the number
// of Ready pods that are not deleting, and its minimum since the watch began.
type readyWatch struct {
	mu    sync.Mutex
	ready map[string]bool
	min   int
}

func watchReady(ctx context.Context, t *testing.T, ns, name string) *readyWatch {
	t.Helper()
	sel := appSelector(name).String()
	list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	require.NoError(t, err)
	rw := &readyWatch{ready: map[string]bool{}}
	for i := range list.Items {
		rw.observe(&list.Items[i], false)
	}
	rw.min = rw.count()
	w, err := cp.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				rw.observe(p, ev.Type == watch.Deleted)
			}
		}
	}()
	return rw
}

func (rw *readyWatch) observe(p *corev1.Pod, deleted bool) {
	if c := metav1.GetControllerOf(p); c == nil || c.Kind != "ReplicaSet" {
		return // not the Deployment's (the stack's probe pod is labelled app=web too)
	}
	ready := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.ready[p.Name] = ready && !deleted && p.DeletionTimestamp == nil
	rw.min = min(rw.min, rw.count())
}

func (rw *readyWatch) count() int {
	n := 0
	for _, r := range rw.ready {
		if r {
			n++
		}
	}
	return n
}

// Min is the fewest Ready pods seen since the watch began.
func (rw *readyWatch) Min() int {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.min
}

// ownPods are the pods of the Deployment name (app=name, owned by a ReplicaSet; the stack's
// probe pod is labelled app=web too), only the Ready ones when ready.
func ownPods(ctx context.Context, ns, name string, ready bool) []corev1.Pod {
	list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: appSelector(name).String()})
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if c := metav1.GetControllerOf(&p); c == nil || c.Kind != "ReplicaSet" {
			continue
		}
		if ready && !slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
		}) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// A VPA update of a 1-replica Deployment whose pods take 8 s to become Ready, by a surge
// rollout with the real VPA admission controller and the real Deployment controller: the new,
// VPA-sized pod is Ready before the old one goes, so the Deployment never has 0 Ready pods;
// one new ReplicaSet; no second rollout for the same recommendation.
func TestSurgeRolloutKeepsASingleReplicaServed(t *testing.T) {
	cluster.StartVPAAdmissionController(t, cp)
	s := cluster.StartStack(t, cp, bin, "Resource", "surgeRollout=true", "sweepIntervalSeconds=5", "gracePeriodSeconds=0")
	ns := s.Namespace
	const readyDelay = 8 * time.Second
	cluster.StartWorkloadKubelet(t, cp.Client, ns, cluster.KubeletOptions{ReadyDelay: readyDelay})
	ctx := testContext(t, 3*time.Minute)
	vpas, err := vpa_clientset.NewForConfig(cp.Config)
	require.NoError(t, err)

	requests := func(cpu string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("64Mi")}
	}
	recommend := func(cpu string) {
		t.Helper()
		require.EventuallyWithT(t, func(c *assert.CollectT) { // retried on a conflict with VPA's own writes
			v, err := vpas.AutoscalingV1().VerticalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
			if !assert.NoError(c, err) {
				return
			}
			r := requests(cpu)
			v.Status.Recommendation = &vpa_types.RecommendedPodResources{ContainerRecommendations: []vpa_types.RecommendedContainerResources{{
				ContainerName: "app", Target: r, LowerBound: r, UpperBound: r, UncappedTarget: r}}}
			_, err = vpas.AutoscalingV1().VerticalPodAutoscalers(ns).UpdateStatus(ctx, v, metav1.UpdateOptions{})
			assert.NoError(c, err)
		}, 10*time.Second, 100*time.Millisecond)
	}
	_, err = vpas.AutoscalingV1().VerticalPodAutoscalers(ns).Create(ctx, &vpa_types.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: vpa_types.VerticalPodAutoscalerSpec{
			TargetRef:    &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			UpdatePolicy: &vpa_types.PodUpdatePolicy{UpdateMode: ptr.To(vpa_types.UpdateModeInitial)},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	recommend("100m") // what the pods ask for: nothing to update

	d := cluster.DeploymentSpec(ns, "web", 1, nil)
	d.Annotations = map[string]string{surge.AnnotationSurgeRollout: "true"}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}}
	d.Spec.Template.Spec.Containers[0].Resources.Requests = requests("100m")
	_, err = cp.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	var first []corev1.Pod
	require.Eventually(t, func() bool { first = ownPods(ctx, ns, "web", true); return len(first) == 1 }, time.Minute, 100*time.Millisecond, "the first pod Ready")
	require.Eventually(t, func() bool { // the rollout of the creation complete
		d, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 1 && d.Status.UpdatedReplicas == 1
	}, 30*time.Second, 100*time.Millisecond)

	ready := watchReady(ctx, t, ns, "web")
	require.Equal(t, 1, ready.Min())
	recommended := time.Now()
	recommend("500m") // outside the pod's bounds: VPA's updater would update it at once

	var done *appsv1.Deployment
	require.Eventually(t, func() bool {
		d, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		st, err := surge.ReadState(d)
		done = d
		return err == nil && (st.Phase == surge.PhaseCompleted || st.Phase == surge.PhaseAborted)
	}, 2*time.Minute, 200*time.Millisecond, "the surge rollout ends")
	took := time.Since(recommended)
	st, err := surge.ReadState(done)
	require.NoError(t, err)
	require.Equal(t, surge.PhaseCompleted, st.Phase, "completed, not aborted: %s", st.Reason)
	t.Logf("recommendation to completed rollout: %s; fewest Ready pods during the update: %d", took.Round(100*time.Millisecond), ready.Min())
	assert.GreaterOrEqual(t, ready.Min(), 1, "the Deployment never had 0 Ready pods")

	var pod corev1.Pod
	require.Eventually(t, func() bool { // the old pod gone, the new one left
		left := ownPods(ctx, ns, "web", false)
		if len(left) != 1 {
			return false
		}
		pod = left[0]
		return true
	}, 30*time.Second, 100*time.Millisecond, "one pod of the Deployment left")
	assert.NotEqual(t, first[0].Name, pod.Name, "a new pod")
	assert.True(t, equality.Semantic.DeepEqual(requests("500m"), pod.Spec.Containers[0].Resources.Requests), "sized by VPA: %v", pod.Spec.Containers[0].Resources.Requests)
	rss, err := cp.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, rss.Items, 2, "exactly one new ReplicaSet")

	events, err := cp.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Deployment"})
	require.NoError(t, err)
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	assert.Subset(t, reasons, []string{handlers.EventSurgeRolloutStarted, handlers.EventSurgeRolloutCompleted})

	// Two more sweeps: no second rollout for the same recommendation.
	sweeps := func() int { return strings.Count(s.Function.Output(), "surge rollouts: sweep done") }
	after := sweeps()
	require.Eventually(t, func() bool { return sweeps() >= after+2 }, 30*time.Second, 200*time.Millisecond, "two more sweeps")
	again, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, done.Generation, again.Generation, "no second rollout")
	assert.False(t, slices.ContainsFunc(events.Items, func(e corev1.Event) bool { return e.Reason == handlers.EventSurgeRolloutAborted }))
}
