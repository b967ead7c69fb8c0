//go:build e2e

package surge

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers/surge"
	"function/test/cluster"
)

// stateWatch follows the surge state of one Deployment from one watch stream: when each phase
// was first seen.
type stateWatch struct {
	mu   sync.Mutex
	seen map[surge.Phase]time.Time
}

func watchState(ctx context.Context, t *testing.T, ns, name string) *stateWatch {
	t.Helper()
	d, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	sw := &stateWatch{seen: map[surge.Phase]time.Time{}}
	sw.observe(d)
	w, err := cp.Client.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: d.ResourceVersion})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				sw.observe(d)
			}
		}
	}()
	return sw
}

func (sw *stateWatch) observe(d *appsv1.Deployment) {
	st, err := surge.ReadState(d)
	if err != nil {
		return
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if _, ok := sw.seen[st.Phase]; !ok {
		sw.seen[st.Phase] = time.Now()
	}
}

// at is when phase was first seen (false: not yet).
func (sw *stateWatch) at(phase surge.Phase) (time.Time, bool) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	t, ok := sw.seen[phase]
	return t, ok
}

// podSeen is what a podWatch saw of one pod.
type podSeen struct {
	firstSeen time.Time
	requests  corev1.ResourceList // of container app, as first seen
	ready     bool                // ever Ready
	deleting  bool                // ever with a deletionTimestamp, or deleted
}

// podWatch follows a Deployment's pods (app=name, owned by a ReplicaSet) from one watch
// stream: every pod seen since the watch began, with its requests, whether it was ever Ready
// and whether it was ever deleting.
type podWatch struct {
	mu   sync.Mutex
	pods map[string]*podSeen
}

func watchPods(ctx context.Context, t *testing.T, ns, name string) *podWatch {
	t.Helper()
	sel := appSelector(name).String()
	list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	require.NoError(t, err)
	pw := &podWatch{pods: map[string]*podSeen{}}
	for i := range list.Items {
		pw.observe(&list.Items[i], false)
	}
	followPods(ctx, t, ns, sel, list.ResourceVersion, pw.observe)
	return pw
}

func (pw *podWatch) observe(p *corev1.Pod, deleted bool) {
	if c := metav1.GetControllerOf(p); c == nil || c.Kind != "ReplicaSet" {
		return // not the Deployment's (the stack's probe pod is labelled app=web too)
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	s, ok := pw.pods[p.Name]
	if !ok {
		s = &podSeen{firstSeen: time.Now()}
		for _, c := range p.Spec.Containers {
			if c.Name == "app" {
				s.requests = c.Resources.Requests.DeepCopy()
			}
		}
		pw.pods[p.Name] = s
	}
	for _, c := range p.Status.Conditions {
		s.ready = s.ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
	}
	s.deleting = s.deleting || deleted || p.DeletionTimestamp != nil
}

// seen is a copy of what was seen of every pod, by name.
func (pw *podWatch) seen() map[string]podSeen {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	out := make(map[string]podSeen, len(pw.pods))
	for name, s := range pw.pods {
		out[name] = *s
	}
	return out
}

// resources shows a ResourceList as cpu=300m,memory=64Mi.
func resources(rl corev1.ResourceList) string {
	names := slices.Sorted(maps.Keys(rl))
	parts := make([]string, 0, len(names))
	for _, name := range names {
		q := rl[name]
		parts = append(parts, string(name)+"="+q.String())
	}
	return strings.Join(parts, ",")
}

// holdDeploymentController stops kube-controller-manager, and with it the Deployment and
// ReplicaSet controllers, until release starts a new one (the test's cleanup does if the test
// did not): what the Deployment controller does with a write made meanwhile, it does at once
// after release, on what the cluster holds then.
func holdDeploymentController(t *testing.T) (release func()) {
	t.Helper()
	require.NoError(t, kcm.Stop())
	var once sync.Once
	release = func() {
		once.Do(func() {
			started, err := cluster.NewControllerManager(cp)
			require.NoError(t, err, "restarting kube-controller-manager")
			kcm = started
		})
	}
	t.Cleanup(release)
	return release
}
