//go:build e2e

// Package faults runs the function through the failures it must survive, against a real
// kube-apiserver and etcd and (except TestFaultsSlowAPIServer) the real ApiServerSource
// adapter: the function SIGKILLed at random points during drains, three replicas receiving
// every event, the API server unreachable for 20 s while drains are due, and an API server
// that takes 2 s to answer anything. The tests play the kubelet (see cluster.Kubelet).
//
// FAULTS_SEED=N replays TestFaultsKillDuringDrains' random kill schedule (each run logs its
// seed).
package faults

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"function/names"
	"function/test/cluster"
)

var (
	cp  *cluster.ControlPlane
	bin string
)

func TestMain(m *testing.M) {
	os.Exit(cluster.Main(m, &cp, &bin))
}

const (
	// grace is the function's gracePeriodSeconds and the pods' eviction grace period.
	grace = 3 * time.Second
	// slack is how late after its due time a release may come.
	slack = time.Second
	// early is how much earlier than its due time a release may be seen: the release time comes
	// from a watch in this process, the due time partly from the API server's clock.
	early = 50 * time.Millisecond
)

// functionEnv is the function's configuration, as in the end-to-end tests, but sweeping every
// 10 s: sweeps are part of what must hold up under these faults.
var functionEnv = append([]string{"gracePeriodSeconds=3", "drainTimeoutSeconds=30", "sweepIntervalSeconds=10"}, cluster.BarePods...)

func podNamesOf(pods []*corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	pod, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return pod
}

// livePod reads a pod inside a polled condition, where a failed read means "not yet" (a
// condition must not stop the test from its own goroutine).
func livePod(ns, name string) *corev1.Pod {
	pod, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return pod
}

func hasFinalizer(pod *corev1.Pod) bool {
	return slices.Contains(pod.Finalizers, names.Finalizer)
}

// createPods creates n managed pods with running containers.
func createPods(t *testing.T, ns, prefix string, n int) []string {
	t.Helper()
	pods, err := cluster.CreateRunningPods(context.Background(), cp.Client, ns, prefix, n, true)
	require.NoError(t, err)
	return podNamesOf(pods)
}

// waitForFinalizers waits until every named pod holds the function's finalizer.
func waitForFinalizers(t *testing.T, ns string, podNames []string, within time.Duration) {
	t.Helper()
	var missing []string
	require.Eventually(t, func() bool {
		missing = missing[:0]
		for _, name := range podNames {
			if pod := livePod(ns, name); pod == nil || !hasFinalizer(pod) {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	}, within, 50*time.Millisecond, "pods without the finalizer: %v", &missing)
}

// evict evicts the pods through the Eviction API with grace period 3 s, and has the kubelet
// stop each pod's containers at its deletionTimestamp (whether or not the function is up).
func evict(t *testing.T, ns string, k *cluster.Kubelet, podNames []string) {
	t.Helper()
	ctx := context.Background()
	for _, name := range podNames {
		require.NoError(t, cluster.Evict(ctx, cp.Client, ns, name, ptr.To[int64](3)))
		k.StopAtDeadline(ctx, getPod(t, ns, name))
	}
}

// waitStamped waits until every named pod carries the drain annotations.
func waitStamped(t *testing.T, ns string, podNames []string) {
	t.Helper()
	var missing []string
	require.Eventually(t, func() bool {
		missing = missing[:0]
		for _, name := range podNames {
			pod := livePod(ns, name)
			if pod == nil || pod.Annotations[names.AnnotationDrainStarted] == "" || pod.Annotations[names.AnnotationDrainDeadline] == "" {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	}, 30*time.Second, 50*time.Millisecond, "pods without the drain annotations: %v", &missing)
}

// waitReleased waits until every named pod lost the finalizer.
func waitReleased(t *testing.T, r *cluster.Releases, podNames []string, within time.Duration) {
	t.Helper()
	var stranded []string
	require.Eventually(t, func() bool {
		stranded = stranded[:0]
		for _, name := range podNames {
			if _, ok := r.At(name); !ok {
				stranded = append(stranded, name)
			}
		}
		return len(stranded) == 0
	}, within, 50*time.Millisecond, "pods still holding the finalizer: %v", &stranded)
}

// drainDue is when the pod's drain was due: its grace period over, counted from when the drain
// started (the drain-started stamp, else the API server's eviction time, as the function
// counts: from the end of that whole second), and its containers stopped.
func drainDue(t *testing.T, pod *corev1.Pod, k *cluster.Kubelet) time.Time {
	t.Helper()
	started, ok := cluster.EvictedAt(pod)
	if v := pod.Annotations[names.AnnotationDrainStarted]; v != "" {
		stamp, err := time.Parse(time.RFC3339, v)
		require.NoError(t, err, "%s: drain-started", pod.Name)
		started, ok = stamp, true
	}
	require.True(t, ok, "%s has neither a drain-started stamp nor a DisruptionTarget condition", pod.Name)
	stopped, ok := k.StoppedAt(pod.Name)
	require.True(t, ok, "the kubelet stopped the containers of %s", pod.Name)
	// Whole seconds, as the API and the stamp show it: the function times the drain from the
	// latest moment of that second, so it is never early.
	return later(cluster.EndOfSecond(started).Add(grace), stopped)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// finishAll does the kubelet's final grace-0 DELETE for each released pod and waits until all
// are gone.
func finishAll(t *testing.T, ns string, podNames []string) {
	t.Helper()
	ctx := context.Background()
	for _, name := range podNames {
		require.NoError(t, cluster.FinishDeletion(ctx, cp.Client, getPod(t, ns, name)))
	}
	require.Eventually(t, func() bool {
		for _, name := range podNames {
			if _, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every released pod is gone after the grace-0 DELETE")
}

// holdingFinalizer lists the pods in ns that still hold the function's finalizer.
func holdingFinalizer(t *testing.T, ns string) []string {
	t.Helper()
	list, err := cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var out []string
	for _, pod := range list.Items {
		if hasFinalizer(&pod) {
			out = append(out, pod.Name)
		}
	}
	return out
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
