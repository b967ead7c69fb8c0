//go:build e2e

// Package workloads runs real workload controllers on the real-cluster test bed: a real
// kube-controller-manager (Deployments, ReplicaSets, StatefulSets, DaemonSets, EndpointSlices,
// PodDisruptionBudgets, garbage collection) against the real kube-apiserver, with the
// harness's workload kubelet playing scheduler and kubelet in each test's namespace. Tests
// that need the function start it with cluster.StartStack(t, cp, bin, "Resource", env...).
package workloads

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"function/test/cluster"
)

var (
	cp  *cluster.ControlPlane
	kcm *cluster.ControllerManager
	bin string
)

func TestMain(m *testing.M) {
	os.Exit(cluster.MainWith(m, &cp, &bin, cluster.WithControllerManager(&kcm)))
}

// startKubelet starts a workload kubelet for ns; when the test ends it checks that none of
// the kubelet's writes failed.
func startKubelet(t *testing.T, ns string, opts cluster.KubeletOptions) *cluster.WorkloadKubelet {
	t.Helper()
	k := cluster.StartWorkloadKubelet(t, cp.Client, ns, opts)
	t.Cleanup(func() {
		assert.Empty(t, k.Failures(), "workload kubelet writes that failed")
		if t.Failed() {
			lines := strings.Split(strings.TrimRight(kcm.Output(), "\n"), "\n")
			t.Logf("kube-controller-manager output (tail):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return k
}

// testContext is a context that ends after d or with the test.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func appSelector(name string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{"app": name})
}

// endpoints maps the pod name of each endpoint of the Service's EndpointSlices to it (none
// if they cannot be listed: callers poll).
func endpoints(ctx context.Context, ns, service string) map[string]discoveryv1.Endpoint {
	list, err := cp.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: service}).String(),
	})
	out := map[string]discoveryv1.Endpoint{}
	if err != nil {
		return out
	}
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.TargetRef != nil {
				out[e.TargetRef.Name] = e
			}
		}
	}
	return out
}

// TestWorkloadKubeletRunsControllers checks the harness itself: the real controllers create
// pods, the workload kubelet binds, starts and readies them and finishes their deletion, and
// the controllers react as in a real cluster.
func TestWorkloadKubeletRunsControllers(t *testing.T) {
	ns := cp.Namespace(t, "wl")
	k := startKubelet(t, ns, cluster.KubeletOptions{})
	c := cp.Client

	t.Run("Deployment", func(t *testing.T) {
		ctx := testContext(t, 30*time.Second)
		_, err := c.AppsV1().Deployments(ns).Create(ctx, cluster.DeploymentSpec(ns, "api", 2, nil), metav1.CreateOptions{})
		require.NoError(t, err)
		names, err := cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("api"), 2)
		require.NoError(t, err)
		for _, name := range names {
			pod, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, cluster.NodeName, pod.Spec.NodeName)
			assert.Equal(t, corev1.PodRunning, pod.Status.Phase)
			assert.NotEmpty(t, pod.Status.PodIP)
			require.Len(t, pod.Status.ContainerStatuses, 1)
			assert.True(t, pod.Status.ContainerStatuses[0].Ready)
			_, ok := k.ReadyAt(name)
			assert.True(t, ok, "ReadyAt(%s)", name)
		}
	})

	t.Run("StatefulSet with EndpointSlices", func(t *testing.T) {
		ctx := testContext(t, 30*time.Second)
		_, err := c.CoreV1().Services(ns).Create(ctx, cluster.ServiceSpec(ns, "web", map[string]string{"app": "web"}), metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = c.AppsV1().StatefulSets(ns).Create(ctx, cluster.StatefulSetSpec(ns, "web", 2, nil), metav1.CreateOptions{})
		require.NoError(t, err)
		names, err := cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("web"), 2)
		require.NoError(t, err)
		assert.Equal(t, []string{"web-0", "web-1"}, names)
		require.Eventually(t, func() bool {
			eps := endpoints(ctx, ns, "web")
			for _, name := range names {
				e, ok := eps[name]
				if !ok || !ptr.Deref(e.Conditions.Ready, false) || !ptr.Deref(e.Conditions.Serving, false) || len(e.Addresses) != 1 {
					return false
				}
			}
			return len(eps) == 2
		}, 30*time.Second, 100*time.Millisecond, "an EndpointSlice lists web-0 and web-1 ready and serving")
	})

	t.Run("DaemonSet", func(t *testing.T) {
		ctx := testContext(t, 30*time.Second)
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		_, err = c.AppsV1().DaemonSets(ns).Create(ctx, cluster.DaemonSetSpec(ns, "agent", nil), metav1.CreateOptions{})
		require.NoError(t, err)
		names, err := cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("agent"), len(nodes.Items))
		require.NoError(t, err)
		onNode := 0
		for _, name := range names {
			pod, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			if pod.Spec.NodeName == cluster.NodeName {
				onNode++
			}
		}
		assert.Equal(t, 1, onNode, "one DaemonSet pod on %s", cluster.NodeName)
	})

	t.Run("graceful StatefulSet pod deletion is finished and the pod recreated", func(t *testing.T) {
		ctx := testContext(t, time.Minute)
		old, err := c.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		require.NoError(t, err)
		k.SetStopAfter("web-0", 2*time.Second)
		start := time.Now()
		require.NoError(t, c.CoreV1().Pods(ns).Delete(ctx, "web-0", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}))

		// While its containers stop, the pod is terminating and not Ready: its endpoint is
		// neither ready nor serving.
		require.Eventually(t, func() bool {
			e, ok := endpoints(ctx, ns, "web")["web-0"]
			return ok && ptr.Deref(e.Conditions.Terminating, false) && !ptr.Deref(e.Conditions.Serving, true) && !ptr.Deref(e.Conditions.Ready, true)
		}, 10*time.Second, 50*time.Millisecond, "web-0's endpoint is terminating, not serving, not ready")

		var recreated *corev1.Pod
		require.Eventually(t, func() bool {
			pod, err := c.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
			if err != nil || pod.UID == old.UID || !cluster.PodReady(pod) {
				return false
			}
			recreated = pod
			return true
		}, 30*time.Second, 100*time.Millisecond, "the StatefulSet controller recreates web-0 and it turns Ready")
		stopped, ok := k.StoppedAt("web-0")
		require.True(t, ok, "the kubelet reported web-0's containers terminated")
		deleted, ok := k.DeletedAt("web-0")
		require.True(t, ok, "the kubelet sent the final DELETE")
		ready, ok := k.ReadyAt("web-0")
		require.True(t, ok)
		assert.GreaterOrEqual(t, stopped.Sub(start), 2*time.Second, "containers stop after StopAfter")
		assert.Less(t, stopped.Sub(start), 10*time.Second, "long before the 30 s grace period ends")
		assert.False(t, deleted.Before(stopped))
		assert.True(t, ready.After(deleted), "the new web-0 is Ready only after the old one was gone")
		assert.NotEqual(t, old.Status.PodIP, recreated.Status.PodIP)

		require.Eventually(t, func() bool {
			e, ok := endpoints(ctx, ns, "web")["web-0"]
			return ok && ptr.Deref(e.Conditions.Ready, false) && len(e.Addresses) == 1 && e.Addresses[0] == recreated.Status.PodIP
		}, 30*time.Second, 100*time.Millisecond, "the EndpointSlice lists the new web-0 ready at its new IP")
	})
}
