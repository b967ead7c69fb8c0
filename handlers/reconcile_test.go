package handlers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"function/handlers"
	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

type fixture struct {
	client *fake.Clientset
	clock  *clocktesting.FakeClock
	rec    *handlers.Reconciler
	surge  *handlers.SurgeController
}

// newFixture is a Reconciler on a fake clientset holding objs, driven by a fake clock at now.
func newFixture(t *testing.T, dryRun bool, objs ...runtime.Object) *fixture {
	t.Helper()
	c := fake.NewClientset(objs...)
	fc := clocktesting.NewFakeClock(now)
	cfg := bareConfig()
	cfg.SweepInterval = 0 // no sweeps: these tests count every API call (sweep_test.go covers them)
	r := handlers.NewReconciler(handlers.Deps{Client: c, Dynamic: testutil.Dynamic(c, nil), DryRun: dryRun, Clock: fc, Log: discard,
		Events: handlers.APIEventRecorder{Client: c, Now: fc.Now}}, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	sc := handlers.NewSurgeController(r.Deps, r.CurrentConfig)
	go func() {
		var wg sync.WaitGroup
		wg.Go(func() { sc.Run(ctx) })
		r.Run(ctx, 1)
		wg.Wait()
		close(stopped)
	}()
	t.Cleanup(func() { cancel(); <-stopped })
	return &fixture{client: c, clock: fc, rec: r, surge: sc}
}

// events returns the core/v1 Events created.
func events(c *fake.Clientset) []*corev1.Event {
	var out []*corev1.Event
	for _, a := range c.Actions() {
		if ca, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "events" {
			out = append(out, ca.GetObject().(*corev1.Event))
		}
	}
	return out
}

func livePod(t *testing.T, c *fake.Clientset, name string) *corev1.Pod {
	t.Helper()
	obj, err := c.Tracker().Get(podsGVR, "default", name)
	require.NoError(t, err)
	return obj.(*corev1.Pod)
}

// updateLive changes the stored pod without recording an API action.
func updateLive(t *testing.T, c *fake.Clientset, name string, change func(*corev1.Pod)) {
	t.Helper()
	p := livePod(t, c, name).DeepCopy()
	change(p)
	require.NoError(t, c.Tracker().Update(podsGVR, p, "default"))
}

// failPatches makes the first n pod patches fail with err.
func failPatches(c *fake.Clientset, n int32, err error) {
	var calls atomic.Int32
	c.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) > n {
			return false, nil, nil
		}
		return true, nil, err
	})
}

func conflict() error {
	return apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "web-1", errors.New("the object has been modified"))
}

// invalid is what the API server answers a failed JSON patch test or a late finalizer (422).
func invalid() error {
	return apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "web-1", field.ErrorList{
		field.Forbidden(field.NewPath("metadata", "finalizers"), "no new finalizers can be added if the object is being deleted"),
	})
}

func TestReconcileActions(t *testing.T) {
	type event struct{ typ, reason, msg string }
	tests := []struct {
		name       string
		pod        *corev1.Pod
		wantAction drain.Action
		wantReason string
		wantVerbs  []string
		wantEvent  *event
		wantTimers int
		checkLive  func(t *testing.T, p *corev1.Pod)
		live       bool // the pod was read from the API server (ReconcileLive), not an event's copy
	}{
		{
			name: "add finalizer", pod: newPod(managed),
			wantAction: drain.AddFinalizer, wantVerbs: []string{"get pods", "patch pods"},
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
		},
		{
			name: "start drain", pod: newPod(ours, managed, deleting),
			wantAction: drain.StartDrain, wantVerbs: []string{"get pods", "patch pods", "create events"},
			wantEvent:  &event{corev1.EventTypeNormal, names.EventDrainStarted, "by " + stamp(drainStamp.Add(5*time.Minute))},
			wantTimers: 1,
			checkLive: func(t *testing.T, p *corev1.Pod) {
				assert.Equal(t, stamp(drainStamp), p.Annotations[names.AnnotationDrainStarted])
				assert.Equal(t, stamp(drainStamp.Add(5*time.Minute)), p.Annotations[names.AnnotationDrainDeadline])
			},
		},
		{
			name: "start drain with an ignored override mentions it", pod: newPod(ours, managed, deleting, ann(names.AnnotationGracePeriod, "soon")),
			wantAction: drain.StartDrain, wantVerbs: []string{"get pods", "patch pods", "create events"},
			wantEvent:  &event{corev1.EventTypeNormal, names.EventDrainStarted, `invalid vpagracefuldrain.dev/grace-period-seconds "soon"`},
			wantTimers: 1,
		},
		{
			// An event's copy never creates a re-check (it may only bring one forward)...
			name: "wait", pod: newPod(ours, managed, deleting, started(now.Add(-10*time.Second))),
			wantAction: drain.Wait, wantVerbs: []string{}, wantTimers: 0,
		},
		{
			// ...a pod read live does.
			name: "wait, read live", pod: newPod(ours, managed, deleting, started(now.Add(-10*time.Second))), live: true,
			wantAction: drain.Wait, wantVerbs: []string{}, wantTimers: 1,
		},
		{
			name: "drained, read live: no second read", pod: newPod(ours, managed, deleting, started(s40), phase(corev1.PodSucceeded)), live: true,
			wantAction: drain.RemoveFinalizer, wantReason: names.ReasonDrained, wantVerbs: []string{"patch pods", "create events"},
			wantEvent: &event{corev1.EventTypeNormal, names.EventDrainCompleted, "(terminal phase)"},
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
		},
		{
			name: "drained", pod: newPod(ours, managed, deleting, started(s40), phase(corev1.PodSucceeded)),
			wantAction: drain.RemoveFinalizer, wantReason: names.ReasonDrained, wantVerbs: []string{"get pods", "patch pods", "create events"},
			wantEvent: &event{corev1.EventTypeNormal, names.EventDrainCompleted, "(terminal phase)"},
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
		},
		{
			name: "timeout", pod: newPod(finalizers("example.com/a", names.Finalizer), managed, deleting, started(now.Add(-6*time.Minute))),
			wantAction: drain.RemoveFinalizer, wantReason: names.ReasonTimeout, wantVerbs: []string{"get pods", "patch pods", "create events"},
			wantEvent: &event{corev1.EventTypeWarning, names.EventDrainTimedOut, "timed out"},
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{"example.com/a"}, p.Finalizers) },
		},
		{
			name: "unmanaged", pod: newPod(ours),
			wantAction: drain.RemoveFinalizer, wantReason: names.ReasonUnmanaged, wantVerbs: []string{"get pods", "patch pods", "create events"},
			wantEvent: &event{corev1.EventTypeNormal, names.EventFinalizerRemoved, "no longer managed"},
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
		},
		{
			name: "not managed", pod: newPod(),
			wantAction: drain.None, wantVerbs: []string{},
		},
		{
			name: "deleting without finalizer", pod: newPod(managed, deleting),
			wantAction: drain.None, wantVerbs: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false, tt.pod.DeepCopy())
			reconcile := f.rec.Reconcile
			if tt.live {
				reconcile = f.rec.ReconcileLive
			}
			out, err := reconcile(context.Background(), tt.pod)
			require.NoError(t, err)
			assert.Equal(t, tt.wantAction, out.Decision.Action)
			if tt.wantReason != "" {
				assert.Equal(t, tt.wantReason, out.Decision.Reason)
			}
			assert.Equal(t, tt.wantAction.Writes(), out.Applied)
			assert.False(t, out.DryRun)
			assert.Equal(t, now, out.At)
			if tt.live || !tt.wantAction.Writes() {
				assert.Same(t, tt.pod, out.Pod)
			} else {
				assert.Equal(t, tt.pod, out.Pod, "decided on the pod read live (equal here), not the event's copy")
				assert.NotSame(t, tt.pod, out.Pod)
			}
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
			assert.Equal(t, tt.wantTimers, f.rec.Rechecks.Len())

			if tt.wantAction.Writes() {
				patch, ok := f.client.Actions()[slices.Index(tt.wantVerbs, "patch pods")].(k8stesting.PatchActionImpl)
				require.True(t, ok)
				assert.Equal(t, types.JSONPatchType, patch.GetPatchType())
				assert.Equal(t, tt.pod.Name, patch.GetName())
				assert.Equal(t, "default", patch.GetNamespace())
				assert.Equal(t, names.Component, patch.PatchOptions.FieldManager)
				want, err := drain.Patch(tt.pod, drain.Decide(tt.pod, bareConfig(), now))
				require.NoError(t, err)
				assert.JSONEq(t, string(want), string(patch.GetPatch()))
			}
			evs := events(f.client)
			if tt.wantEvent == nil {
				assert.Empty(t, evs)
			} else {
				require.Len(t, evs, 1)
				assert.Equal(t, tt.wantEvent.typ, evs[0].Type)
				assert.Equal(t, tt.wantEvent.reason, evs[0].Reason)
				assert.Contains(t, evs[0].Message, tt.wantEvent.msg)
				assert.Contains(t, evs[0].Message, names.Finalizer)
				assert.Equal(t, tt.pod.UID, evs[0].InvolvedObject.UID)
			}
			if tt.checkLive != nil {
				tt.checkLive(t, livePod(t, f.client, tt.pod.Name))
			}
		})
	}
}

// Dry-run against a cluster adds and stamps nothing, and never holds a pod: a deleting pod
// with the finalizer is released at once (one guarded patch and an Event), whatever its drain.
func TestReconcileDryRun(t *testing.T) {
	tests := []struct {
		name       string
		pod        *corev1.Pod
		wantAction drain.Action
		wantReason string
		wantVerbs  []string
	}{
		{"add finalizer: not written", newPod(managed), drain.AddFinalizer, "managed by", []string{}},
		{"unmanaged, not deleting: not written", newPod(ours), drain.RemoveFinalizer, names.ReasonUnmanaged, []string{}},
		{"nothing to do", newPod(ours, managed), drain.None, "finalizer in place", []string{}},
		{"deleting, drain not started: released", newPod(ours, managed, deleting), drain.RemoveFinalizer, names.ReasonDryRun, []string{"get pods", "patch pods", "create events"}},
		{"deleting, in the grace period: released", newPod(ours, managed, deleting, started(now.Add(-10*time.Second))), drain.RemoveFinalizer, names.ReasonDryRun, []string{"get pods", "patch pods", "create events"}},
		{"deleting, drained: released", newPod(ours, managed, deleting, started(s40), graceZero), drain.RemoveFinalizer, names.ReasonDryRun, []string{"get pods", "patch pods", "create events"}},
		{"deleting, unmanaged: released", newPod(ours, deleting), drain.RemoveFinalizer, names.ReasonDryRun, []string{"get pods", "patch pods", "create events"}},
		{"deleting without our finalizer: nothing", newPod(managed, deleting, finalizers("example.com/a")), drain.None, "deleting without our finalizer", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true, tt.pod.DeepCopy())
			out, err := f.rec.Reconcile(context.Background(), tt.pod)
			require.NoError(t, err)
			assert.Equal(t, tt.wantAction, out.Decision.Action)
			assert.Contains(t, out.Decision.Reason, tt.wantReason)
			assert.Equal(t, tt.wantAction.Writes(), out.Applied, "applied means: written, or would have been")
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
			assert.Zero(t, f.rec.Rechecks.Len(), "a dry-run schedules no re-check")
			live := livePod(t, f.client, tt.pod.Name)
			if tt.wantReason == names.ReasonDryRun {
				assert.False(t, out.DryRun, "the release was written")
				assert.NotContains(t, live.Finalizers, names.Finalizer)
				require.Len(t, events(f.client), 1)
				assert.Contains(t, events(f.client)[0].Message, "dry-run mode, which never holds a pod")
			} else {
				assert.True(t, out.DryRun)
				assert.Equal(t, tt.pod, live, "the stored pod is unchanged")
			}
		})
	}
}

func TestReconcilePatchErrors(t *testing.T) {
	t.Run("pod gone: an event about it costs one read, no write", func(t *testing.T) {
		f := newFixture(t, false)
		out, err := f.rec.Reconcile(context.Background(), newPod(managed))
		require.NoError(t, err)
		assert.Equal(t, drain.None, out.Decision.Action)
		assert.Equal(t, "pod not found", out.Decision.Reason)
		assert.Equal(t, -1, out.Decision.FinalizerIndex)
		assert.False(t, out.Applied)
		assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))
	})
	t.Run("pod gone between the read and the patch: NotFound is nothing to do", func(t *testing.T) {
		pod := newPod(managed)
		f := newFixture(t, false)
		out, err := f.rec.ReconcileLive(context.Background(), pod)
		require.NoError(t, err)
		assert.Equal(t, drain.None, out.Decision.Action)
		assert.Equal(t, "pod not found", out.Decision.Reason)
		assert.False(t, out.Applied)
		assert.Equal(t, []string{"patch pods"}, testutil.Verbs(f.client))
	})
	t.Run("pod gone: an event does not drop its pending re-check (the re-check's read does)", func(t *testing.T) {
		waiting := newPod(ours, managed, deleting, started(now.Add(-10*time.Second)))
		f := newFixture(t, false, waiting.DeepCopy())
		_, err := f.rec.ReconcileLive(context.Background(), waiting)
		require.NoError(t, err)
		require.Equal(t, 1, f.rec.Rechecks.Len())
		require.NoError(t, f.client.Tracker().Delete(podsGVR, "default", waiting.Name))

		out, err := f.rec.Reconcile(context.Background(), newPod(ours, managed, deleting, started(now.Add(-10*time.Second)), graceZero, ann(names.AnnotationGracePeriod, "0")))
		require.NoError(t, err)
		assert.Equal(t, drain.None, out.Decision.Action)
		assert.Equal(t, 1, f.rec.Rechecks.Len(), "an event (it may be forged) never cancels a re-check")
		assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))

		// The re-check's own read finds the pod gone and forgets it.
		f.clock.SetTime(now.Add(30 * time.Second))
		require.Eventually(t, func() bool { return f.rec.Rechecks.Len() == 0 && len(f.client.Actions()) == 2 }, waitFor, tick)
		assert.Equal(t, []string{"get pods", "get pods"}, testutil.Verbs(f.client))
	})
	// The stamp can never be written (an admission policy: 403; annotations over the size
	// limit: 422): the drain goes on without it, timed from API-server times, and its re-check
	// is scheduled, so it still ends.
	for _, tt := range []struct {
		name    string
		refusal error
		verbs   []string
	}{
		{"403 from an admission policy", apierrors.NewForbidden(podsGVR.GroupResource(), "web-1", errors.New("ValidatingAdmissionPolicy 'no-unknown-annotations' denied request")),
			[]string{"get pods", "patch pods"}},
		{"422 annotations too long, after two re-reads (a 422 may also be a guard)", apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "web-1", field.ErrorList{field.TooLong(field.NewPath("metadata", "annotations"), "", 262144)}),
			[]string{"get pods", "patch pods", "get pods", "patch pods", "get pods", "patch pods"}},
	} {
		refusal := tt.refusal
		t.Run("stamp refused for good: "+tt.name, func(t *testing.T) {
			pod := newPod(ours, managed, deleting)
			f := newFixture(t, false, pod.DeepCopy())
			failPatches(f.client, 10, refusal)
			out, err := f.rec.Reconcile(context.Background(), pod)
			require.NoError(t, err, "not an error for the sender to retry")
			assert.Equal(t, drain.Wait, out.Decision.Action)
			assert.False(t, out.Applied)
			assert.Equal(t, drain.StartDeletion, out.Decision.StartedFrom)
			assert.True(t, up(drainStamp).Equal(out.Decision.Started))
			assert.Equal(t, 1, f.rec.Rechecks.Len(), "the re-check at the grace end is scheduled")
			assert.Equal(t, tt.verbs, testutil.Verbs(f.client))
		})
	}
	t.Run("server error is returned, not retried", func(t *testing.T) {
		f := newFixture(t, false, newPod(managed))
		failPatches(f.client, 1, apierrors.NewInternalError(errors.New("etcd down")))
		out, err := f.rec.Reconcile(context.Background(), newPod(managed))
		require.Error(t, err)
		assert.True(t, apierrors.IsInternalError(err), "the API error is wrapped")
		assert.Contains(t, err.Error(), "patching pod default/web-1 (add-finalizer)")
		assert.False(t, out.Applied)
		assert.Equal(t, []string{"get pods", "patch pods"}, testutil.Verbs(f.client))
	})
}

func TestReconcileGuardFailure(t *testing.T) {
	tests := []struct {
		name       string
		event      *corev1.Pod // the pod as the event showed it, and as the first read shows it
		live       *corev1.Pod // the pod in the cluster once the first patch failed (nil: gone)
		failures   int32
		err        error
		wantVerbs  []string
		wantAction drain.Action
		wantApply  bool
		wantErr    string
		wantTimers int
		checkLive  func(t *testing.T, p *corev1.Pod)
		// readDiffers: the cluster holds live from the start (the event was stale or forged)
		readDiffers bool
	}{
		{
			name:  "409 once, live pod still needs the finalizer",
			event: newPod(managed), live: newPod(managed, func(p *corev1.Pod) { p.ResourceVersion = "101" }),
			failures: 1, err: conflict(),
			wantVerbs: []string{"get pods", "patch pods", "get pods", "patch pods"}, wantAction: drain.AddFinalizer, wantApply: true,
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
		},
		{
			name:  "422 once, live pod still needs the finalizer",
			event: newPod(managed), live: newPod(managed),
			failures: 1, err: invalid(),
			wantVerbs: []string{"get pods", "patch pods", "get pods", "patch pods"}, wantAction: drain.AddFinalizer, wantApply: true,
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
		},
		{
			name:  "stale event: live pod already has the finalizer",
			event: newPod(managed), live: newPod(managed, ours),
			failures: 1, err: invalid(),
			wantVerbs: []string{"get pods", "patch pods", "get pods"}, wantAction: drain.None,
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
		},
		{
			name:  "stale event: another replica already started the drain",
			event: newPod(ours, managed, deleting), live: newPod(ours, managed, deleting, started(now.Add(-5*time.Second))),
			failures: 1, err: invalid(),
			wantVerbs: []string{"get pods", "patch pods", "get pods"}, wantAction: drain.Wait, wantTimers: 1,
		},
		{
			name:  "the first read already differs from the event: decided on it, nothing written",
			event: newPod(managed), live: newPod(managed, ours), readDiffers: true,
			wantVerbs: []string{"get pods"}, wantAction: drain.None,
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
		},
		{
			name:  "the event names a pod that is gone: one read, nothing written",
			event: newPod(managed), live: nil, readDiffers: true,
			wantVerbs: []string{"get pods"}, wantAction: drain.None,
		},
		{
			name:  "422: live pod started deleting, too late for a finalizer",
			event: newPod(managed), live: newPod(managed, deleting),
			failures: 1, err: invalid(),
			wantVerbs: []string{"get pods", "patch pods", "get pods"}, wantAction: drain.None,
		},
		{
			name:  "guard fails twice, the third decision goes through",
			event: newPod(managed), live: newPod(managed),
			failures: 2, err: conflict(),
			wantVerbs: []string{"get pods", "patch pods", "get pods", "patch pods", "get pods", "patch pods"}, wantAction: drain.AddFinalizer, wantApply: true,
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
		},
		{
			name:  "guard fails three times: a concurrent writer, a re-check follows",
			event: newPod(managed), live: newPod(managed),
			failures: 3, err: conflict(),
			wantVerbs: []string{"get pods", "patch pods", "get pods", "patch pods", "get pods", "patch pods"}, wantAction: drain.AddFinalizer,
			wantErr:    "pod default/web-1: the pod kept changing while the decision was applied (a concurrent writer) applying add-finalizer",
			wantTimers: 1,
			checkLive:  func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
		},
		{
			name:  "live pod replaced by one of the same name",
			event: newPod(managed), live: newPod(managed, func(p *corev1.Pod) { p.UID = "uid-2" }),
			failures: 1, err: conflict(),
			wantVerbs: []string{"get pods", "patch pods", "get pods"}, wantAction: drain.None,
			checkLive: func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
		},
		{
			name:  "live pod gone",
			event: newPod(managed), live: nil,
			failures: 1, err: conflict(),
			wantVerbs: []string{"get pods", "patch pods", "get pods"}, wantAction: drain.None,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.event
			if tt.readDiffers {
				first = tt.live
			}
			var objs []runtime.Object
			if first != nil {
				objs = append(objs, first.DeepCopy())
			}
			f := newFixture(t, false, objs...)
			// Each failed patch leaves the cluster holding tt.live: what another writer did.
			var calls atomic.Int32
			f.client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				if calls.Add(1) > tt.failures {
					return false, nil, nil
				}
				if tt.live == nil {
					_ = f.client.Tracker().Delete(podsGVR, "default", tt.event.Name)
				} else {
					require.NoError(t, f.client.Tracker().Update(podsGVR, tt.live.DeepCopy(), "default"))
				}
				return true, nil, tt.err
			})

			out, err := f.rec.Reconcile(context.Background(), tt.event)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.ErrorIs(t, err, handlers.ErrConcurrentWriter)
				assert.True(t, apierrors.IsConflict(err), "the API error is wrapped")
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
			assert.Equal(t, tt.wantAction, out.Decision.Action, "reason %q", out.Decision.Reason)
			assert.Equal(t, tt.wantApply, out.Applied)
			assert.Equal(t, tt.wantTimers, f.rec.Rechecks.Len())
			require.NotNil(t, out.Pod)
			if tt.live != nil && tt.live.UID == tt.event.UID && len(tt.wantVerbs) > 1 {
				assert.Equal(t, tt.live.Finalizers, out.Pod.Finalizers, "the final decision is made on the live pod")
			}
			if tt.checkLive != nil {
				tt.checkLive(t, livePod(t, f.client, tt.event.Name))
			}
		})
	}
}

func TestReconcileRef(t *testing.T) {
	ctx := context.Background()
	t.Run("reads, then patches", func(t *testing.T) {
		f := newFixture(t, false, newPod(managed))
		out, err := f.rec.ReconcileRef(ctx, "default", "web-1")
		require.NoError(t, err)
		assert.Equal(t, drain.AddFinalizer, out.Decision.Action)
		assert.True(t, out.Applied)
		require.NotNil(t, out.Pod)
		assert.Equal(t, types.UID("uid-1"), out.Pod.UID)
		assert.Equal(t, []string{"get pods", "patch pods"}, testutil.Verbs(f.client))
		assert.Equal(t, []string{names.Finalizer}, livePod(t, f.client, "web-1").Finalizers)
	})
	t.Run("nothing to do: one get", func(t *testing.T) {
		f := newFixture(t, false, newPod(managed, ours))
		out, err := f.rec.ReconcileRef(ctx, "default", "web-1")
		require.NoError(t, err)
		assert.Equal(t, drain.None, out.Decision.Action)
		assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))
	})
	t.Run("404: one get, nothing else, no error", func(t *testing.T) {
		f := newFixture(t, false)
		out, err := f.rec.ReconcileRef(ctx, "default", "web-1")
		require.NoError(t, err)
		assert.Nil(t, out.Pod)
		assert.Equal(t, drain.None, out.Decision.Action)
		assert.False(t, out.Applied)
		assert.Equal(t, now, out.At)
		assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))
	})
	t.Run("read error", func(t *testing.T) {
		f := newFixture(t, false, newPod(managed))
		f.client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewServiceUnavailable("apiserver overloaded")
		})
		_, err := f.rec.ReconcileRef(ctx, "default", "web-1")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "reading pod default/web-1")
		assert.True(t, apierrors.IsServiceUnavailable(err))
		assert.Equal(t, []string{"get pods"}, testutil.Verbs(f.client))
	})
	t.Run("nil client: ErrNoCluster", func(t *testing.T) {
		r := handlers.NewReconciler(handlers.NewDeps(nil, false, discard), bareConfig())
		t.Cleanup(r.Stop)
		out, err := r.ReconcileRef(ctx, "default", "web-1")
		require.ErrorIs(t, err, handlers.ErrNoCluster)
		assert.Nil(t, out.Pod)
	})
}

func TestReconcileEventRecordingFailureIsNotAnError(t *testing.T) {
	pod := newPod(ours, managed, deleting, started(s40), phase(corev1.PodFailed))
	f := newFixture(t, false, pod.DeepCopy())
	f.client.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("no RBAC"))
	})
	out, err := f.rec.Reconcile(context.Background(), pod)
	require.NoError(t, err)
	assert.True(t, out.Applied)
	assert.Equal(t, []string{"get pods", "patch pods", "create events"}, testutil.Verbs(f.client))
	assert.Empty(t, livePod(t, f.client, pod.Name).Finalizers)
}

func TestReconcileWithoutEventRecorder(t *testing.T) {
	pod := newPod(ours, managed, deleting)
	f := newFixture(t, false, pod.DeepCopy())
	f.rec.Events = nil
	out, err := f.rec.Reconcile(context.Background(), pod)
	require.NoError(t, err)
	assert.True(t, out.Applied)
	assert.Equal(t, []string{"get pods", "patch pods"}, testutil.Verbs(f.client))
}

func TestReconcileForgetAndStop(t *testing.T) {
	waiting := newPod(ours, managed, deleting, started(now.Add(-10*time.Second)))
	f := newFixture(t, false, waiting.DeepCopy())
	_, err := f.rec.ReconcileLive(context.Background(), waiting)
	require.NoError(t, err)
	require.Equal(t, 1, f.rec.Rechecks.Len())

	f.rec.Forget(waiting.UID)
	assert.Equal(t, 0, f.rec.Rechecks.Len())

	_, err = f.rec.ReconcileLive(context.Background(), waiting)
	require.NoError(t, err)
	require.Equal(t, 1, f.rec.Rechecks.Len())
	f.rec.Stop()
	assert.Equal(t, 0, f.rec.Rechecks.Len())
	_, err = f.rec.ReconcileLive(context.Background(), waiting)
	require.NoError(t, err)
	assert.Equal(t, 0, f.rec.Rechecks.Len(), "no re-check is scheduled after Stop")
	assert.Equal(t, []string{}, testutil.Verbs(f.client))
}

func TestNewReconciler(t *testing.T) {
	ctx := context.Background()
	t.Run("without a cluster: dry-run, no events", func(t *testing.T) {
		r := handlers.NewReconciler(handlers.NewDeps(nil, false, discard), bareConfig())
		t.Cleanup(r.Stop)
		assert.True(t, r.DryRun)
		assert.Nil(t, r.Events)
		assert.IsType(t, clock.RealClock{}, r.Clock)
		require.NotNil(t, r.Rechecks)

		out, err := r.Reconcile(ctx, newPod(managed))
		require.NoError(t, err)
		assert.True(t, out.Applied)
		assert.True(t, out.DryRun)

		_, err = r.Reconcile(ctx, newPod(ours, managed, deleting, started(time.Now())))
		require.NoError(t, err)
		assert.Equal(t, 0, r.Rechecks.Len(), "no re-check without a cluster to read")
	})
	t.Run("with a cluster", func(t *testing.T) {
		c := fake.NewClientset()
		r := handlers.NewReconciler(handlers.NewDeps(c, false, discard), bareConfig())
		t.Cleanup(r.Stop)
		assert.False(t, r.DryRun)
		rec, ok := r.Events.(handlers.APIEventRecorder)
		require.True(t, ok)
		assert.Same(t, c, rec.Client)
	})
	t.Run("with a cluster, dry-run", func(t *testing.T) {
		r := handlers.NewReconciler(handlers.NewDeps(fake.NewClientset(), true, discard), bareConfig())
		t.Cleanup(r.Stop)
		assert.True(t, r.DryRun)
	})
}

func TestAPIEventRecorder(t *testing.T) {
	c := fake.NewClientset()
	at := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	rec := handlers.APIEventRecorder{Client: c, Now: func() time.Time { return at }}
	pod := newPod(managed)
	require.NoError(t, rec.Record(context.Background(), pod, corev1.EventTypeWarning, names.EventDrainTimedOut, "msg"))

	evs := events(c)
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, "default", ev.Namespace)
	assert.True(t, strings.HasPrefix(ev.GenerateName+ev.Name, "web-1."), "named after the pod: %q/%q", ev.GenerateName, ev.Name)
	assert.Equal(t, corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "default", Name: "web-1", UID: "uid-1", ResourceVersion: "100"}, ev.InvolvedObject)
	assert.Equal(t, corev1.EventTypeWarning, ev.Type)
	assert.Equal(t, names.EventDrainTimedOut, ev.Reason)
	assert.Equal(t, "msg", ev.Message)
	assert.Equal(t, names.Component, ev.Source.Component)
	assert.Equal(t, "vpagracefuldrain.dev/"+names.Component, ev.ReportingController)
	assert.Equal(t, names.Component, ev.ReportingInstance)
	assert.Equal(t, metav1.NewTime(at), ev.FirstTimestamp)
	assert.Equal(t, metav1.NewTime(at), ev.LastTimestamp)
	assert.Equal(t, int32(1), ev.Count)

	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("denied"))
	})
	err := rec.Record(context.Background(), pod, corev1.EventTypeNormal, names.EventDrainStarted, "msg")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "creating event DrainStarted for pod default/web-1")
	assert.True(t, apierrors.IsForbidden(err))
}
