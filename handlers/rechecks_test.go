package handlers_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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
	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
)

// gets records when the fixture's pods are read (each re-check starts with a read).
func gets(f *fixture) <-chan string {
	ch := make(chan string, 100)
	f.client.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ch <- a.(k8stesting.GetAction).GetName()
		return false, nil, nil
	})
	return ch
}

func requireRead(t *testing.T, ch <-chan string, name string) {
	t.Helper()
	select {
	case got := <-ch:
		require.Equal(t, name, got)
	case <-time.After(waitFor):
		require.FailNow(t, "no re-check read "+name)
	}
}

func requireNoRead(t *testing.T, ch <-chan string) {
	t.Helper()
	select {
	case got := <-ch:
		require.FailNow(t, "unexpected re-check of "+got)
	case <-time.After(50 * time.Millisecond):
	}
}

func keyOf(p *corev1.Pod) handlers.PodKey {
	return handlers.PodKey{Namespace: p.Namespace, Name: p.Name, UID: p.UID}
}

// A later request never postpones an earlier re-check; an earlier one brings it forward.
func TestRechecksKeepTheEarliest(t *testing.T) {
	tests := []struct {
		name        string
		first, then time.Duration
		want        time.Duration
	}{
		{"a later request does not postpone", 10 * time.Second, 20 * time.Second, 10 * time.Second},
		{"an earlier request brings it forward", 20 * time.Second, 10 * time.Second, 10 * time.Second},
		{"the same time twice", 10 * time.Second, 10 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newPod(ours, managed)
			f := newFixture(t, false, pod.DeepCopy())
			read := gets(f)
			f.rec.Rechecks.Schedule(keyOf(pod), now.Add(tt.first))
			f.rec.Rechecks.Schedule(keyOf(pod), now.Add(tt.then))
			assert.Equal(t, 1, f.rec.Rechecks.Len(), "one re-check per pod")

			f.clock.Step(tt.want - time.Millisecond)
			requireNoRead(t, read)
			f.clock.Step(time.Millisecond)
			requireRead(t, read, pod.Name)
			require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 0 }, waitFor, tick)
			f.clock.Step(time.Hour)
			requireNoRead(t, read)
		})
	}
}

func TestRechecksCancel(t *testing.T) {
	pod := newPod(ours, managed)
	f := newFixture(t, false, pod.DeepCopy())
	read := gets(f)
	f.rec.Rechecks.Schedule(keyOf(pod), now.Add(time.Second))
	f.rec.Forget(pod.UID)
	assert.Zero(t, f.rec.Rechecks.Len())
	f.clock.Step(time.Minute)
	requireNoRead(t, read)
}

// A failed re-check is retried with the rate limiter's backoff (2 s, then 4 s), and a
// success forgets the backoff: the next failure waits 2 s again.
func TestRechecksRetryWithBackoff(t *testing.T) {
	pod := newPod(ours, managed)
	f := newFixture(t, false, pod.DeepCopy())
	var mu sync.Mutex
	fail := 2
	read := make(chan struct{}, 10)
	f.client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		read <- struct{}{}
		if fail > 0 {
			fail--
			return true, nil, apierrors.NewInternalError(errors.New("etcd down"))
		}
		return false, nil, nil
	})
	waitRead := func(msg string) {
		t.Helper()
		select {
		case <-read:
		case <-time.After(waitFor):
			require.FailNow(t, msg)
		}
	}
	noRead := func(msg string) {
		t.Helper()
		select {
		case <-read:
			require.FailNow(t, msg)
		case <-time.After(50 * time.Millisecond):
		}
	}
	f.rec.Rechecks.Schedule(keyOf(pod), now)
	f.clock.Step(0)
	waitRead("first try")
	require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 1 }, waitFor, tick, "the failed re-check is pending again")

	f.clock.Step(2*time.Second - time.Millisecond)
	noRead("not before the first backoff")
	f.clock.Step(time.Millisecond)
	waitRead("after 2 s")
	require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 1 }, waitFor, tick, "failed again: pending")

	f.clock.Step(4*time.Second - time.Millisecond)
	noRead("the backoff doubled")
	f.clock.Step(time.Millisecond)
	waitRead("after 4 s more: this one succeeds")
	require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 0 }, waitFor, tick)

	// Forgotten on success: a new failure starts again at 2 s.
	mu.Lock()
	fail = 1
	mu.Unlock()
	f.rec.Rechecks.Schedule(keyOf(pod), f.clock.Now())
	f.clock.Step(0)
	waitRead("the new re-check")
	require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 1 }, waitFor, tick)
	f.clock.Step(2*time.Second - time.Millisecond)
	noRead("not before 2 s")
	f.clock.Step(time.Millisecond)
	waitRead("retried after 2 s again")
}

// Run owns the lifecycle: when its ctx ends it stops the re-checks and returns.
func TestRunStopsWithItsContext(t *testing.T) {
	pod := newPod(ours, managed)
	f := newFixture(t, false)
	rec := handlers.NewReconciler(handlers.Deps{Client: f.client, Clock: f.clock, Log: discard}, f.rec.Config)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rec.Run(ctx, 2); close(done) }()
	rec.Rechecks.Schedule(keyOf(pod), now.Add(time.Minute))
	require.Equal(t, 1, rec.Rechecks.Len())
	cancel()
	select {
	case <-done:
	case <-time.After(waitFor):
		require.FailNow(t, "Run did not return after its ctx ended")
	}
	assert.Zero(t, rec.Rechecks.Len(), "pending re-checks are dropped")
	rec.Rechecks.Schedule(keyOf(pod), now)
	assert.Zero(t, rec.Rechecks.Len(), "nothing is scheduled after shutdown")
}

// Run sweeps at once and then every SweepInterval.
func TestRunSweeps(t *testing.T) {
	f := newFixture(t, false, newPod(named("a"), managed))
	cfg := f.rec.Config
	cfg.SweepInterval = time.Minute
	rec := handlers.NewReconciler(handlers.Deps{Client: f.client, Clock: f.clock, Log: discard}, cfg)
	lists := make(chan struct{}, 10)
	f.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists <- struct{}{}
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go runWithSweeps(ctx, rec, sweeper(rec), done)
	t.Cleanup(func() { cancel(); <-done })

	next := func(msg string) {
		t.Helper()
		select {
		case <-lists:
		case <-time.After(waitFor):
			require.FailNow(t, msg)
		}
	}
	next("a sweep at start")
	require.Eventually(t, func() bool { return len(livePod(t, f.client, "a").Finalizers) == 1 }, waitFor, tick)
	// The clock goes on a second at a time until the next sweep: its timer may be made after
	// any step (HasWaiters cannot tell it from the re-check queues' timers on the same clock).
	require.Eventually(t, func() bool {
		select {
		case <-lists:
			return true
		default:
			f.clock.Step(time.Second)
			return false
		}
	}, waitFor, tick, "a sweep after the interval")
	assert.GreaterOrEqual(t, f.clock.Since(now), time.Minute, "not before the interval")
}

// A waiting drain is looked at again when its re-check is due: the pod is read and, once its
// containers have stopped, the finalizer is removed.
func TestRecheckRemovesFinalizerAtGraceEnd(t *testing.T) {
	s10 := now.Add(-10 * time.Second).Truncate(time.Second)
	pod := newPod(ours, managed, deleting, started(s10))
	f := newFixture(t, false, pod.DeepCopy())

	out, err := f.rec.ReconcileLive(context.Background(), pod)
	require.NoError(t, err)
	require.Equal(t, drain.Wait, out.Decision.Action)
	require.Equal(t, up(s10).Add(30*time.Second), out.Decision.RecheckAt)
	require.Equal(t, 1, f.rec.Rechecks.Len())
	require.Equal(t, []string{}, testutil.Verbs(f.client))

	updateLive(t, f.client, pod.Name, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodSucceeded
		p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated("app", 0)}
	})
	f.clock.Step(out.Decision.RecheckAt.Sub(now) - time.Nanosecond)
	require.Never(t, func() bool { return len(f.client.Actions()) > 0 }, 100*time.Millisecond, tick, "not due yet")

	f.clock.Step(time.Nanosecond)
	require.Eventually(t, func() bool { return len(f.client.Actions()) == 3 }, waitFor, tick)
	assert.Equal(t, []string{"get pods", "patch pods", "create events"}, testutil.Verbs(f.client))
	assert.Empty(t, livePod(t, f.client, pod.Name).Finalizers)
	evs := events(f.client)
	require.Len(t, evs, 1)
	assert.Equal(t, names.EventDrainCompleted, evs[0].Reason)
	require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 0 }, waitFor, tick)
}

// The whole drain driven by the clock: start, wait through the grace period while the
// containers run, wait again for the deadline, time out.
func TestRecheckWaitsThenTimesOut(t *testing.T) {
	pod := newPod(ours, managed, deleting)
	f := newFixture(t, false, pod.DeepCopy())

	out, err := f.rec.Reconcile(context.Background(), pod)
	require.NoError(t, err)
	require.Equal(t, drain.StartDrain, out.Decision.Action)
	require.Equal(t, []string{"get pods", "patch pods", "create events"}, testutil.Verbs(f.client))
	require.Equal(t, 1, f.rec.Rechecks.Len(), "a re-check at the grace end")
	f.client.ClearActions()

	// Grace end: containers still running, wait for the deadline.
	f.clock.SetTime(up(drainStamp).Add(30 * time.Second))
	require.Eventually(t, func() bool { return len(f.client.Actions()) == 1 && f.rec.Rechecks.Len() == 1 }, waitFor, tick)
	assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))
	assert.Equal(t, []string{names.Finalizer}, livePod(t, f.client, pod.Name).Finalizers)
	f.client.ClearActions()

	// Deadline: time out.
	f.clock.SetTime(up(drainStamp).Add(5 * time.Minute))
	require.Eventually(t, func() bool { return len(f.client.Actions()) == 3 }, waitFor, tick)
	assert.Equal(t, []string{"get pods", "patch pods", "create events"}, testutil.Verbs(f.client))
	evs := events(f.client)
	require.Len(t, evs, 1)
	assert.Equal(t, names.EventDrainTimedOut, evs[0].Reason)
	assert.Equal(t, corev1.EventTypeWarning, evs[0].Type)
	assert.Empty(t, livePod(t, f.client, pod.Name).Finalizers)
}

func TestRecheckRetriesAfterReadError(t *testing.T) {
	pod := newPod(ours, managed, deleting, started(s40), ann(names.AnnotationGracePeriod, "60"))
	f := newFixture(t, false, pod.DeepCopy())
	_, err := f.rec.ReconcileLive(context.Background(), pod)
	require.NoError(t, err)
	require.Equal(t, 1, f.rec.Rechecks.Len())

	var gets atomic.Int32
	f.client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if gets.Add(1) == 1 {
			return true, nil, apierrors.NewInternalError(errors.New("etcd down"))
		}
		return false, nil, nil
	})
	updateLive(t, f.client, pod.Name, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })

	f.clock.SetTime(up(s40).Add(60 * time.Second))
	require.Eventually(t, func() bool { return len(f.client.Actions()) == 1 && f.rec.Rechecks.Len() == 1 }, waitFor, tick,
		"a failed re-check is scheduled again")
	assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))

	f.clock.Step(2 * time.Second)
	require.Eventually(t, func() bool { return len(f.client.Actions()) == 4 }, waitFor, tick)
	assert.Equal(t, []string{"get pods", "get pods", "patch pods", "create events"}, testutil.Verbs(f.client))
	assert.Empty(t, livePod(t, f.client, pod.Name).Finalizers)
}

func TestRecheckOfAPodThatIsGoneOrReplaced(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, c *fake.Clientset)
	}{
		{"gone", func(t *testing.T, c *fake.Clientset) {
			require.NoError(t, c.Tracker().Delete(podsGVR, "default", "web-1"))
		}},
		{"replaced", func(t *testing.T, c *fake.Clientset) {
			require.NoError(t, c.Tracker().Delete(podsGVR, "default", "web-1"))
			// A new pod of the same name that would get a finalizer if it were reconciled here.
			require.NoError(t, c.Tracker().Add(newPod(managed, func(p *corev1.Pod) { p.UID = "uid-2" })))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newPod(ours, managed, deleting, started(now))
			f := newFixture(t, false, pod.DeepCopy())
			_, err := f.rec.ReconcileLive(context.Background(), pod)
			require.NoError(t, err)
			require.Equal(t, 1, f.rec.Rechecks.Len())
			tt.change(t, f.client)

			// Make the re-check observable: it reads the pod, then must not write.
			read := make(chan struct{})
			var once sync.Once
			f.client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				once.Do(func() { close(read) })
				return false, nil, nil
			})
			f.clock.Step(time.Hour)
			select {
			case <-read:
			case <-time.After(waitFor):
				require.FailNow(t, "the re-check did not read the pod")
			}
			require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 0 }, waitFor, tick)
			// The pod is re-checked once; no write may follow the read. A write would be
			// recorded before a second Reconcile could finish, so check the actions settle.
			require.Never(t, func() bool { return len(f.client.Actions()) > 1 }, 100*time.Millisecond, tick)
			assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))
		})
	}
}
