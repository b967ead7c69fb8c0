//go:build e2e

// Package e2e runs the whole path for real: pods in a real kube-apiserver, the real Knative
// ApiServerSource adapter watching them, HTTP to the function served by func-go (as `make
// run` serves it), and the function's writes back to the API server. The test plays the
// kubelet: it marks containers stopped when their grace period ends and sends the final
// grace-0 DELETE.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"

	"function/eventing"
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
	grace = 3 * time.Second
	// slack is how late after its due time a release may come.
	slack = time.Second
)

// The function sweeps once when it starts (before the test creates pods) and not again during
// a test, so every write the tests see answers an event or a re-check.
var functionEnv = append([]string{"gracePeriodSeconds=3", "drainTimeoutSeconds=30", "sweepIntervalSeconds=900"}, cluster.BarePods...)

// kubelet plays the kubelet's part for evicted pods: at the deletionTimestamp it reports the
// containers terminated, and it remembers when.
type kubelet struct {
	mu      sync.Mutex
	stopped map[string]time.Time
	errs    []error
	// late stops these pods' containers this long after their deletionTimestamp.
	late map[string]time.Duration
}

func newKubelet() *kubelet {
	return &kubelet{stopped: map[string]time.Time{}, late: map[string]time.Duration{}}
}

// stopAtDeadline reports the pod's containers terminated at its deletionTimestamp (plus its
// late delay).
func (k *kubelet) stopAtDeadline(ctx context.Context, pod *corev1.Pod) {
	k.mu.Lock()
	late := k.late[pod.Name]
	k.mu.Unlock()
	time.AfterFunc(time.Until(pod.DeletionTimestamp.Time)+late, func() {
		_, err := cluster.MarkStopped(ctx, cp.Client, pod)
		k.mu.Lock()
		defer k.mu.Unlock()
		if err != nil {
			k.errs = append(k.errs, err)
			return
		}
		k.stopped[pod.Name] = time.Now()
	})
}

func (k *kubelet) stopAllAtDeadline(pods map[string]*corev1.Pod) {
	for _, pod := range pods {
		k.stopAtDeadline(context.Background(), pod)
	}
}

func (k *kubelet) failures() []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.errs)
}

func (k *kubelet) stoppedAt(name string) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.stopped[name]
	return at, ok
}

func createPods(t *testing.T, s *cluster.Stack, prefix string, n int, managed bool, annotations map[string]string) []string {
	t.Helper()
	ctx := context.Background()
	podNames := make([]string, 0, n)
	for i := range n {
		pod := cluster.PodSpec(s.Namespace, fmt.Sprintf("%s-%02d", prefix, i), managed)
		for k, v := range annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		created, err := cp.Client.CoreV1().Pods(s.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cluster.MarkRunning(ctx, cp.Client, created)
		require.NoError(t, err)
		podNames = append(podNames, created.Name)
	}
	return podNames
}

func getPod(t *testing.T, s *cluster.Stack, name string) *corev1.Pod {
	t.Helper()
	pod, err := cp.Client.CoreV1().Pods(s.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return pod
}

// waitForFinalizers waits until every named pod has the function's finalizer.
func waitForFinalizers(t *testing.T, s *cluster.Stack, podNames []string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, name := range podNames {
			if !hasFinalizer(getPod(t, s, name)) {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every managed pod gets the finalizer")
}

func hasFinalizer(pod *corev1.Pod) bool {
	for _, f := range pod.Finalizers {
		if f == names.Finalizer {
			return true
		}
	}
	return false
}

// assertEvents waits until the Kubernetes Events about a pod are exactly want ("Type/Reason";
// the function writes each one just after the patch it reports).
func assertEvents(t *testing.T, s *cluster.Stack, pod *corev1.Pod, want ...string) {
	t.Helper()
	var got []string
	assert.Eventually(t, func() bool {
		got = eventReasons(t, s, string(pod.UID))
		return assert.ObjectsAreEqual(sorted(want), sorted(got))
	}, 10*time.Second, 50*time.Millisecond, "events of %s: want %v, got %v", pod.Name, want, &got)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// eventReasons lists "Type/Reason" of the Kubernetes Events about a pod.
func eventReasons(t *testing.T, s *cluster.Stack, uid string) []string {
	t.Helper()
	list, err := cp.Client.CoreV1().Events(s.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", uid).String(),
	})
	require.NoError(t, err)
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Type+"/"+e.Reason)
	}
	return out
}

// assertReplies waits until the proxy has recorded exactly one reply of type t for each pod.
func assertReplies(t *testing.T, s *cluster.Stack, typ string, podNames []string) {
	t.Helper()
	var missing []string
	assert.Eventually(t, func() bool {
		missing = missing[:0]
		for _, name := range podNames {
			if len(s.Proxy.Replies(typ, s.Subject(name))) != 1 {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	}, 10*time.Second, 50*time.Millisecond, "pods without exactly one %s reply: %v", typ, &missing)
}

func replyData(t *testing.T, x cluster.Exchange) eventing.ReplyData {
	t.Helper()
	var d eventing.ReplyData
	require.NoError(t, json.Unmarshal(x.ReplyBody, &d))
	return d
}

// evictAll evicts the pods with grace period 3 s, waits until each drain is stamped, and has
// the kubelet stop each pod's containers at its deletionTimestamp. It also returns when each
// eviction was asked for: no eviction happened before, so a drain that is never early is
// released no sooner than that + its grace period (the stamps, whole seconds, may be up to 1 s
// earlier).
func evictAll(t *testing.T, s *cluster.Stack, k *kubelet, podNames []string) (map[string]*corev1.Pod, map[string]time.Time) {
	t.Helper()
	ctx := context.Background()
	asked := map[string]time.Time{}
	for _, name := range podNames {
		asked[name] = time.Now()
		require.NoError(t, cluster.Evict(ctx, cp.Client, s.Namespace, name, ptr.To[int64](3)))
	}
	stamped := map[string]*corev1.Pod{}
	require.Eventually(t, func() bool {
		for _, name := range podNames {
			if _, ok := stamped[name]; ok {
				continue
			}
			pod := getPod(t, s, name)
			if pod.Annotations[names.AnnotationDrainStarted] != "" && pod.Annotations[names.AnnotationDrainDeadline] != "" {
				stamped[name] = pod
				if k != nil {
					k.stopAtDeadline(ctx, pod)
				}
			}
		}
		return len(stamped) == len(podNames)
	}, 30*time.Second, 50*time.Millisecond, "every evicted pod gets the drain annotations")
	return stamped, asked
}

// assertNeverEarly checks that each pod was released no sooner than hold after its eviction
// was asked for (same machine, same clock as the API server's).
func assertNeverEarly(t *testing.T, r *cluster.Releases, asked map[string]time.Time, hold time.Duration) {
	t.Helper()
	for name, at := range asked {
		released, ok := r.At(name)
		require.True(t, ok, "%s released", name)
		assert.GreaterOrEqual(t, released.Sub(at), hold, "%s released %s after its eviction was asked for", name, released.Sub(at))
	}
}

func drainStarted(t *testing.T, pod *corev1.Pod) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, pod.Annotations[names.AnnotationDrainStarted])
	require.NoError(t, err)
	return at
}

// assertReleasedOnTime waits until every pod lost the finalizer and checks each release came
// after its due time (grace over and containers stopped) and at most `slack` later. notBefore
// moves the due time (e.g. to the first event a restarted function received).
func assertReleasedOnTime(t *testing.T, s *cluster.Stack, r *cluster.Releases, k *kubelet, stamped map[string]*corev1.Pod, notBefore time.Time) {
	t.Helper()
	require.Eventually(t, func() bool {
		for name := range stamped {
			if _, ok := r.At(name); !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every drained pod loses the finalizer")
	var worst time.Duration
	for name, pod := range stamped {
		released, _ := r.At(name)
		stoppedAt, ok := k.stoppedAt(name)
		require.True(t, ok, "kubelet stopped %s", name)
		due := cluster.EndOfSecond(drainStarted(t, pod)).Add(grace) // as the function times it: never early
		for _, at := range []time.Time{stoppedAt, notBefore} {
			if at.After(due) {
				due = at
			}
		}
		late := released.Sub(due)
		worst = max(worst, late)
		assert.GreaterOrEqual(t, late, -50*time.Millisecond, "%s released before its grace period ended and its containers stopped", name)
		assert.LessOrEqual(t, late, slack, "%s released %s after its due time", name, late)
	}
	t.Logf("%d pods released; latest release %s after its due time", len(stamped), worst.Round(time.Millisecond))
}

// assertDrained: every pod was released on time (see assertReleasedOnTime) with the Events of
// a completed drain, and is gone after the kubelet's final DELETE.
func assertDrained(t *testing.T, s *cluster.Stack, r *cluster.Releases, k *kubelet, stamped map[string]*corev1.Pod, notBefore time.Time) {
	t.Helper()
	assertReleasedOnTime(t, s, r, k, stamped, notBefore)
	require.Empty(t, k.failures())
	for _, pod := range stamped {
		assertEvents(t, s, pod, "Normal/DrainStarted", "Normal/DrainCompleted")
	}
	finishAll(t, s, stamped)
}

// finishAll does the kubelet's grace-0 DELETE for each pod and waits until all are gone.
func finishAll(t *testing.T, s *cluster.Stack, stamped map[string]*corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	for _, pod := range stamped {
		require.NoError(t, cluster.FinishDeletion(ctx, cp.Client, pod))
	}
	require.Eventually(t, func() bool {
		for name := range stamped {
			_, err := cp.Client.CoreV1().Pods(s.Namespace).Get(ctx, name, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every released pod is gone after the grace-0 DELETE")
}

func TestE2EManageEvictDrain(t *testing.T) {
	for _, mode := range []string{"Resource", "Reference"} {
		t.Run(mode, func(t *testing.T) {
			s := cluster.StartStack(t, cp, bin, mode, functionEnv...)
			releases := cluster.WatchReleases(t, s, names.Finalizer)

			// 1. 20 managed pods get the finalizer; 5 unmanaged ones are never touched.
			managed := createPods(t, s, "web", 20, true, nil)
			unmanaged := createPods(t, s, "batch", 5, false, nil)
			waitForFinalizers(t, s, managed)
			// The proxy records a reply once the function has answered, just after its patch.
			assertReplies(t, s, names.ReplyFinalizerAdded, managed)
			for _, name := range unmanaged {
				pod := getPod(t, s, name)
				assert.Empty(t, pod.Finalizers, name)
				for _, mf := range pod.ManagedFields {
					assert.NotEqual(t, names.Component, mf.Manager, "%s was written by the function", name)
				}
				for _, x := range s.Proxy.Exchanges() {
					if x.Subject == s.Subject(name) {
						assert.Equal(t, 200, x.Status)
						assert.Empty(t, x.ReplyType, "no reply for an unmanaged pod")
					}
				}
			}

			// 2. Evicted with grace 3 s: drain stamped, released within 1 s of its due time.
			// One pod's containers stop 5.2 s after the kubelet's kill time: its re-checks find
			// them running (at the kill time, then every 0.5 s growing to a quarter of the time
			// since: 3.9 s, 4.9 s, 6.1 s), so the kubelet's status event at 5.2 s releases it,
			// with a reply, about 0.9 s before the next re-check would.
			k := newKubelet()
			k.late[managed[0]] = 5200 * time.Millisecond
			stamped, asked := evictAll(t, s, k, managed)
			assertDrained(t, s, releases, k, stamped, time.Time{})
			assertNeverEarly(t, releases, asked, grace)
			assertReplies(t, s, names.ReplyDrainStarted, managed)
			// Replies to timer-driven releases have no request to answer; those that came with
			// an event say why and how long.
			removed := s.Proxy.Replies(names.ReplyFinalizerRemoved, "")
			require.NotEmpty(t, s.Proxy.Replies(names.ReplyFinalizerRemoved, eventing.PodPath(s.Namespace, managed[0])),
				"the late pod was released by its status event, with a reply")
			for _, x := range removed {
				d := replyData(t, x)
				assert.Equal(t, names.ReasonDrained, d.Reason)
				require.NotNil(t, d.DrainSeconds)
				assert.GreaterOrEqual(t, *d.DrainSeconds, grace.Seconds())
				assert.Empty(t, x.ReplyDryRun)
			}
		})
	}
}

func TestE2ERestartMidDrain(t *testing.T) {
	s := cluster.StartStack(t, cp, bin, "Resource", functionEnv...)
	releases := cluster.WatchReleases(t, s, names.Finalizer)
	managed := createPods(t, s, "web", 8, true, nil)
	waitForFinalizers(t, s, managed)

	// Drains start, then the function dies before any is due; a new process takes over with
	// no memory of them. The kubelet stops the containers after the restart.
	stamped, _ := evictAll(t, s, nil, managed)
	// Its Kubernetes Events are written behind the decisions: a kill -9 before they are would
	// lose them (that is not what this test is about).
	for _, pod := range stamped {
		assertEvents(t, s, pod, "Normal/DrainStarted")
	}
	require.NoError(t, s.RestartFunction())
	restarted := time.Now()
	k := newKubelet()
	k.stopAllAtDeadline(stamped)
	assertDrained(t, s, releases, k, stamped, restarted)
}

func TestE2ESweepFinishesDrainsWhoseEventsWereLost(t *testing.T) {
	s := cluster.StartStack(t, cp, bin, "Resource", functionEnv...)
	releases := cluster.WatchReleases(t, s, names.Finalizer)
	managed := createPods(t, s, "web", 5, true, nil)
	waitForFinalizers(t, s, managed)
	stamped, _ := evictAll(t, s, nil, managed)
	// Its Kubernetes Events are written behind the decisions: a kill -9 before they are would
	// lose them (that is not what this test is about).
	for _, pod := range stamped {
		assertEvents(t, s, pod, "Normal/DrainStarted")
	}

	// The function is down while the kubelet stops the containers: the adapter's sends fail and
	// it drops those events. Nothing would ever announce these pods again.
	s.Function.Kill()
	k := newKubelet()
	k.stopAllAtDeadline(stamped)
	require.Eventually(t, func() bool {
		for name := range stamped {
			if _, ok := k.stoppedAt(name); !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		lost := map[string]bool{}
		for _, x := range s.Proxy.Exchanges() {
			if x.Status == 502 {
				lost[x.Subject] = true
			}
		}
		return len(lost) == len(stamped)
	}, 30*time.Second, 50*time.Millisecond, "the stop event of every pod failed to reach the function")
	for name := range stamped {
		_, released := releases.At(name)
		require.False(t, released, "%s released while the function was down", name)
	}

	// A new process sweeps when it starts and finishes every drain.
	restarted := time.Now()
	require.NoError(t, s.RestartFunction())
	assertDrained(t, s, releases, k, stamped, restarted)
}

func TestE2ETimeoutReleasesAtDeadline(t *testing.T) {
	s := cluster.StartStack(t, cp, bin, "Resource", functionEnv...)
	releases := cluster.WatchReleases(t, s, names.Finalizer)
	podNames := createPods(t, s, "stuck", 2, true, map[string]string{names.AnnotationDrainTimeout: "5"})
	waitForFinalizers(t, s, podNames)

	// The containers never stop: only the deadline releases the pods.
	stamped, asked := evictAll(t, s, nil, podNames)
	require.Eventually(t, func() bool {
		_, a := releases.At(podNames[0])
		_, b := releases.At(podNames[1])
		return a && b
	}, 30*time.Second, 50*time.Millisecond)
	for name, pod := range stamped {
		deadline, err := time.Parse(time.RFC3339, pod.Annotations[names.AnnotationDrainDeadline])
		require.NoError(t, err)
		assert.Equal(t, 5*time.Second, deadline.Sub(drainStarted(t, pod)), "per-pod drain timeout")
		released, _ := releases.At(name)
		late := released.Sub(cluster.EndOfSecond(deadline))
		assert.GreaterOrEqual(t, late, time.Duration(0), "%s released before the latest moment its whole-second deadline stands for", name)
		assert.LessOrEqual(t, late, slack, "%s released %s after its deadline", name, late)
		assertEvents(t, s, pod, "Normal/DrainStarted", "Warning/DrainTimedOut")
		assert.Equal(t, corev1.PodRunning, getPod(t, s, name).Status.Phase, "containers still running")
	}
	assertNeverEarly(t, releases, asked, 5*time.Second)
	finishAll(t, s, stamped)
}

// Why eventing/knative.yaml gives VerticalPodAutoscalers an ApiServerSource of their own: the
// real adapter, asked to watch a resource whose CRD the cluster lacks (this test bed has none of
// VPA's), exits at start, and with it every other resource's events.
func TestE2EAdapterExitsWithoutTheVPACRD(t *testing.T) {
	ns := cp.Namespace(t, "novpa")
	proxy, err := cluster.StartProxy("http://127.0.0.1:1/")
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	a, err := cluster.StartAdapter(cp.Kubeconfig, ns, "Resource", proxy.URL, cluster.VPAs)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop() })
	require.Eventually(t, a.Exited, 30*time.Second, 50*time.Millisecond, "the adapter exits")
	assert.Contains(t, a.Output(), "verticalpodautoscalers: the server could not find the requested resource")
}
