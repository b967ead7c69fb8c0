//go:build e2e

package surge

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"function/handlers/surge"
	"function/names"
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
	followPods(ctx, t, ns, sel, list.ResourceVersion, rw.observe)
	return rw
}

// followPods hands every change of the pods sel selects in ns after resourceVersion to
// observe (deleted: the pod is gone), from one watch stream, until the test ends.
func followPods(ctx context.Context, t *testing.T, ns, sel, resourceVersion string, observe func(p *corev1.Pod, deleted bool)) {
	t.Helper()
	w, err := cp.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: resourceVersion})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				observe(p, ev.Type == watch.Deleted)
			}
		}
	}()
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
			assert.Zero(t, st.Gap, "no capacity gap in the rollout's state")

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
			assert.Subset(t, b.eventReasons(), []string{names.EventSurgeRolloutStarted, names.EventSurgeRolloutCompleted})
			b.noSecondRollout(done)
			assert.NotContains(t, b.eventReasons(), names.EventSurgeRolloutAborted)
		})
	}
}

// A rollout that cannot finish is aborted (the template annotations the function set are
// removed again, so the Deployment rolls back), and the old pod serves throughout:
//   - a surge pod that never becomes Ready: the Deployment controller reports
//     ProgressDeadlineExceeded;
//   - a recommendation no node can hold: VPA's admission controller sizes the surge pod as
//     recommended (16 cpu, the node has 8), the scheduler leaves it Pending past
//     surgePendingTimeout.
func TestSurgeRolloutAborts(t *testing.T) {
	tests := []struct {
		name      string
		env       []string
		deploy    func(*appsv1.Deployment)
		holdReady bool
		cpu       string
		reason    string
	}{
		{name: "no progress", deploy: func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = ptr.To[int32](10) },
			holdReady: true, cpu: "500m", reason: "ProgressDeadlineExceeded"},
		{name: "the surge pod stays Pending", env: []string{"surgePendingTimeout=10s"}, deploy: func(*appsv1.Deployment) {},
			cpu: "16", reason: "Pending for more than 10s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSurgeBed(t, func(o *bedOptions) { o.env = tt.env })
			first := b.deploy(1, tt.deploy)
			ready := watchReady(b.ctx, t, b.ns, "web")
			if tt.holdReady {
				b.kubelet.HoldReady(func(p *corev1.Pod) bool { return p.Name != first[0].Name }) // every new pod stays unready
			}
			b.recommend(tt.cpu)

			done, st := b.waitEnded()
			require.Equal(t, surge.PhaseAborted, st.Phase)
			assert.Contains(t, st.Reason, tt.reason)
			assert.NotContains(t, done.Spec.Template.Annotations, names.AnnotationRestartedAt, "the restart undone")
			assert.Contains(t, b.eventReasons(), names.EventSurgeRolloutAborted)
			require.Eventually(t, func() bool { // rolled back: the surge pod gone, the old one left
				pods := ownPods(b.ctx, b.ns, "web", false)
				return len(pods) == 1 && pods[0].Name == first[0].Name
			}, time.Minute, 100*time.Millisecond, "the old pod alone again")
			assert.Equal(t, 1, ready.Min(), "the old pod served throughout")
			assert.Contains(t, b.metricsText(), `vpagracefuldrain_surge_rollouts_total{outcome="aborted"} 1`)
			b.noSecondRollout(done)
		})
	}
}
