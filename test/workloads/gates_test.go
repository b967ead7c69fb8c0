//go:build e2e

package workloads

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"function/names"
	"function/test/cluster"
)

// functionEnv: no grace period (the gates alone decide), a drain bounded at 60 s, no timer
// sweeps during a test. holdOn and workloadDefaults keep their defaults.
var functionEnv = []string{"gracePeriodSeconds=0", "drainTimeoutSeconds=60", "sweepIntervalSeconds=900"}

var managedPods = map[string]string{names.AnnotationManaged: "true"}

// startStack starts the function, the adapter and a workload kubelet for a new namespace.
func startStack(t *testing.T, opts cluster.KubeletOptions, env ...string) (*cluster.Stack, *cluster.WorkloadKubelet, *cluster.Releases) {
	t.Helper()
	s := cluster.StartStack(t, cp, bin, "Resource", append(slices.Clone(functionEnv), env...)...)
	k := startKubelet(t, s.Namespace, opts)
	return s, k, cluster.WatchReleases(t, s, names.Finalizer)
}

// waitHeld waits until every named pod carries the finalizer.
func waitHeld(ctx context.Context, t *testing.T, ns string, podNames ...string) {
	t.Helper()
	for _, name := range podNames {
		require.Eventually(t, func() bool {
			pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && slices.Contains(pod.Finalizers, names.Finalizer)
		}, 30*time.Second, 50*time.Millisecond, "%s gets the finalizer", name)
	}
}

// managedWorkload creates a Deployment or StatefulSet of managed pods and waits until all its
// replicas are Ready and hold the finalizer. It returns the pods.
func managedWorkload(ctx context.Context, t *testing.T, ns string, workload runtime.Object) []string {
	t.Helper()
	var (
		name     string
		replicas int32
		err      error
	)
	switch w := workload.(type) {
	case *appsv1.Deployment:
		name, replicas = w.Name, *w.Spec.Replicas
		_, err = cp.Client.AppsV1().Deployments(ns).Create(ctx, w, metav1.CreateOptions{})
	case *appsv1.StatefulSet:
		name, replicas = w.Name, *w.Spec.Replicas
		_, err = cp.Client.AppsV1().StatefulSets(ns).Create(ctx, w, metav1.CreateOptions{})
	default:
		t.Fatalf("not a Deployment or StatefulSet: %T", workload)
	}
	require.NoError(t, err)
	pods, err := cluster.WaitForReadyReplicas(ctx, cp.Client, ns, appSelector(name), int(replicas))
	require.NoError(t, err)
	waitHeld(ctx, t, ns, pods...)
	return pods
}

// podEvents lists "Reason: message" of the Events about the pod with this uid.
func podEvents(ctx context.Context, t *testing.T, ns string, uid string) []string {
	t.Helper()
	list, err := cp.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", uid).String(),
	})
	require.NoError(t, err)
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}

func hasEvent(events []string, prefix string) bool {
	return slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

// A Deployment pod evicted by the Eviction API is held after its containers stopped until its
// replacement is Ready, and released within 1 s of that.
func TestDeploymentEvictionWaitsForTheReplacement(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s, k, releases := startStack(t, cluster.KubeletOptions{StopAfter: ptr.To(time.Second)})
	c, ns := cp.Client, s.Namespace

	originals := managedWorkload(ctx, t, ns, cluster.DeploymentSpec(ns, "shop", 2, managedPods))
	k.HoldReady(func(p *corev1.Pod) bool { return !slices.Contains(originals, p.Name) }) // the replacement waits for the test

	victim, err := c.CoreV1().Pods(ns).Get(ctx, originals[0], metav1.GetOptions{})
	require.NoError(t, err)
	evictedAt := time.Now()
	require.NoError(t, cluster.Evict(ctx, c, ns, victim.Name, nil))

	// The containers stop; the pod is held, and says it waits for its replacement.
	require.Eventually(t, func() bool {
		_, stopped := k.StoppedAt(victim.Name)
		return stopped && hasEvent(podEvents(ctx, t, ns, string(victim.UID)), "DrainWaiting: Containers stopped; the drain waits for replacement-ready (1/2 Ready)")
	}, 30*time.Second, 50*time.Millisecond, "events: %v", podEvents(ctx, t, ns, string(victim.UID)))
	_, released := releases.At(victim.Name)
	assert.False(t, released, "held while the replacement is not Ready")
	events := podEvents(ctx, t, ns, string(victim.UID))
	assert.True(t, hasEvent(events, "DrainStarted: Drain started (eviction, Deployment pod)"), "events: %v", events)

	// The replacement turns Ready: the pod is released within 1 s, reason replaced.
	held := k.Held()
	require.Len(t, held, 1, "one replacement")
	k.ReleaseReady()
	var readyAt, releasedAt time.Time
	require.Eventually(t, func() bool {
		var ok1, ok2 bool
		var r, rel time.Time
		r, ok1 = k.ReadyAt(held[0])
		rel, ok2 = releases.At(victim.Name)
		if ok1 {
			readyAt = r
		}
		if ok2 {
			releasedAt = rel
		}
		return ok1 && ok2
	}, 30*time.Second, 20*time.Millisecond, "the replacement %s turns Ready and the evicted pod is released (Ready at %v, released at %v)", held[0], readyAt, releasedAt)
	lag := releasedAt.Sub(readyAt)
	t.Logf("released %v after the replacement %s was Ready", lag, held[0])
	assert.Less(t, lag, time.Second, "released within 1 s of the replacement being Ready")
	assert.Positive(t, lag, "not before it")
	require.Eventually(t, func() bool {
		return hasEvent(podEvents(ctx, t, ns, string(victim.UID)), "DrainCompleted: Replacement Ready after")
	}, 10*time.Second, 50*time.Millisecond, "a DrainCompleted Event with reason replaced")

	// The metrics count this one drain, and its capacity gap is eviction -> replacement Ready.
	m := scrapeMetrics(t, s)
	removed, ok := sample(m, "vpagracefuldrain_decisions_total", map[string]string{"action": "remove-finalizer", "reason": "replaced"})
	require.True(t, ok, "a replaced release is counted")
	assert.Equal(t, 1.0, removed.value)
	started, ok := sample(m, "vpagracefuldrain_decisions_total", map[string]string{"action": "start-drain", "reason": "eviction"})
	require.True(t, ok)
	assert.Equal(t, 1.0, started.value, "one drain started")
	drain, ok := sample(m, "vpagracefuldrain_drain_duration_seconds", map[string]string{"reason": "replaced", "owner_kind": "Deployment"})
	require.True(t, ok)
	assert.Equal(t, uint64(1), drain.count)
	gap, ok := sample(m, "vpagracefuldrain_capacity_gap_seconds", map[string]string{"owner_kind": "Deployment", "namespace": ns})
	require.True(t, ok, "the capacity gap is recorded")
	require.Equal(t, uint64(1), gap.count)
	want := readyAt.Sub(evictedAt).Seconds()
	t.Logf("capacity gap %.3fs; eviction -> replacement Ready measured by the test %.3fs", gap.sum, want)
	assert.InDelta(t, want, gap.sum, 1.0, "the capacity gap is eviction -> replacement Ready, within 1 s (API times have whole seconds)")
	patches, ok := sample(m, "vpagracefuldrain_api_requests_total", map[string]string{"verb": "patch", "code": "200"})
	require.True(t, ok)
	assert.GreaterOrEqual(t, patches.value, 4.0, "two finalizers added, a stamp and a release")
}

// A StatefulSet pod is released as soon as its containers stop (no grace period, no wait for
// a replacement that cannot start before it is gone), and its replacement then appears.
func TestStatefulSetPodReleasedWhenItsContainersStop(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s, k, releases := startStack(t, cluster.KubeletOptions{StopAfter: ptr.To(2 * time.Second)})
	c, ns := cp.Client, s.Namespace

	_, err := c.CoreV1().Services(ns).Create(ctx, cluster.ServiceSpec(ns, "db", map[string]string{"app": "db"}), metav1.CreateOptions{})
	require.NoError(t, err)
	managedWorkload(ctx, t, ns, cluster.StatefulSetSpec(ns, "db", 2, managedPods))
	old, err := c.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, cluster.Evict(ctx, c, ns, "db-0", nil))

	var stoppedAt, releasedAt time.Time
	require.Eventually(t, func() bool {
		var ok1, ok2 bool
		stoppedAt, ok1 = k.StoppedAt("db-0")
		releasedAt, ok2 = releases.At("db-0")
		return ok1 && ok2
	}, 30*time.Second, 20*time.Millisecond, "db-0's containers stop and it is released")
	t.Logf("released %v after its containers stopped", releasedAt.Sub(stoppedAt))
	assert.Less(t, releasedAt.Sub(stoppedAt), time.Second, "released within 1 s of the containers stopping")
	assert.False(t, releasedAt.Before(stoppedAt), "not before")

	// No deadlock: the StatefulSet controller creates the new db-0 once the old one is gone.
	var recreated *corev1.Pod
	require.Eventually(t, func() bool {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
		if err != nil || p.UID == old.UID || !cluster.PodReady(p) {
			return false
		}
		recreated = p
		return true
	}, 30*time.Second, 50*time.Millisecond, "the replacement db-0 appears and turns Ready")
	assert.True(t, recreated.CreationTimestamp.After(old.CreationTimestamp.Time) || recreated.CreationTimestamp.Equal(&old.CreationTimestamp))
	events := podEvents(ctx, t, ns, string(old.UID))
	assert.True(t, hasEvent(events, "DrainCompleted: Drained after"), "events: %v", events)
	waitHeld(ctx, t, ns, "db-0") // the new one is managed in turn
}

// With the EndpointSlice gate, a pod whose containers stopped is held while an EndpointSlice
// still lists it as serving, and released once none does.
func TestEndpointSliceGateHoldsWhileServing(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s, k, releases := startStack(t, cluster.KubeletOptions{StopAfter: ptr.To(time.Second)},
		`workloadDefaults={"Deployment":{"waitForEndpoints":true,"waitForReplacement":false}}`)
	c, ns := cp.Client, s.Namespace

	podNames := managedWorkload(ctx, t, ns, cluster.DeploymentSpec(ns, "api", 1, managedPods))
	pod, err := c.CoreV1().Pods(ns).Get(ctx, podNames[0], metav1.GetOptions{})
	require.NoError(t, err)

	// A slice another controller (a mesh, an external load balancer) keeps: it still lists the
	// pod as serving after its containers stopped.
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "api-external", Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: "api-external", discoveryv1.LabelManagedBy: "lb.example.com"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{pod.Status.PodIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID}}},
	}
	slice, err = c.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, cluster.Evict(ctx, c, ns, pod.Name, nil))
	require.Eventually(t, func() bool {
		return hasEvent(podEvents(ctx, t, ns, string(pod.UID)), "DrainWaiting: Containers stopped; the drain waits for endpoints-gone (serving in 1 endpoint(s))")
	}, 30*time.Second, 50*time.Millisecond, "held while serving; events: %v", podEvents(ctx, t, ns, string(pod.UID)))
	_, stopped := k.StoppedAt(pod.Name)
	require.True(t, stopped)
	_, released := releases.At(pod.Name)
	assert.False(t, released, "held while an EndpointSlice lists it as serving")

	slice.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)}
	_, err = c.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{})
	require.NoError(t, err)
	notServing := time.Now()
	var releasedAt time.Time
	require.Eventually(t, func() bool {
		releasedAt, released = releases.At(pod.Name)
		return released
	}, 30*time.Second, 20*time.Millisecond, "released once no slice lists it as serving")
	t.Logf("released %v after the slice stopped listing it as serving", releasedAt.Sub(notServing))
	assert.Less(t, releasedAt.Sub(notServing), 6*time.Second, "within one look (at most 5 s apart)")
}

// A plain delete (kubectl delete, a rollout, a scale-down) is released at once: the tool
// never slows ordinary operations.
func TestPlainDeleteIsReleasedAtOnce(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s, k, releases := startStack(t, cluster.KubeletOptions{StopAfter: ptr.To(10 * time.Second)})
	c, ns := cp.Client, s.Namespace

	podNames := managedWorkload(ctx, t, ns, cluster.DeploymentSpec(ns, "shop", 1, managedPods))
	pod, err := c.CoreV1().Pods(ns).Get(ctx, podNames[0], metav1.GetOptions{})
	require.NoError(t, err)

	deleted := time.Now()
	require.NoError(t, c.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}))
	var releasedAt time.Time
	require.Eventually(t, func() bool {
		var ok bool
		releasedAt, ok = releases.At(pod.Name)
		return ok
	}, 30*time.Second, 20*time.Millisecond, "released")
	t.Logf("released %v after the delete", releasedAt.Sub(deleted))
	assert.Less(t, releasedAt.Sub(deleted), time.Second, "released at once")
	_, stopped := k.StoppedAt(pod.Name)
	assert.False(t, stopped, "before its containers stopped: nothing waited for them")
	require.Eventually(t, func() bool {
		return hasEvent(podEvents(ctx, t, ns, string(pod.UID)), "FinalizerRemoved: Deleted, not evicted (holdOn: evictions)")
	}, 10*time.Second, 50*time.Millisecond, "events: %v", podEvents(ctx, t, ns, string(pod.UID)))
	assert.False(t, hasEvent(podEvents(ctx, t, ns, string(pod.UID)), "DrainStarted"), "no drain was started")
}
