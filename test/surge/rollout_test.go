//go:build e2e

package surge

import (
	"context"
	"fmt"
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

// surgeBed is a namespace with the real function (surgeRollout on, a sweep every 5 s), VPA's
// real admission controller, a workload kubelet whose pods take readyDelay to become Ready, and
// a VPA web in mode Initial.
type surgeBed struct {
	t       *testing.T
	ctx     context.Context
	stack   *cluster.Stack
	ns      string
	kubelet *cluster.WorkloadKubelet
	vpas    vpa_clientset.Interface
}

const readyDelay = 8 * time.Second

func requests(cpu string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("64Mi")}
}

func newSurgeBed(t *testing.T) *surgeBed {
	s := cluster.StartStack(t, cp, bin, "Resource", "surgeRollout=true", "sweepIntervalSeconds=5", "gracePeriodSeconds=0")
	b := &surgeBed{t: t, ctx: testContext(t, 4*time.Minute), stack: s, ns: s.Namespace}
	b.kubelet = cluster.StartWorkloadKubelet(t, cp.Client, s.Namespace, cluster.KubeletOptions{ReadyDelay: readyDelay})
	vpas, err := vpa_clientset.NewForConfig(cp.Config)
	require.NoError(t, err)
	b.vpas = vpas
	_, err = vpas.AutoscalingV1().VerticalPodAutoscalers(b.ns).Create(b.ctx, &vpa_types.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: vpa_types.VerticalPodAutoscalerSpec{
			TargetRef:    &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			UpdatePolicy: &vpa_types.PodUpdatePolicy{UpdateMode: ptr.To(vpa_types.UpdateModeInitial)},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	b.recommend("100m") // what the pods ask for: nothing to update
	return b
}

// recommend sets the VPA's recommendation for container app to cpu (target = both bounds).
func (b *surgeBed) recommend(cpu string) {
	b.t.Helper()
	require.EventuallyWithT(b.t, func(c *assert.CollectT) { // retried on a conflict with VPA's own writes
		v, err := b.vpas.AutoscalingV1().VerticalPodAutoscalers(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
		if !assert.NoError(c, err) {
			return
		}
		r := requests(cpu)
		v.Status.Recommendation = &vpa_types.RecommendedPodResources{ContainerRecommendations: []vpa_types.RecommendedContainerResources{{
			ContainerName: "app", Target: r, LowerBound: r, UpperBound: r, UncappedTarget: r}}}
		_, err = b.vpas.AutoscalingV1().VerticalPodAutoscalers(b.ns).UpdateStatus(b.ctx, v, metav1.UpdateOptions{})
		assert.NoError(c, err)
	}, 10*time.Second, 100*time.Millisecond)
}

// deploy creates the opted-in Deployment web (maxSurge 1, maxUnavailable 0, cpu 100m) and
// waits until its first rollout is complete; it returns its pods.
func (b *surgeBed) deploy(replicas int32, opts ...func(*appsv1.Deployment)) []corev1.Pod {
	b.t.Helper()
	d := cluster.DeploymentSpec(b.ns, "web", replicas, nil)
	d.Annotations = map[string]string{surge.AnnotationSurgeRollout: "true"}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}}
	d.Spec.Template.Spec.Containers[0].Resources.Requests = requests("100m")
	for _, o := range opts {
		o(d)
	}
	_, err := cp.Client.AppsV1().Deployments(b.ns).Create(b.ctx, d, metav1.CreateOptions{})
	require.NoError(b.t, err)
	var pods []corev1.Pod
	require.Eventually(b.t, func() bool {
		pods = ownPods(b.ctx, b.ns, "web", true)
		d, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
		return err == nil && len(pods) == int(replicas) && d.Status.ObservedGeneration == d.Generation &&
			d.Status.AvailableReplicas == replicas && d.Status.UpdatedReplicas == replicas
	}, time.Minute, 100*time.Millisecond, "the first rollout complete")
	return pods
}

// waitEnded waits until the surge rollout completed or aborted, and returns the Deployment.
func (b *surgeBed) waitEnded() (*appsv1.Deployment, surge.State) {
	b.t.Helper()
	var done *appsv1.Deployment
	var st surge.State
	require.Eventually(b.t, func() bool {
		d, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		done = d
		st, err = surge.ReadState(d)
		return err == nil && (st.Phase == surge.PhaseCompleted || st.Phase == surge.PhaseAborted)
	}, 3*time.Minute, 200*time.Millisecond, "the surge rollout ends")
	return done, st
}

// eventReasons are the reasons of the Events on the Deployment.
func (b *surgeBed) eventReasons() []string {
	b.t.Helper()
	events, err := cp.Client.CoreV1().Events(b.ns).List(b.ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Deployment"})
	require.NoError(b.t, err)
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// noSecondRollout waits for two more sweeps and checks the Deployment was not restarted again.
func (b *surgeBed) noSecondRollout(done *appsv1.Deployment) {
	b.t.Helper()
	sweeps := func() int { return strings.Count(b.stack.Function.Output(), "surge rollouts: sweep done") }
	after := sweeps()
	require.Eventually(b.t, func() bool { return sweeps() >= after+2 }, 30*time.Second, 200*time.Millisecond, "two more sweeps")
	again, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
	require.NoError(b.t, err)
	assert.Equal(b.t, done.Generation, again.Generation, "no second rollout for the same recommendation")
}

// A VPA update by a surge rollout, with the real VPA admission controller and the real
// Deployment controller, of Deployments whose pods take 8 s to become Ready: the new, VPA-sized
// pods are Ready before the old ones go, so the Ready pods never drop below the replicas (a
// single replica stays served); one new ReplicaSet; no second rollout for the same
// recommendation.
func TestSurgeRolloutKeepsEveryReplicaServed(t *testing.T) {
	for _, replicas := range []int32{1, 3} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			b := newSurgeBed(t)
			first := b.deploy(replicas)
			ready := watchReady(b.ctx, t, b.ns, "web")
			require.Equal(t, int(replicas), ready.Min())
			recommended := time.Now()
			b.recommend("500m") // outside the pods' bounds: VPA's updater would update them at once

			done, st := b.waitEnded()
			took := time.Since(recommended)
			require.Equal(t, surge.PhaseCompleted, st.Phase, "completed, not aborted: %s", st.Reason)
			t.Logf("%d replica(s): recommendation to completed rollout %s; fewest Ready pods during the update: %d",
				replicas, took.Round(100*time.Millisecond), ready.Min())
			assert.Equal(t, int(replicas), ready.Min(), "never fewer Ready pods than replicas")

			var pods []corev1.Pod
			require.Eventually(t, func() bool { // the old pods gone, the new ones left
				pods = ownPods(b.ctx, b.ns, "web", false)
				return len(pods) == int(replicas)
			}, 30*time.Second, 100*time.Millisecond, "the old pods gone")
			for _, p := range pods {
				assert.False(t, slices.ContainsFunc(first, func(f corev1.Pod) bool { return f.Name == p.Name }), "%s is new", p.Name)
				assert.True(t, equality.Semantic.DeepEqual(requests("500m"), p.Spec.Containers[0].Resources.Requests), "%s sized by VPA: %v", p.Name, p.Spec.Containers[0].Resources.Requests)
			}
			rss, err := cp.Client.AppsV1().ReplicaSets(b.ns).List(b.ctx, metav1.ListOptions{})
			require.NoError(t, err)
			assert.Len(t, rss.Items, 2, "exactly one new ReplicaSet")
			assert.Subset(t, b.eventReasons(), []string{handlers.EventSurgeRolloutStarted, handlers.EventSurgeRolloutCompleted})
			b.noSecondRollout(done)
			assert.NotContains(t, b.eventReasons(), handlers.EventSurgeRolloutAborted)
		})
	}
}

// A surge pod that never becomes Ready: the Deployment controller reports
// ProgressDeadlineExceeded, the function aborts (the template annotations it set are removed
// again, so the Deployment rolls back), and the old pod serves throughout.
func TestSurgeRolloutAbortsWithoutLosingTheOldPod(t *testing.T) {
	b := newSurgeBed(t)
	first := b.deploy(1, func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = ptr.To[int32](10) })
	ready := watchReady(b.ctx, t, b.ns, "web")
	b.kubelet.HoldReady(func(p *corev1.Pod) bool { return p.Name != first[0].Name }) // every new pod stays unready
	b.recommend("500m")

	done, st := b.waitEnded()
	require.Equal(t, surge.PhaseAborted, st.Phase)
	assert.Contains(t, st.Reason, "ProgressDeadlineExceeded")
	assert.NotContains(t, done.Spec.Template.Annotations, surge.AnnotationRestartedAt, "the restart undone")
	assert.Contains(t, b.eventReasons(), handlers.EventSurgeRolloutAborted)
	require.Eventually(t, func() bool { // rolled back: the surge pod gone, the old one left
		pods := ownPods(b.ctx, b.ns, "web", false)
		return len(pods) == 1 && pods[0].Name == first[0].Name
	}, time.Minute, 100*time.Millisecond, "the old pod alone again")
	assert.Equal(t, 1, ready.Min(), "the old pod served throughout")
	b.noSecondRollout(done)
}
