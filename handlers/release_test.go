package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"function/handlers"
	"function/internal/testutil"
	"function/names"
)

// pagedLists makes the fake clientset answer pod lists as the API server does: Limit pods at
// a time in name order, with a continue token while more are left. expire(n) is asked for the
// n-th continued list (from 1): true answers it 410 Expired, as the API server does once the
// token's revision was compacted. It returns the ListOptions of every list call.
func pagedLists(c *fake.Clientset, expire func(n int) bool) func() []string {
	var mu sync.Mutex
	var calls []string
	continued := 0
	c.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		opts := a.(k8stesting.ListActionImpl).ListOptions
		mu.Lock()
		calls = append(calls, opts.Continue)
		if opts.Continue != "" {
			continued++
			if expire(continued) {
				mu.Unlock()
				return true, nil, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result.")
			}
		}
		mu.Unlock()
		obj, err := c.Tracker().List(podsGVR, corev1.SchemeGroupVersion.WithKind("Pod"), a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		all := obj.(*corev1.PodList)
		slices.SortFunc(all.Items, func(a, b corev1.Pod) int { return cmpString(a.Name, b.Name) })
		from := 0
		if opts.Continue != "" {
			from, _ = strconv.Atoi(opts.Continue)
		}
		to := len(all.Items)
		if opts.Limit > 0 {
			to = min(from+int(opts.Limit), to)
		}
		page := &corev1.PodList{Items: all.Items[from:to]}
		if to < len(all.Items) {
			page.Continue = strconv.Itoa(to)
		}
		return true, page, nil
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// podsForRelease returns n pods p00..p(n-1): every third without our finalizer, the others
// with it, some of those deleting (evicted); and the names of the pods holding the finalizer.
func podsForRelease(n int) (objs []runtime.Object, held []string) {
	for i := range n {
		name := fmt.Sprintf("p%02d", i)
		opts := []podOpt{named(name), managed}
		if i%3 != 0 {
			opts = append(opts, ours)
			held = append(held, "default/"+name)
			if i%2 == 0 {
				opts = append(opts, deleting, started(s40))
			}
		}
		objs = append(objs, newPod(opts...))
	}
	return objs, held
}

// progressLog records Progress calls.
type progressLog struct {
	mu    sync.Mutex
	calls [][3]int
}

func (p *progressLog) record(done, released, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, [3]int{done, released, failed})
}

func (p *progressLog) last(t *testing.T) [3]int {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NotEmpty(t, p.calls, "Progress was called")
	return p.calls[len(p.calls)-1]
}

func TestReleaseAllPagesAndRestartsWhenTheContinueTokenExpires(t *testing.T) {
	tests := []struct {
		name      string
		pageSize  int64
		expire    func(n int) bool
		wantLists []string // the continue token of each list call
	}{
		{"one page", 100, func(int) bool { return false }, []string{""}},
		{"pages of 4", 4, func(int) bool { return false }, []string{"", "4", "8"}},
		{"expired once: starts over", 4, func(n int) bool { return n == 2 },
			[]string{"", "4", "8", "", "4", "8"}},
		{"expired three times: starts over three times", 4, func(n int) bool { return n <= 3 },
			[]string{"", "4", "", "4", "", "4", "", "4", "8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, held := podsForRelease(10)
			f := newFixture(t, false, objs...)
			lists := pagedLists(f.client, tt.expire)
			var progress progressLog

			res, err := handlers.NewReleaser(f.rec).ReleaseAll(context.Background(), "default",
				handlers.ReleaseOptions{PageSize: tt.pageSize, Workers: 3, Progress: progress.record})
			require.NoError(t, err)
			assert.Equal(t, handlers.ReleaseResult{Released: held, Listed: 10}, res, "every pod once")
			assert.Equal(t, tt.wantLists, lists())
			assert.Equal(t, [3]int{10, len(held), 0}, progress.last(t))
			for _, name := range held {
				assert.NotContains(t, livePod(t, f.client, name[len("default/"):]).Finalizers, names.Finalizer, name)
			}
			assert.Len(t, events(f.client), len(held), "one FinalizerRemoved Event each")
		})
	}
}

func TestReleaseAllGivesUpAfterFourExpiredTokens(t *testing.T) {
	objs, _ := podsForRelease(10)
	f := newFixture(t, false, objs...)
	lists := pagedLists(f.client, func(int) bool { return true })

	res, err := handlers.NewReleaser(f.rec).ReleaseAll(context.Background(), "", handlers.ReleaseOptions{PageSize: 4})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "continue token expired 4 times")
	assert.True(t, apierrors.IsResourceExpired(err), "wraps the API server's answer: %v", err)
	assert.Equal(t, []string{"", "4", "", "4", "", "4", "", "4"}, lists(), "3 restarts, then it gives up")
	assert.Equal(t, 4, res.Listed, "the first page, once")
	assert.Equal(t, []string{"default/p01", "default/p02"}, res.Released, "the first page was released")
}

func TestReleaseAllCountsAFailedPodAndReleasesTheOthers(t *testing.T) {
	objs, held := podsForRelease(20)
	f := newFixture(t, false, objs...)
	pagedLists(f.client, func(int) bool { return false })
	bad := "p05"
	f.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.PatchAction).GetName() == bad {
			return true, nil, apierrors.NewInternalError(errors.New("etcd down"))
		}
		return false, nil, nil
	})
	var progress progressLog

	res, err := handlers.NewReleaser(f.rec).ReleaseAll(context.Background(), "", handlers.ReleaseOptions{PageSize: 5, Workers: 4, Progress: progress.record})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 pod(s) failed")
	assert.Contains(t, err.Error(), "default/"+bad)
	assert.True(t, apierrors.IsInternalError(err), "wraps the first failure: %v", err)
	others := slices.DeleteFunc(slices.Clone(held), func(s string) bool { return s == "default/"+bad })
	assert.Equal(t, handlers.ReleaseResult{Released: others, Failed: 1, Listed: 20}, res)
	assert.Equal(t, [3]int{20, len(others), 1}, progress.last(t))
	assert.Contains(t, livePod(t, f.client, bad).Finalizers, names.Finalizer)
	for _, name := range others {
		assert.NotContains(t, livePod(t, f.client, name[len("default/"):]).Finalizers, names.Finalizer, name)
	}
}

func TestReleaseAllStopsWhenListingFails(t *testing.T) {
	objs, _ := podsForRelease(6)
	f := newFixture(t, false, objs...)
	f.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(podsGVR.GroupResource(), "", errors.New("no list"))
	})
	var progress progressLog
	res, err := handlers.NewReleaser(f.rec).ReleaseAll(context.Background(), "", handlers.ReleaseOptions{Progress: progress.record})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listing pods")
	assert.True(t, apierrors.IsForbidden(err))
	assert.Equal(t, handlers.ReleaseResult{}, res)
	assert.Equal(t, [3]int{0, 0, 0}, progress.last(t), "the final report comes also on failure")
}

func TestReleaseAllStopsWhenCtxEnds(t *testing.T) {
	objs, _ := podsForRelease(6)
	f := newFixture(t, false, objs...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := handlers.NewReleaser(f.rec).ReleaseAll(ctx, "", handlers.ReleaseOptions{})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, res.Released)
	assert.Zero(t, res.Failed, "an interrupted release is no failure")
}

// gate is an EventRecorder that holds every Record until `want` are in flight at once, and
// reports the most it saw.
type gate struct {
	want     int
	mu       sync.Mutex
	now      int
	most     int
	open     chan struct{}
	once     sync.Once
	timedOut bool
}

func (g *gate) Record(context.Context, *corev1.Pod, string, string, string) error {
	g.mu.Lock()
	g.now++
	g.most = max(g.most, g.now)
	if g.now == g.want {
		g.once.Do(func() { close(g.open) })
	}
	g.mu.Unlock()
	select {
	case <-g.open:
	case <-time.After(10 * time.Second):
		g.mu.Lock()
		g.timedOut = true
		g.mu.Unlock()
	}
	g.mu.Lock()
	g.now--
	g.mu.Unlock()
	return nil
}

// RecordFor (Events on a pod's owner) is not what gate measures.
func (g *gate) RecordFor(context.Context, corev1.ObjectReference, string, string, string) error {
	return nil
}

func TestReleaseAllPatchesWithWorkersAtOnce(t *testing.T) {
	objs, held := podsForRelease(30)
	f := newFixture(t, false, objs...)
	pagedLists(f.client, func(int) bool { return false })
	g := &gate{want: 4, open: make(chan struct{})}
	f.rec.Events = g

	res, err := handlers.NewReleaser(f.rec).ReleaseAll(context.Background(), "", handlers.ReleaseOptions{PageSize: 7, Workers: 4})
	require.NoError(t, err)
	assert.False(t, g.timedOut, "4 pods were in flight at once, opening the gate")
	assert.Equal(t, held, res.Released)
	assert.Equal(t, 4, g.most, "Workers pods at once, never more")
}

func TestReleaseAll(t *testing.T) {
	f := newFixture(t, false,
		newPod(named("held"), ours, managed, deleting, started(s40)),
		newPod(named("running"), finalizers("example.com/keep", names.Finalizer), managed),
		newPod(named("plain"), managed))

	res, err := handlers.NewReleaser(f.rec).ReleaseAll(context.Background(), "", handlers.ReleaseOptions{})
	require.NoError(t, err)
	assert.Equal(t, handlers.ReleaseResult{Released: []string{"default/held", "default/running"}, Listed: 3}, res)
	assert.ElementsMatch(t, []string{"list pods", "patch pods", "create events", "patch pods", "create events"}, testutil.Verbs(f.client))
	assert.Empty(t, livePod(t, f.client, "held").Finalizers)
	assert.Equal(t, []string{"example.com/keep"}, livePod(t, f.client, "running").Finalizers)
	for _, e := range events(f.client) {
		assert.Equal(t, names.EventFinalizerRemoved, e.Reason)
		assert.Contains(t, e.Message, "uninstalled")
	}
}

func TestReleaseAllDryRunOnlyLists(t *testing.T) {
	f := newFixture(t, true, newPod(named("held"), ours, managed))
	res, err := handlers.NewReleaser(f.rec).ReleaseAll(context.Background(), "default", handlers.ReleaseOptions{})
	require.NoError(t, err)
	assert.Equal(t, handlers.ReleaseResult{Released: []string{"default/held"}, Listed: 1}, res)
	assert.Equal(t, []string{"list pods"}, testutil.Verbs(f.client))
}

func TestReleaseAllNeedsACluster(t *testing.T) {
	r := &handlers.Releaser{Deps: handlers.Deps{Log: discard}}
	_, err := r.ReleaseAll(context.Background(), "", handlers.ReleaseOptions{})
	assert.ErrorIs(t, err, handlers.ErrNoCluster)
}
