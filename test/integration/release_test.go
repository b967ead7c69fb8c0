//go:build integration

package integration

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"function/handlers"
	"function/names"
	"function/test/cluster"
)

// refuseLabel marks the pods whose finalizer removal refuseRelease has the API server refuse.
const refuseLabel = "release-test/refuse"

// refuseRelease makes the API server refuse, in f's namespace, any update of a pod labelled
// refuseLabel: "true" that removes our finalizer (an admission policy, as a cluster's own
// policies might), and waits until the policy is enforced on probe, a pod so labelled that
// holds the finalizer (probed with server-side dry-run patches, which run admission but write
// nothing). The returned func removes the policy and waits until it is no longer enforced.
func (f *fixture) refuseRelease(probe string) (remove func()) {
	f.t.Helper()
	fin := `'` + names.Finalizer + `'`
	del := f.denyPodUpdates("refuse-release-"+f.ns,
		`!has(oldObject.metadata.finalizers) || !(`+fin+` in oldObject.metadata.finalizers) || `+
			`(has(object.metadata.finalizers) && `+fin+` in object.metadata.finalizers)`,
		"finalizer "+names.Finalizer+" may not be removed from this pod",
		&metav1.LabelSelector{MatchLabels: map[string]string{refuseLabel: "true"}})

	// A dry-run removal of the probe's finalizers: refused (403) once the policy is enforced.
	tryRemoval := func() error {
		_, err := cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, probe, types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	var last error
	require.Eventually(f.t, func() bool { last = tryRemoval(); return apierrors.IsForbidden(last) },
		30*time.Second, 100*time.Millisecond, "the admission policy is enforced")
	return func() {
		f.t.Helper()
		del()
		require.Eventually(f.t, func() bool { last = tryRemoval(); return last == nil },
			30*time.Second, 100*time.Millisecond, "the admission policy is gone")
	}
}

// progressCalls records ReleaseOptions.Progress calls.
type progressCalls struct {
	mu    sync.Mutex
	calls [][3]int
}

func (p *progressCalls) record(done, released, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, [3]int{done, released, failed})
}

func (p *progressCalls) last() [3]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 {
		return [3]int{-1, -1, -1}
	}
	return p.calls[len(p.calls)-1]
}

// Uninstalling with more pods than one page, patched 8 at a time: every pod is listed once,
// every finalizer goes but the one the API server refuses, which is counted and reported
// without stopping the others; once the refusal is lifted, a second run releases it.
func TestIntegrationReleaseAllPagesAndCountsRefusedPods(t *testing.T) {
	const managed, plain = 60, 5
	f := newFixture(t, testConfig())
	var held []string // namespace/name of the pods that hold our finalizer
	for i := range managed {
		name := fmt.Sprintf("m-%02d", i)
		pod := cluster.PodSpec(f.ns, name, true)
		pod.Finalizers = []string{names.Finalizer}
		if i == 18 {
			name = "refused"
			pod.Name, pod.Labels[refuseLabel] = name, "true"
		}
		if i%7 == 3 {
			pod.Finalizers = append(pod.Finalizers, "example.com/keep")
		}
		created, err := cp.Client.CoreV1().Pods(f.ns).Create(f.ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cluster.MarkRunning(f.ctx, cp.Client, created)
		require.NoError(t, err)
		switch {
		case i%6 == 1: // evicted by the VPA updater, held by the finalizer
			require.NoError(t, cluster.Evict(f.ctx, cp.Client, f.ns, name, ptr.To[int64](3)))
		case i%6 == 4: // deleted by someone else
			require.NoError(t, cp.Client.CoreV1().Pods(f.ns).Delete(f.ctx, name, metav1.DeleteOptions{}))
		}
		held = append(held, f.ns+"/"+name)
	}
	for i := range plain {
		f.create(fmt.Sprintf("plain-%d", i), false)
	}
	slices.Sort(held)
	remove := f.refuseRelease("refused")
	f.reqs.List()

	var progress progressCalls
	res, err := handlers.NewReleaser(f.rec).ReleaseAll(f.ctx, f.ns, handlers.ReleaseOptions{PageSize: 25, Workers: 8, Progress: progress.record})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 pod(s) failed")
	assert.Contains(t, err.Error(), f.ns+"/refused")
	assert.True(t, apierrors.IsForbidden(err), "wraps the API server's refusal: %v", err)
	others := slices.DeleteFunc(slices.Clone(held), func(s string) bool { return s == f.ns+"/refused" })
	assert.Equal(t, handlers.ReleaseResult{Released: others, Failed: 1, Listed: managed + plain}, res)
	assert.Equal(t, [3]int{managed + plain, managed - 1, 1}, progress.last(), "the final progress report")
	reqs := f.reqs.List()
	assert.Equal(t, 3, count(reqs, "GET pods"), "65 pods in pages of 25")
	assert.Equal(t, managed, count(reqs, "PATCH pods"), "one guarded patch per pod, no re-read")
	assert.Equal(t, managed-1, count(reqs, "POST events"), "a FinalizerRemoved Event per released pod")

	list, err := cp.Client.CoreV1().Pods(f.ns).List(f.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, managed+plain)
	deleting := 0
	for _, pod := range list.Items {
		want := slices.DeleteFunc(slices.Clone(pod.Finalizers), func(s string) bool { return s == names.Finalizer })
		if pod.Name == "refused" {
			assert.Equal(t, []string{names.Finalizer}, pod.Finalizers, "refused: the finalizer stays")
			continue
		}
		assert.Equal(t, want, pod.Finalizers, pod.Name)
		assert.NotContains(t, pod.Finalizers, names.Finalizer, pod.Name)
		if pod.DeletionTimestamp != nil {
			deleting++
		}
	}
	assert.Equal(t, 20, deleting, "evicted and deleted pods were released too")

	// The refusal is lifted: a second run releases the last pod, and only it.
	remove()
	f.reqs.List()
	res, err = handlers.NewReleaser(f.rec).ReleaseAll(f.ctx, f.ns, handlers.ReleaseOptions{PageSize: 25, Workers: 8})
	require.NoError(t, err)
	assert.Equal(t, handlers.ReleaseResult{Released: []string{f.ns + "/refused"}, Listed: managed + plain}, res)
	assert.Empty(t, f.get("refused").Finalizers)
	assert.Equal(t, []string{"GET pods", "GET pods", "GET pods", "PATCH pods", "POST events"}, f.reqs.List())
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
