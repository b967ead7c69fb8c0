//go:build integration

// Package integration runs the function's code (handlers.Reconciler) against a real
// kube-apiserver and etcd, so the API server decides what our patches, guards and finalizer
// rules do. Time is a fake clock: the decisions' "now" is stepped, not waited for.
package integration

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/drain"
	"function/names"
	"function/test/cluster"
)

var cp *cluster.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(cluster.ControlPlaneMain(m, &cp))
}

// fixture is one test's namespace, a Reconciler on a counting client and a fake clock.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	cfg   config.Config
	clock *clocktesting.FakeClock
	reqs  *cluster.Requests
	rec   *handlers.Reconciler
}

// functionConfig is the client config of the function's own ServiceAccount
// (ControlPlane.FunctionKubeconfig): the Reconcilers of these tests write as the function
// does, under config/rbac.yaml and config/admission-policy.yaml. The tests' own set-up and
// checks use the admin's cp.Client.
func functionConfig(t *testing.T) *rest.Config {
	t.Helper()
	kubeconfig, err := cp.FunctionKubeconfig()
	require.NoError(t, err)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	return cfg
}

func newFixture(t *testing.T, cfg config.Config) *fixture {
	t.Helper()
	client, dyn, reqs, err := cluster.CountingClients(functionConfig(t))
	require.NoError(t, err)
	clk := clocktesting.NewFakeClock(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	// Re-checks are queued but never run (no Run): each test makes its decisions explicitly,
	// and counts their API calls exactly. Re-checks are tested in e2e.
	rec := handlers.NewReconciler(handlers.Deps{Client: client, Dynamic: dyn, Clock: clk, Log: slog.New(slog.DiscardHandler),
		Events: handlers.APIEventRecorder{Client: client, Now: clk.Now}}, cfg)
	t.Cleanup(func() { rec.Stop(); cancel() })
	return &fixture{t: t, ctx: ctx, ns: cp.Namespace(t, "it"), cfg: cfg, clock: clk, reqs: reqs, rec: rec}
}

func testConfig() config.Config {
	cfg := config.Default()
	cfg.GracePeriod, cfg.DrainTimeout = 5*time.Second, 60*time.Second
	// Bare pods, as the e2e tests' cluster.BarePods.
	cfg.Workloads = map[config.Kind]config.WorkloadOverride{config.KindPod: {Manage: ptr.To(true)}}
	cfg.HoldOn = config.HoldAll
	return cfg
}

func (f *fixture) create(name string, managed bool, finalizers ...string) *corev1.Pod {
	f.t.Helper()
	pod := cluster.PodSpec(f.ns, name, managed)
	pod.Finalizers = finalizers
	pod, err := cp.Client.CoreV1().Pods(f.ns).Create(f.ctx, pod, metav1.CreateOptions{})
	require.NoError(f.t, err)
	pod, err = cluster.MarkRunning(f.ctx, cp.Client, pod)
	require.NoError(f.t, err)
	return pod
}

func (f *fixture) get(name string) *corev1.Pod {
	f.t.Helper()
	pod, err := cp.Client.CoreV1().Pods(f.ns).Get(f.ctx, name, metav1.GetOptions{})
	require.NoError(f.t, err)
	return pod
}

func (f *fixture) reconcile(pod *corev1.Pod) handlers.Outcome {
	f.t.Helper()
	out, err := f.rec.Reconcile(f.ctx, pod)
	require.NoError(f.t, err)
	return out
}

// managedAndEvicted creates a managed pod, lets the function add its finalizer, evicts it
// through the Eviction API and lets the function start the drain. It returns the live pod.
func (f *fixture) managedAndEvicted(name string) *corev1.Pod {
	f.t.Helper()
	out := f.reconcile(f.create(name, true))
	require.Equal(f.t, drain.AddFinalizer, out.Decision.Action)
	require.NoError(f.t, cluster.Evict(f.ctx, cp.Client, f.ns, name, ptr.To[int64](3)))
	evicted := f.get(name)
	require.NotNil(f.t, evicted.DeletionTimestamp, "eviction sets deletionTimestamp")
	out = f.reconcile(evicted)
	require.Equal(f.t, drain.StartDrain, out.Decision.Action)
	require.True(f.t, out.Applied)
	f.reqs.List()
	return f.get(name)
}

func (f *fixture) events(pod *corev1.Pod) []string {
	f.t.Helper()
	list, err := cp.Client.CoreV1().Events(pod.Namespace).List(f.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String(),
	})
	require.NoError(f.t, err)
	var reasons []string
	for _, e := range list.Items {
		reasons = append(reasons, e.Type+"/"+e.Reason)
	}
	return reasons
}

func TestIntegrationAddFinalizerOnceForDuplicatedEvent(t *testing.T) {
	f := newFixture(t, testConfig())
	pod := f.create("web-1", true)
	f.reqs.List()

	out := f.reconcile(pod)
	assert.Equal(t, drain.AddFinalizer, out.Decision.Action)
	assert.True(t, out.Applied)
	assert.Equal(t, []string{"GET pods", "PATCH pods"}, f.reqs.List(), "the write is decided on the live pod")
	assert.Equal(t, []string{names.Finalizer}, f.get("web-1").Finalizers)

	// The same event again: older than the function's own write, it costs nothing.
	out = f.reconcile(pod)
	assert.Equal(t, drain.None, out.Decision.Action)
	assert.Contains(t, out.Decision.Reason, "stale")
	assert.False(t, out.Applied)
	assert.Empty(t, f.reqs.List(), "no request")

	// Another replica, which did not write, reads the live pod and finds nothing to do.
	deps := handlers.NewDeps(f.rec.Client, false, f.rec.Log)
	deps.Dynamic = f.rec.Dynamic
	other := handlers.NewReconciler(deps, f.cfg)
	out, err := other.Reconcile(f.ctx, pod)
	require.NoError(t, err)
	assert.Equal(t, drain.None, out.Decision.Action)
	assert.False(t, out.Applied)
	assert.Equal(t, []string{"GET pods"}, f.reqs.List())
	assert.Equal(t, []string{names.Finalizer}, f.get("web-1").Finalizers, "no second finalizer")
}

func TestIntegrationFinalizerOnDeletingPodIsRefusedOnce(t *testing.T) {
	f := newFixture(t, testConfig())
	pod := f.create("held", true, "example.com/hold")
	require.NoError(t, cp.Client.CoreV1().Pods(f.ns).Delete(f.ctx, "held", metav1.DeleteOptions{}))
	f.reqs.List()

	// The raw patch (guarded on the live resourceVersion, so that only the finalizer rule can
	// refuse it) gets the API server's 422: no new finalizers on a deleting pod.
	d := drain.Decide(pod, f.cfg, f.clock.Now())
	require.Equal(t, drain.AddFinalizer, d.Action)
	current := pod.DeepCopy()
	current.ResourceVersion = f.get("held").ResourceVersion
	f.reqs.List()
	patch, err := drain.Patch(current, d)
	require.NoError(t, err)
	_, err = cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, "held", types.JSONPatchType, patch, metav1.PatchOptions{})
	require.True(t, apierrors.IsInvalid(err), "want 422 Invalid, got %v", err)
	assert.Contains(t, err.Error(), "no new finalizers can be added if the object is being deleted")

	// Reconciling the stale (not yet deleting) pod: one read of the live pod, which is
	// deleting, and no write.
	out := f.reconcile(pod)
	assert.Equal(t, drain.None, out.Decision.Action)
	assert.Equal(t, []string{"GET pods"}, f.reqs.List())
	assert.Equal(t, []string{"example.com/hold"}, f.get("held").Finalizers)
}

func TestIntegrationEvictionDrainsAfterGraceAndStoppedContainers(t *testing.T) {
	f := newFixture(t, testConfig())
	pod := f.managedAndEvicted("web-2")
	started, err := time.Parse(time.RFC3339, pod.Annotations[names.AnnotationDrainStarted])
	require.NoError(t, err)
	deadline, err := time.Parse(time.RFC3339, pod.Annotations[names.AnnotationDrainDeadline])
	require.NoError(t, err)
	assert.Equal(t, 60*time.Second, deadline.Sub(started))
	assert.False(t, started.Before(f.clock.Now().Add(-time.Second)))
	assert.Equal(t, []string{"Normal/DrainStarted"}, f.events(pod))
	hasDisruption := false
	for _, c := range pod.Status.Conditions {
		hasDisruption = hasDisruption || (c.Type == corev1.DisruptionTarget && c.Reason == "EvictionByEvictionAPI")
	}
	assert.True(t, hasDisruption, "the real Eviction API marks the pod")

	// Grace over, containers still running: wait, no write.
	f.clock.SetTime(cluster.EndOfSecond(started).Add(5 * time.Second))
	out := f.reconcile(pod)
	assert.Equal(t, drain.Wait, out.Decision.Action)
	assert.Equal(t, "containers running", out.Decision.Reason)
	assert.Empty(t, f.reqs.List())

	// Containers stopped before the grace period ends: still wait.
	f.clock.SetTime(cluster.EndOfSecond(started).Add(2 * time.Second))
	stopped, err := cluster.MarkStopped(f.ctx, cp.Client, pod)
	require.NoError(t, err)
	out = f.reconcile(stopped)
	assert.Equal(t, drain.Wait, out.Decision.Action)
	assert.Equal(t, "grace period", out.Decision.Reason)
	assert.Equal(t, cluster.EndOfSecond(started).Add(5*time.Second), out.Decision.RecheckAt)

	// Both gates open: the finalizer goes, with a DrainCompleted Event.
	f.clock.SetTime(cluster.EndOfSecond(started).Add(5 * time.Second))
	out = f.reconcile(stopped)
	assert.Equal(t, drain.RemoveFinalizer, out.Decision.Action)
	assert.Equal(t, names.ReasonDrained, out.Decision.Reason)
	assert.Equal(t, []string{"GET pods", "PATCH pods", "POST events"}, f.reqs.List())
	assert.Empty(t, f.get("web-2").Finalizers)
	assert.ElementsMatch(t, []string{"Normal/DrainStarted", "Normal/DrainCompleted"}, f.events(pod))

	// The kubelet's last act removes the pod.
	require.NoError(t, cluster.FinishDeletion(f.ctx, cp.Client, pod))
	_, err = cp.Client.CoreV1().Pods(f.ns).Get(f.ctx, "web-2", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "pod is gone, got %v", err)
}

func TestIntegrationTimeoutReleasesRunningPod(t *testing.T) {
	f := newFixture(t, testConfig())
	pod := f.managedAndEvicted("stuck")
	deadline, err := time.Parse(time.RFC3339, pod.Annotations[names.AnnotationDrainDeadline])
	require.NoError(t, err)

	f.clock.SetTime(cluster.EndOfSecond(deadline).Add(-time.Second))
	assert.Equal(t, drain.Wait, f.reconcile(pod).Decision.Action)

	f.clock.SetTime(cluster.EndOfSecond(deadline)) // the latest moment the whole-second deadline stands for
	out := f.reconcile(pod)
	assert.Equal(t, drain.RemoveFinalizer, out.Decision.Action)
	assert.Equal(t, names.ReasonTimeout, out.Decision.Reason)
	assert.Empty(t, f.get("stuck").Finalizers)
	assert.ElementsMatch(t, []string{"Normal/DrainStarted", "Warning/DrainTimedOut"}, f.events(pod))
}

func TestIntegrationUnmanagedPodLosesFinalizer(t *testing.T) {
	t.Run("annotation removed", func(t *testing.T) {
		f := newFixture(t, testConfig())
		f.reconcile(f.create("web-3", true))
		_, err := cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, "web-3", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"vpa-managed":null}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		out := f.reconcile(f.get("web-3"))
		assert.Equal(t, drain.RemoveFinalizer, out.Decision.Action)
		assert.Equal(t, names.ReasonUnmanaged, out.Decision.Reason)
		assert.Empty(t, f.get("web-3").Finalizers)
	})
	t.Run("namespace excluded while draining", func(t *testing.T) {
		f := newFixture(t, testConfig())
		pod := f.managedAndEvicted("web-4")
		f.rec.Config.Namespaces.Exclude = append(f.rec.Config.Namespaces.Exclude, f.ns)
		out := f.reconcile(pod)
		assert.Equal(t, names.ReasonUnmanaged, out.Decision.Reason)
		assert.Empty(t, f.get("web-4").Finalizers)
	})
}

func TestIntegrationGuardRefusesStaleEvent(t *testing.T) {
	t.Run("finalizer added by another writer in between", func(t *testing.T) {
		f := newFixture(t, testConfig())
		stale := f.create("web-5", true)
		_, err := cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, "web-5", types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":["example.com/other"]}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		f.reqs.List()

		out := f.reconcile(stale)
		assert.Equal(t, drain.AddFinalizer, out.Decision.Action)
		assert.Equal(t, []string{"GET pods", "PATCH pods"}, f.reqs.List(), "decided and guarded on the live pod")
		assert.Equal(t, []string{"example.com/other", names.Finalizer}, f.get("web-5").Finalizers, "the other writer's finalizer survives")
	})
	t.Run("forged stopped containers", func(t *testing.T) {
		f := newFixture(t, testConfig())
		live := f.managedAndEvicted("web-6")
		started, err := time.Parse(time.RFC3339, live.Annotations[names.AnnotationDrainStarted])
		require.NoError(t, err)
		forged := live.DeepCopy()
		forged.Status.Phase = corev1.PodSucceeded
		f.clock.SetTime(started.Add(10 * time.Second))

		d := drain.Decide(forged, f.cfg, f.clock.Now())
		require.Equal(t, names.ReasonDrained, d.Reason)
		patch, err := drain.Patch(forged, d)
		require.NoError(t, err)
		_, err = cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, "web-6", types.JSONPatchType, patch, metav1.PatchOptions{})
		require.True(t, apierrors.IsInvalid(err), "a failed test op is 422 Invalid, got %v", err)
		f.reqs.List()

		out := f.reconcile(forged)
		assert.Equal(t, drain.Wait, out.Decision.Action, "the live pod is still running")
		assert.Equal(t, []string{"GET pods"}, f.reqs.List(), "one read, no write")
		assert.Equal(t, []string{names.Finalizer}, f.get("web-6").Finalizers)
	})
	t.Run("pod replaced by one of the same name", func(t *testing.T) {
		f := newFixture(t, testConfig())
		old := f.create("web-7", true)
		require.NoError(t, cp.Client.CoreV1().Pods(f.ns).Delete(f.ctx, "web-7", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
		require.Eventually(t, func() bool {
			_, err := cp.Client.CoreV1().Pods(f.ns).Get(f.ctx, "web-7", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, 10*time.Second, 20*time.Millisecond)
		f.create("web-7", false)
		f.reqs.List()
		out := f.reconcile(old)
		assert.False(t, out.Applied)
		assert.Equal(t, []string{"GET pods"}, f.reqs.List(), "the live read sees another pod: no write")
		assert.Empty(t, f.get("web-7").Finalizers)
	})
}

func TestIntegrationReferenceMode(t *testing.T) {
	f := newFixture(t, testConfig())
	f.create("web-8", true)
	f.reqs.List()
	out, err := f.rec.ReconcileRef(f.ctx, f.ns, "web-8")
	require.NoError(t, err)
	assert.Equal(t, drain.AddFinalizer, out.Decision.Action)
	assert.Equal(t, []string{"GET pods", "PATCH pods"}, f.reqs.List())
	assert.Equal(t, []string{names.Finalizer}, f.get("web-8").Finalizers)

	out, err = f.rec.ReconcileRef(f.ctx, f.ns, "no-such-pod")
	require.NoError(t, err)
	assert.False(t, out.Applied)
	assert.Equal(t, []string{"GET pods"}, f.reqs.List())
}

func TestIntegrationReleaseAllForUninstall(t *testing.T) {
	f := newFixture(t, testConfig())
	other := cp.Namespace(t, "it-other")
	// Running, evicted and held-by-another-finalizer pods, in two namespaces.
	f.reconcile(f.create("a", true))
	f.reconcile(f.create("b", true, "example.com/keep"))
	f.managedAndEvicted("c")
	f.create("plain", false)
	pod, err := cp.Client.CoreV1().Pods(other).Create(f.ctx, func() *corev1.Pod {
		p := cluster.PodSpec(other, "d", true)
		p.Finalizers = []string{names.Finalizer}
		return p
	}(), metav1.CreateOptions{})
	require.NoError(t, err)

	client, reqs, err := cluster.CountingClient(functionConfig(t))
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	dry := handlers.NewReconciler(handlers.NewDeps(client, true, log), f.cfg)
	listed, err := handlers.NewReleaser(dry).ReleaseAll(f.ctx, f.ns, handlers.ReleaseOptions{})
	require.NoError(t, err)
	assert.Equal(t, handlers.ReleaseResult{Released: []string{f.ns + "/a", f.ns + "/b", f.ns + "/c"}, Listed: 4}, listed)
	assert.Equal(t, []string{"GET pods"}, reqs.List(), "dry-run only lists")

	rec := handlers.NewReconciler(handlers.NewDeps(client, false, log), f.cfg)
	t.Cleanup(rec.Stop)
	released, err := handlers.NewReleaser(rec).ReleaseAll(f.ctx, "", handlers.ReleaseOptions{})
	require.NoError(t, err)
	assert.Zero(t, released.Failed)
	assert.Subset(t, released.Released, []string{f.ns + "/a", f.ns + "/b", f.ns + "/c", other + "/d"})
	for _, name := range []string{"a", "c"} {
		assert.Empty(t, f.get(name).Finalizers, name)
	}
	assert.Equal(t, []string{"example.com/keep"}, f.get("b").Finalizers, "other finalizers stay")
	live, err := cp.Client.CoreV1().Pods(other).Get(f.ctx, "d", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, live.Finalizers)
	assert.Contains(t, f.events(f.get("a")), "Normal/FinalizerRemoved")
	assert.Contains(t, f.events(pod), "Normal/FinalizerRemoved")

	again, err := handlers.NewReleaser(rec).ReleaseAll(f.ctx, f.ns, handlers.ReleaseOptions{})
	require.NoError(t, err)
	assert.Empty(t, again.Released, "nothing left to release")
	assert.Equal(t, 4, again.Listed)
}

// denyPodUpdates makes the API server refuse (403) pod updates in f's namespace (and, when
// objects is set, only of the pods it selects) for which expression is false: an admission
// policy, as a cluster's own might be. The returned func removes it (also done at cleanup).
func (f *fixture) denyPodUpdates(name, expression, message string, objects *metav1.LabelSelector) (remove func()) {
	f.t.Helper()
	fail := admissionv1.Fail
	admission := cp.Client.AdmissionregistrationV1()
	_, err := admission.ValidatingAdmissionPolicies().Create(f.ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionv1.Validation{{Expression: expression, Message: message, Reason: ptr.To(metav1.StatusReasonForbidden)}},
		},
	}, metav1.CreateOptions{})
	require.NoError(f.t, err)
	_, err = admission.ValidatingAdmissionPolicyBindings().Create(f.ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.ns}},
				ObjectSelector:    objects,
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(f.t, err)
	remove = func() {
		ctx := context.Background()
		_ = admission.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = admission.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	}
	f.t.Cleanup(remove)
	return remove
}

// denyDrainStamp makes the API server refuse, in f's namespace, any pod update that carries
// the drain-started annotation (an admission policy that forbids unknown annotations), and
// waits until the policy is enforced.
func (f *fixture) denyDrainStamp() {
	f.t.Helper()
	f.denyPodUpdates("deny-drain-stamp-"+f.ns,
		`!has(object.metadata.annotations) || !('`+names.AnnotationDrainStarted+`' in object.metadata.annotations)`,
		"annotation "+names.AnnotationDrainStarted+" is not allowed here", nil)
	probe := f.create("policy-probe", false)
	patch := []byte(`{"metadata":{"annotations":{"` + names.AnnotationDrainStarted + `":"x"}}}`)
	require.Eventually(f.t, func() bool {
		_, err := cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, probe.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		return apierrors.IsForbidden(err)
	}, 30*time.Second, 100*time.Millisecond, "the admission policy is enforced")
}

// The drain-started stamp is refused for good (403 from an admission policy; 422 for
// annotations over the API server's size limit): the drain is still bounded, timed from the
// eviction time the API server recorded, and the pod is released at that deadline, with no
// stamp ever written.
func TestIntegrationUnwritableStampStillEndsTheDrain(t *testing.T) {
	tests := []struct {
		name    string
		refuse  func(f *fixture, pod *corev1.Pod) *corev1.Pod
		refused []string // the API calls of the refused start-drain
	}{
		{"403 from an admission policy", func(f *fixture, pod *corev1.Pod) *corev1.Pod {
			f.denyDrainStamp()
			return pod
		}, []string{"GET pods", "PATCH pods"}},
		{"422 annotations over the size limit", func(f *fixture, pod *corev1.Pod) *corev1.Pod {
			size := 0
			for k, v := range pod.Annotations {
				size += len(k) + len(v)
			}
			pad := strings.Repeat("x", 256*1024-size-len("pad")-10) // full but for 10 bytes
			p, err := cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, pod.Name, types.MergePatchType,
				[]byte(`{"metadata":{"annotations":{"pad":"`+pad+`"}}}`), metav1.PatchOptions{})
			require.NoError(f.t, err)
			return p
		}, []string{"GET pods", "PATCH pods", "GET pods", "PATCH pods", "GET pods", "PATCH pods"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testConfig())
			out := f.reconcile(f.create("web-3", true))
			require.Equal(t, drain.AddFinalizer, out.Decision.Action)
			tt.refuse(f, f.get("web-3"))
			require.NoError(t, cluster.Evict(f.ctx, cp.Client, f.ns, "web-3", ptr.To[int64](3)))
			evicted := f.get("web-3")
			f.reqs.List()

			out = f.reconcile(evicted)
			assert.Equal(t, drain.Wait, out.Decision.Action, "the refused stamp leaves a bounded wait")
			assert.Equal(t, drain.StartEviction, out.Decision.StartedFrom)
			assert.False(t, out.Applied)
			assert.Equal(t, tt.refused, f.reqs.List(), "refused, not retried")
			assert.NotContains(t, f.get("web-3").Annotations, names.AnnotationDrainStarted)
			var evictedAt time.Time
			for _, c := range evicted.Status.Conditions {
				if c.Type == corev1.DisruptionTarget {
					evictedAt = c.LastTransitionTime.UTC()
				}
			}
			require.False(t, evictedAt.IsZero())
			assert.Equal(t, cluster.EndOfSecond(evictedAt).Add(60*time.Second), out.Decision.Deadline, "timed from the API server's eviction time (the latest moment of its second)")

			f.clock.SetTime(out.Decision.Deadline.Add(-time.Second))
			assert.Equal(t, drain.Wait, f.reconcile(f.get("web-3")).Decision.Action)
			f.reqs.List()
			f.clock.SetTime(out.Decision.Deadline)
			out = f.reconcile(f.get("web-3"))
			assert.Equal(t, drain.RemoveFinalizer, out.Decision.Action)
			assert.Equal(t, names.ReasonTimeout, out.Decision.Reason)
			assert.Equal(t, []string{"GET pods", "PATCH pods", "POST events"}, f.reqs.List())
			assert.Empty(t, f.get("web-3").Finalizers)
		})
	}
}
