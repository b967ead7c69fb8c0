//go:build e2e

package surge

import (
	"context"
	"slices"
	"strings"
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
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpa_clientset "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"

	"function/handlers/surge"
	"function/names"
	"function/test/cluster"
)

// surgeBed is a namespace with the real function (surgeRollout on, a sweep every 5 s unless
// said otherwise, told where VPA's admission controller's status Lease is), VPA's real
// admission controller, a workload kubelet whose pods take readyDelay to become Ready, and a
// VPA web in mode Initial.
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

// bedOptions shape a surge bed: the function's configuration (after the bed's own), how long
// its pods take to become Ready, whether the adapter also watches VPAs (as
// eventing/knative.yaml's source does), how long the bed lasts, and whether the function is
// left looking for VPA's admission controller's status Lease where it does by default
// (kube-system) rather than told where the package's admission controller writes it.
type bedOptions struct {
	env          []string
	readyDelay   time.Duration
	vpaEvents    bool
	timeout      time.Duration
	defaultLease bool
}

func newSurgeBed(t *testing.T, opts ...func(*bedOptions)) *surgeBed {
	o := bedOptions{readyDelay: readyDelay, timeout: 4 * time.Minute}
	for _, f := range opts {
		f(&o)
	}
	env := []string{"surgeRollout=true", "gracePeriodSeconds=0"}
	if !o.defaultLease {
		env = append(env, "admissionControllerStatusLeaseNamespace="+vac.LeaseNamespace)
	}
	if !slices.ContainsFunc(o.env, func(kv string) bool { return strings.HasPrefix(kv, "sweepIntervalSeconds=") }) {
		env = append(env, "sweepIntervalSeconds=5")
	}
	env = append(env, o.env...)
	var also []cluster.Watched
	if o.vpaEvents {
		also = append(also, cluster.VPAs)
	}
	s := cluster.StartStackWatching(t, cp, bin, "Resource", also, env...)
	b := &surgeBed{t: t, ctx: testContext(t, o.timeout), stack: s, ns: s.Namespace}
	b.kubelet = cluster.StartWorkloadKubelet(t, cp.Client, s.Namespace, cluster.KubeletOptions{ReadyDelay: o.readyDelay})
	vpas, err := vpa_clientset.NewForConfig(cp.Config)
	require.NoError(t, err)
	b.vpas = vpas
	b.createVPA("web")
	return b
}

// createVPA creates the VPA of Deployment name (mode Initial), recommending what its pods ask
// for (100m: nothing to update).
func (b *surgeBed) createVPA(name string) {
	b.t.Helper()
	_, err := b.vpas.AutoscalingV1().VerticalPodAutoscalers(b.ns).Create(b.ctx, &vpa_types.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: vpa_types.VerticalPodAutoscalerSpec{
			TargetRef:    &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			UpdatePolicy: &vpa_types.PodUpdatePolicy{UpdateMode: ptr.To(vpa_types.UpdateModeInitial)},
		},
	}, metav1.CreateOptions{})
	require.NoError(b.t, err)
	b.recommendFor(name, "100m")
}

// recommend sets the VPA web's recommendation for container app to cpu (target = both bounds).
func (b *surgeBed) recommend(cpu string) { b.t.Helper(); b.recommendFor("web", cpu) }

func (b *surgeBed) recommendFor(name, cpu string) {
	b.t.Helper()
	require.EventuallyWithT(b.t, func(c *assert.CollectT) { // retried on a conflict with VPA's own writes
		v, err := b.vpas.AutoscalingV1().VerticalPodAutoscalers(b.ns).Get(b.ctx, name, metav1.GetOptions{})
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
	b.create("web", replicas, opts...)
	return b.waitRolledOut("web", replicas)
}

// create creates the opted-in Deployment name (maxSurge 1, maxUnavailable 0, cpu 100m).
func (b *surgeBed) create(name string, replicas int32, opts ...func(*appsv1.Deployment)) {
	b.t.Helper()
	d := cluster.DeploymentSpec(b.ns, name, replicas, nil)
	d.Annotations = map[string]string{names.AnnotationSurgeRollout: "true"}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}}
	d.Spec.Template.Spec.Containers[0].Resources.Requests = requests("100m")
	for _, o := range opts {
		o(d)
	}
	_, err := cp.Client.AppsV1().Deployments(b.ns).Create(b.ctx, d, metav1.CreateOptions{})
	require.NoError(b.t, err)
}

// waitRolledOut waits until the Deployment's rollout is complete and returns its Ready pods.
func (b *surgeBed) waitRolledOut(name string, replicas int32) []corev1.Pod {
	b.t.Helper()
	var pods []corev1.Pod
	require.Eventually(b.t, func() bool {
		pods = ownPods(b.ctx, b.ns, name, true)
		d, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, name, metav1.GetOptions{})
		return err == nil && len(pods) == int(replicas) && d.Status.ObservedGeneration == d.Generation &&
			d.Status.AvailableReplicas == replicas && d.Status.UpdatedReplicas == replicas
	}, time.Minute, 100*time.Millisecond, "the rollout of %s complete", name)
	return pods
}

// waitEnded waits until the surge rollout completed or aborted, and returns the Deployment. An
// abort because VPA's admission controller did not match a new pod to its VPA (a race in its
// informers' caches, more likely on this loaded 2-core machine) is not an end: the function
// tries that prediction again at once, and the retry's end is returned (logged).
func (b *surgeBed) waitEnded() (*appsv1.Deployment, surge.State) {
	b.t.Helper()
	var done *appsv1.Deployment
	var st surge.State
	retried := false
	require.Eventually(b.t, func() bool {
		d, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		done = d
		st, err = surge.ReadState(d)
		if err == nil && st.Phase == surge.PhaseAborted && st.Unsized {
			if !retried {
				b.t.Logf("aborted, VPA did not size a new pod; the function retries: %s", st.Reason)
			}
			retried = true
			return false
		}
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

// noSecondRolloutAfter waits d (no sweep to count on: the function follows the rollout and
// answers events) and checks the Deployment was not restarted again.
func (b *surgeBed) noSecondRolloutAfter(done *appsv1.Deployment, d time.Duration) {
	b.t.Helper()
	require.Never(b.t, func() bool {
		again, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, done.Name, metav1.GetOptions{})
		return err == nil && !equality.Semantic.DeepEqual(again.Spec.Template, done.Spec.Template)
	}, d, 500*time.Millisecond, "no second rollout for the same recommendation")
}

// noSecondRollout waits for two more sweeps and checks the Deployment was not restarted again.
func (b *surgeBed) noSecondRollout(done *appsv1.Deployment) {
	b.t.Helper()
	sweeps := func() int { return strings.Count(b.stack.Function.Output(), "surge rollouts: sweep done") }
	after := sweeps()
	require.Eventually(b.t, func() bool { return sweeps() >= after+2 }, 30*time.Second, 200*time.Millisecond, "two more sweeps")
	again, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
	require.NoError(b.t, err)
	// The pod template, not the generation: a state write (a Skip said once) is a new
	// generation too, a rollout changes the template.
	assert.Equal(b.t, done.Spec.Template, again.Spec.Template, "no second rollout for the same recommendation")
}
