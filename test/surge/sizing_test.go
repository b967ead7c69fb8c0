//go:build e2e

package surge

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers/surge"
	"function/names"
)

// countReasons counts the Events on the Deployment with reason.
func (b *surgeBed) countReasons(reason string) int {
	b.t.Helper()
	n := 0
	for _, r := range b.eventReasons() {
		if r == reason {
			n++
		}
	}
	return n
}

// cpuOnly is a ResourceList of cpu alone.
func cpuOnly(cpu string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
}

// A namespace whose LimitRange clamps the recommendation (500m recommended, 300m the most a
// container, or the pod, may have; the pods' limits equal their requests, so VPA caps the
// request itself at 300m): VPA's admission controller sizes the new pods at 300m, and the
// function predicted just that (VPA's own recommendation provider over the namespace's
// LimitRanges, after the defaults the API server's LimitRanger gives the pod), so the one
// rollout completes, its new pods at the clamped 300m, and the clamped recommendation is not
// rolled out again. (Without the LimitRange in the prediction, 500m was predicted and the
// rollout aborted as "not sized as predicted" once every old pod was gone.)
func TestSurgeRolloutAppliesTheLimitRange(t *testing.T) {
	tests := []struct {
		name   string
		limit  corev1.LimitRangeItem
		deploy func(*appsv1.Deployment)
	}{
		{name: "a container's max, the limit the LimitRange defaults",
			limit:  corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: cpuOnly("300m"), Default: cpuOnly("100m")},
			deploy: func(*appsv1.Deployment) {}},
		{name: "a pod's max, the container's own limit",
			limit: corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: cpuOnly("300m")},
			deploy: func(d *appsv1.Deployment) {
				d.Spec.Template.Spec.Containers[0].Resources.Limits = cpuOnly("100m")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSurgeBed(t)
			_, err := cp.Client.CoreV1().LimitRanges(b.ns).Create(b.ctx, &corev1.LimitRange{
				ObjectMeta: metav1.ObjectMeta{Name: "limits"},
				Spec:       corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{tt.limit}},
			}, metav1.CreateOptions{})
			require.NoError(t, err)
			first := b.deploy(1, tt.deploy)
			require.True(t, equality.Semantic.DeepEqual(requests("100m"), first[0].Spec.Containers[0].Resources.Requests),
				"the first pod as the Deployment asks (the VPA recommends 100m): %s", resources(first[0].Spec.Containers[0].Resources.Requests))
			require.True(t, first[0].Spec.Containers[0].Resources.Limits.Cpu().Equal(resource.MustParse("100m")),
				"its cpu limit 100m: %s", resources(first[0].Spec.Containers[0].Resources.Limits))
			ready := watchReady(b.ctx, t, b.ns, "web")
			recommended := time.Now()
			b.recommend("500m")

			done, st := b.waitEnded()
			took := time.Since(recommended)
			require.Equal(t, surge.PhaseCompleted, st.Phase, "completed, not aborted: %s", st.Reason)
			assert.True(t, equality.Semantic.DeepEqual(map[string]corev1.ResourceList{"app": requests("300m")}, st.Requests),
				"the prediction is the clamped recommendation: %s", resources(st.Requests["app"]))
			var pods []corev1.Pod
			require.Eventually(t, func() bool { // the old pod gone, the new one left
				pods = ownPods(b.ctx, b.ns, "web", false)
				return len(pods) == 1 && pods[0].Name != first[0].Name
			}, 30*time.Second, 100*time.Millisecond, "the old pod gone")
			got := pods[0].Spec.Containers[0].Resources
			t.Logf("recommendation to completed rollout %s; fewest Ready pods %d; the new pod's requests %s, limits %s, VPA's annotation %q",
				took.Round(100*time.Millisecond), ready.Min(), resources(got.Requests), resources(got.Limits), pods[0].Annotations["vpaUpdates"])
			assert.True(t, equality.Semantic.DeepEqual(requests("300m"), got.Requests), "sized by VPA's admission controller at the clamped 300m: %s", resources(got.Requests))
			assert.Contains(t, pods[0].Annotations["vpaUpdates"], "cpu request", "VPA's admission controller sized it")
			assert.Equal(t, 1, ready.Min(), "the single replica stayed served")
			rss, err := cp.Client.AppsV1().ReplicaSets(b.ns).List(b.ctx, metav1.ListOptions{})
			require.NoError(t, err)
			assert.Len(t, rss.Items, 2, "exactly one new ReplicaSet")
			assert.Equal(t, 1, b.countReasons(names.EventSurgeRolloutStarted), "exactly one rollout")
			assert.Equal(t, 1, b.countReasons(names.EventSurgeRolloutCompleted))
			b.noSecondRollout(done)
			assert.Zero(t, b.countReasons(names.EventSurgeRolloutAborted))
		})
	}
}

// dryRunRequests are the requests VPA's admission controller gives a pod of the ReplicaSet rs
// now: a pod of its template, owned by it, created with dry run (never stored, never seen by
// the Deployment's controllers or the function; VPA's webhook has no side effects, so the API
// server calls it for dry runs too).
func (b *surgeBed) dryRunRequests(rs *appsv1.ReplicaSet) (corev1.ResourceList, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "sizing-probe-", Labels: maps.Clone(rs.Spec.Template.Labels),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
		Spec: *rs.Spec.Template.Spec.DeepCopy(),
	}
	got, err := cp.Client.CoreV1().Pods(b.ns).Create(b.ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return nil, fmt.Errorf("creating a pod of ReplicaSet %s with dry run: %w", rs.Name, err)
	}
	return got.Spec.Containers[0].Resources.Requests, nil
}

// The first new pod of a rollout is not sized as predicted: VPA's recommender writes a new
// recommendation (700m) right after the function restarted the Deployment for the previous
// one (500m), so VPA's admission controller sizes the new pod at 700m. The function aborts the
// rollout as soon as it reads that pod (not Ready yet: pods take 8 s), before the Deployment
// controller deletes any old pod: 2 replicas, maxSurge 1, maxUnavailable 0, never fewer than 2
// Ready pods, none of the old pods ever deleting, the Deployment rolled back to them.
//
// The Deployment controller is held (kube-controller-manager stopped) from before the
// recommendation until VPA's admission controller sizes pods with the new one (a dry-run pod
// tells), so that the new pod is certainly created after the change, as with a Deployment
// controller slower than the recommender; without the hold, which comes first is a race
// between the Deployment and ReplicaSet controllers' two writes and the recommendation's one.
func TestSurgeRolloutAbortsOnTheFirstMisSizedPod(t *testing.T) {
	const replicas = 2
	b := newSurgeBed(t)
	first := b.deploy(replicas)
	rss, err := cp.Client.AppsV1().ReplicaSets(b.ns).List(b.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, rss.Items, 1, "the Deployment's first ReplicaSet")
	ready := watchReady(b.ctx, t, b.ns, "web")
	pods := watchPods(b.ctx, t, b.ns, "web")
	state := watchState(b.ctx, t, b.ns, "web")

	release := holdDeploymentController(t)
	b.recommend("500m")
	var rollingAt time.Time
	require.Eventually(t, func() bool { var ok bool; rollingAt, ok = state.at(surge.PhaseRolling); return ok }, time.Minute, 10*time.Millisecond,
		"the function restarts the Deployment (its state rolling)")
	b.recommend("700m")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := b.dryRunRequests(&rss.Items[0])
		if assert.NoError(c, err) {
			assert.True(c, equality.Semantic.DeepEqual(requests("700m"), r), "a new pod's requests: %s", resources(r))
		}
	}, 30*time.Second, 50*time.Millisecond, "VPA's admission controller sizes new pods with the new recommendation")
	released := time.Now()
	release()

	done, st := b.waitEnded()
	require.Equal(t, surge.PhaseAborted, st.Phase, "aborted, not %s: %s", st.Phase, st.Reason)
	assert.Contains(t, st.Reason, "not sized as predicted")
	assert.True(t, equality.Semantic.DeepEqual(map[string]corev1.ResourceList{"app": requests("500m")}, st.Requests),
		"the rollout was predicted for the first recommendation: %s", resources(st.Requests["app"]))
	assert.NotContains(t, done.Spec.Template.Annotations, names.AnnotationRestartedAt, "the restart undone")
	assert.Contains(t, b.eventReasons(), names.EventSurgeRolloutAborted)

	// The old pods served throughout and were never deleted; the Deployment rolled back to them
	// (the surge pod gone, its rollout complete).
	names := func(ps []corev1.Pod) []string {
		out := make([]string, 0, len(ps))
		for _, p := range ps {
			out = append(out, p.Name)
		}
		slices.Sort(out)
		return out
	}
	rolledBack := assert.Eventually(t, func() bool {
		d, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
		return err == nil && slices.Equal(names(first), names(ownPods(b.ctx, b.ns, "web", false))) &&
			d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == replicas &&
			d.Status.Replicas == replicas && d.Status.AvailableReplicas == replicas
	}, time.Minute, 100*time.Millisecond, "rolled back: the old pods alone again")
	seen := pods.seen()
	assert.Equal(t, replicas, ready.Min(), "never fewer Ready pods than replicas")
	for _, p := range first {
		assert.False(t, seen[p.Name].deleting, "old pod %s was never deleting", p.Name)
	}
	require.True(t, rolledBack)

	var surgePods []string
	for name := range seen {
		if !slices.Contains(names(first), name) {
			surgePods = append(surgePods, name)
		}
	}
	require.Len(t, surgePods, 1, "one new pod (maxSurge 1): %v", surgePods)
	surgePod := seen[surgePods[0]]
	abortedAt, ok := state.at(surge.PhaseAborted)
	require.True(t, ok, "the aborted state seen")
	t.Logf("the Deployment controller released %s after the restart; the new pod (%s) seen %s after the release, the rollout aborted %s after the new pod was seen; fewest Ready pods %d",
		released.Sub(rollingAt).Round(time.Millisecond), resources(surgePod.requests),
		surgePod.firstSeen.Sub(released).Round(time.Millisecond), abortedAt.Sub(surgePod.firstSeen).Round(time.Millisecond), ready.Min())
	assert.True(t, equality.Semantic.DeepEqual(requests("700m"), surgePod.requests),
		"the new pod sized with the new recommendation, not the prediction: %s", resources(surgePod.requests))
	assert.False(t, surgePod.ready, "the new pod was never Ready")
}
