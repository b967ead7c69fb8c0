//go:build e2e

package surge

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"function/handlers/surge"
)

// rolloutWatch follows every Deployment of a namespace from one watch stream: which have a
// surge rollout in flight, the most at once, and when each rollout started.
type rolloutWatch struct {
	mu          sync.Mutex
	rolling     map[string]bool
	maxInFlight int
	starts      map[string]time.Time // by Deployment/prediction
}

func (rw *rolloutWatch) observe(d *appsv1.Deployment) {
	st, err := surge.ReadState(d)
	if err != nil {
		return
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.rolling[d.Name] = st.Phase == surge.PhaseRolling
	n := 0
	for _, r := range rw.rolling {
		if r {
			n++
		}
	}
	rw.maxInFlight = max(rw.maxInFlight, n)
	if st.Phase == surge.PhaseRolling {
		rw.starts[d.Name+"/"+st.Prediction] = st.Started
	}
}

// startsWithin is the most rollouts started within any window of d.
func (rw *rolloutWatch) startsWithin(d time.Duration) (most, total int) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	for _, a := range rw.starts {
		n := 0
		for _, b := range rw.starts {
			if !b.Before(a) && b.Sub(a) < d {
				n++
			}
		}
		most = max(most, n)
	}
	return most, len(rw.starts)
}

// A new recommendation for 20 Deployments at once: the function restarts them within its
// budget (the defaults: 2 in flight, 6 started a minute, counted over every Deployment from
// their own annotations), never more, while the rollouts it started complete.
func TestSurgeRolloutsStayWithinTheBudget(t *testing.T) {
	const n = 20
	b := newSurgeBed(t, func(o *bedOptions) { o.readyDelay, o.vpaEvents, o.timeout = time.Second, true, 5*time.Minute })
	t.Cleanup(func() { // the budget is the cluster's: these rollouts must not count in the next test's
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, cp.Client.AppsV1().Deployments(b.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}))
	})
	for i := range n {
		name := fmt.Sprintf("web-%02d", i)
		b.createVPA(name)
		b.create(name, 1)
	}
	for i := range n {
		b.waitRolledOut(fmt.Sprintf("web-%02d", i), 1)
	}
	rw := &rolloutWatch{rolling: map[string]bool{}, starts: map[string]time.Time{}}
	list, err := cp.Client.AppsV1().Deployments(b.ns).List(b.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	w, err := cp.Client.AppsV1().Deployments(b.ns).Watch(b.ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok && ev.Type != watch.Deleted {
				rw.observe(d)
			}
		}
	}()
	recommended := time.Now()
	for i := range n {
		b.recommendFor(fmt.Sprintf("web-%02d", i), "500m")
	}

	// The first minute's six, then the seventh once the first is a minute old.
	require.Eventually(t, func() bool { _, total := rw.startsWithin(time.Minute); return total >= 7 }, 3*time.Minute, 200*time.Millisecond,
		"rollouts go on after the first minute")
	most, total := rw.startsWithin(time.Minute)
	rw.mu.Lock()
	maxInFlight := rw.maxInFlight
	rw.mu.Unlock()
	t.Logf("%d rollouts started in %s; most in flight at once %d, most started within a minute %d",
		total, time.Since(recommended).Round(time.Second), maxInFlight, most)
	assert.LessOrEqual(t, maxInFlight, 2, "never more in flight than surgeMaxInFlight")
	assert.Equal(t, 2, maxInFlight, "the budget is used")
	assert.LessOrEqual(t, most, 6, "never more started within a minute than surgeMaxPerMinute")
	// The seventh start may find the sixth still rolling (two in flight): the rollouts started
	// complete within their time, each with no capacity gap.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		list, err := cp.Client.AppsV1().Deployments(b.ns).List(b.ctx, metav1.ListOptions{})
		require.NoError(c, err)
		completed := 0
		for i := range list.Items {
			if st, _ := surge.ReadState(&list.Items[i]); st.Phase == surge.PhaseCompleted {
				completed++
				assert.Zero(c, st.Gap, "%s: no capacity gap", list.Items[i].Name)
			}
		}
		assert.GreaterOrEqual(c, completed, 6, "the rollouts started complete")
	}, time.Minute, 500*time.Millisecond)
}
