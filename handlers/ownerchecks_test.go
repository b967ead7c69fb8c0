package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/advice"
	"function/handlers/drain"
	"function/handlers/drain/draintest"
	"function/internal/testutil"
	"function/names"
)

var (
	gracefulContainer = draintest.GracefulContainer
	ids               = draintest.FindingIDs
)

var vpaGVR = schema.GroupVersionResource{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}

// ---- checkOwner, through Reconcile adding the finalizer ----

type adviceFixture struct {
	client *fake.Clientset
	dyn    *dynamicfake.FakeDynamicClient
	clock  *clocktesting.FakeClock
	rec    *handlers.Reconciler
	surge  *handlers.SurgeController
	logs   *bytes.Buffer // Warn and above
}

// newAdviceFixture is a Reconciler on the default configuration (changed by cfg) with a fake
// clientset holding objs, a fake dynamic client holding the unstructured ones (VPAs), and a
// discovery document that serves pods/resize.
func newAdviceFixture(t *testing.T, dryRun bool, cfg func(*config.Config), objs ...runtime.Object) *adviceFixture {
	t.Helper()
	var typed, vpas []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*unstructured.Unstructured); ok {
			vpas = append(vpas, o)
		} else {
			typed = append(typed, o)
		}
	}
	c := fake.NewClientset(typed...)
	c.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", Namespaced: true, Kind: "Pod"}, {Name: "pods/resize", Namespaced: true, Kind: "Pod"}}}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{vpaGVR: "VerticalPodAutoscalerList"}, vpas...)
	fc := clocktesting.NewFakeClock(now)
	c2 := config.Default()
	c2.SweepInterval = 0
	if cfg != nil {
		cfg(&c2)
	}
	logs := &bytes.Buffer{}
	r := handlers.NewReconciler(handlers.Deps{Client: c, Dynamic: testutil.Dynamic(c, dyn), DryRun: dryRun, Clock: fc,
		Log:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Events: handlers.APIEventRecorder{Client: c, Now: fc.Now}}, c2)
	t.Cleanup(r.Stop)
	return &adviceFixture{client: c, dyn: dyn, clock: fc, rec: r, surge: handlers.NewSurgeController(r.Deps, r.CurrentConfig), logs: logs}
}

// reset forgets the API actions recorded so far.
func (f *adviceFixture) reset() {
	f.client.ClearActions()
	f.dyn.ClearActions()
}

type deployOpt func(*appsv1.Deployment)

// webDeployment is Deployment web (uid-web) in default: selector app=web, its template opted
// in, one container app without preStop hook or readiness probe.
func webDeployment(replicas int32, opts ...deployOpt) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{names.AnnotationManaged: "true"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// graceful gives the template's containers a preStop hook and a readiness probe.
func graceful(d *appsv1.Deployment) {
	d.Spec.Template.Spec.Containers = []corev1.Container{gracefulContainer("app")}
}

// webPod is a managed pod of Deployment web (through its ReplicaSet web-7d9f8).
func webPod(name string) *corev1.Pod {
	return newPod(named(name), managed, deployment, func(p *corev1.Pod) { p.Labels["app"] = "web" })
}

// webVPA is a VerticalPodAutoscaler web-vpa targeting Deployment web with updateMode mode
// ("": unset).
func webVPA(mode string) *unstructured.Unstructured { return vpaTargeting("web", mode) }

// vpaTargeting is a VerticalPodAutoscaler NAME-vpa targeting Deployment name.
func vpaTargeting(name, mode string) *unstructured.Unstructured {
	spec := map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}
	if mode != "" {
		spec["updatePolicy"] = map[string]any{"updateMode": mode}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
		"metadata": map[string]any{"name": name + "-vpa", "namespace": "default"},
		"spec":     spec,
	}}
}

func pdbFor(name string, labels map[string]string, matchLabels map[string]string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: k8stypes.UID("uid-pdb-" + name), Labels: labels},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: matchLabels}}}
}

// addFinalizer reconciles a pod that gets the finalizer and returns the outcome.
func (f *adviceFixture) addFinalizer(t *testing.T, pod *corev1.Pod) handlers.Outcome {
	t.Helper()
	_, err := f.client.Tracker().Get(podsGVR, pod.Namespace, pod.Name)
	if apierrors.IsNotFound(err) {
		require.NoError(t, f.client.Tracker().Add(pod))
	}
	out, err := f.rec.Reconcile(context.Background(), pod)
	require.NoError(t, err)
	require.Equal(t, drain.AddFinalizer, out.Decision.Action, out.Decision.Reason)
	return out
}

// Advice is given once per owner (and again after a day), with a Warning Event on the owner.
func TestCheckOwnerAdvisesOncePerOwner(t *testing.T) {
	f := newAdviceFixture(t, false, nil, webDeployment(3), webVPA("Recreate"))
	out := f.addFinalizer(t, webPod("web-1"))

	require.NotNil(t, out.Advice)
	assert.Equal(t, drain.Owner{Kind: config.KindDeployment, Name: "web", UID: "uid-web"}, out.Advice.Owner)
	assert.Equal(t, "default", out.Advice.Namespace)
	assert.Equal(t, []string{advice.FindingNoPreStopHook, advice.FindingNoReadinessProbe, advice.FindingNoPDB, advice.FindingUseInPlaceOrRecreate},
		ids(out.Advice.Findings))
	assert.Equal(t, []string{"get pods", "patch pods", "get deployments", "list poddisruptionbudgets", "get resource", "create events"}, testutil.Verbs(f.client),
		"the finalizer, then the owner, the PDBs, discovery (pods/resize), and the Event")
	assert.Equal(t, []string{"list verticalpodautoscalers"}, testutil.Verbs(f.dyn))
	evs := events(f.client)
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, corev1.ObjectReference{Kind: "Deployment", APIVersion: "apps/v1", Namespace: "default", Name: "web", UID: "uid-web"}, ev.InvolvedObject)
	assert.Equal(t, corev1.EventTypeWarning, ev.Type)
	assert.Equal(t, names.EventDrainNotGraceful, ev.Reason)
	assert.Equal(t, "default", ev.Namespace)
	for _, id := range ids(out.Advice.Findings) {
		assert.Contains(t, ev.Message, "["+id+"] ")
	}
	assert.True(t, strings.HasPrefix(ev.Message, "Evictions of these pods are not graceful: [no-prestop-hook] container app has no preStop hook: "), ev.Message)
	assert.Empty(t, f.logs.String(), "nothing went wrong")

	// Another pod of the same owner: no read at all, no advice.
	f.reset()
	out = f.addFinalizer(t, webPod("web-2"))
	assert.Nil(t, out.Advice)
	assert.Equal(t, []string{"get pods", "patch pods"}, testutil.Verbs(f.client))
	assert.Equal(t, []string{}, testutil.Verbs(f.dyn))

	// A day later: advised again; discovery's answer is kept.
	f.reset()
	f.clock.Step(24*time.Hour + time.Second)
	out = f.addFinalizer(t, webPod("web-3"))
	require.NotNil(t, out.Advice)
	assert.Len(t, out.Advice.Findings, 4)
	assert.Equal(t, []string{"get pods", "patch pods", "get deployments", "list poddisruptionbudgets", "create events"}, testutil.Verbs(f.client))
}

func TestCheckOwnerDryRunOnlyReads(t *testing.T) {
	f := newAdviceFixture(t, true, func(c *config.Config) { c.EnsurePDB = true }, webDeployment(3), webVPA(""))
	out := f.addFinalizer(t, webPod("web-1"))
	require.NotNil(t, out.Advice, "dry-run still advises (in the reply)")
	assert.Equal(t, []string{advice.FindingNoPreStopHook, advice.FindingNoReadinessProbe, advice.FindingNoPDB, advice.FindingUseInPlaceOrRecreate},
		ids(out.Advice.Findings))
	assert.Equal(t, []string{"get deployments", "list poddisruptionbudgets", "get resource"}, testutil.Verbs(f.client),
		"no finalizer, no Event, no PodDisruptionBudget")
	assert.Empty(t, f.logs.String())
}

// The VerticalPodAutoscaler is optional: no CRD, no dynamic client, or an error reading it
// only drop that finding.
func TestCheckOwnerVPAOptional(t *testing.T) {
	notFound := apierrors.NewNotFound(vpaGVR.GroupResource(), "")
	noMatch := &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "autoscaling.k8s.io", Kind: "VerticalPodAutoscaler"}}
	forbidden := apierrors.NewForbidden(vpaGVR.GroupResource(), "", errors.New("no RBAC"))
	tests := []struct {
		name    string
		listErr error
		noDyn   bool
		wantLog string // "" for none
	}{
		{name: "CRD absent (404)", listErr: notFound},
		{name: "CRD absent (no matches for kind)", listErr: noMatch},
		{name: "no dynamic client", noDyn: true},
		{name: "forbidden: logged", listErr: forbidden, wantLog: "cannot list VerticalPodAutoscalers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, nil, webDeployment(3), webVPA("Recreate"))
			if tt.listErr != nil {
				f.dyn.PrependReactor("list", "verticalpodautoscalers", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, tt.listErr
				})
			}
			if tt.noDyn {
				f.rec.Dynamic, f.rec.Checks.Dynamic = nil, nil
			}
			out := f.addFinalizer(t, webPod("web-1"))
			require.NotNil(t, out.Advice)
			assert.Equal(t, []string{advice.FindingNoPreStopHook, advice.FindingNoReadinessProbe, advice.FindingNoPDB}, ids(out.Advice.Findings))
			assert.Equal(t, []string{"get pods", "patch pods", "get deployments", "list poddisruptionbudgets", "create events"}, testutil.Verbs(f.client),
				"no discovery without a VPA to advise on")
			if tt.wantLog == "" {
				assert.Empty(t, f.logs.String(), "skipped quietly")
			} else {
				assert.Contains(t, f.logs.String(), tt.wantLog)
			}
		})
	}
}

func TestCheckOwnerKinds(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", UID: "uid-db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{gracefulContainer("db")}}}}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default", UID: "uid-agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent"}}}}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "default", UID: "uid-legacy"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "legacy"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{gracefulContainer("app")}}}}}
	tests := []struct {
		name      string
		pod       *corev1.Pod
		wantVerbs []string
		wantOwner drain.Owner
		wantIDs   []string // nil: no advice
	}{
		{name: "StatefulSet", pod: newPod(managed, ownedBy("StatefulSet", "db")),
			wantVerbs: []string{"get pods", "patch pods", "get statefulsets", "list poddisruptionbudgets", "create events"},
			wantOwner: drain.Owner{Kind: config.KindStatefulSet, Name: "db", UID: "uid-db"}, wantIDs: []string{advice.FindingSingleReplica}},
		{name: "DaemonSet: no replica findings", pod: newPod(managed, ownedBy("DaemonSet", "agent")),
			wantVerbs: []string{"get pods", "patch pods", "get daemonsets", "list poddisruptionbudgets", "create events"},
			wantOwner: drain.Owner{Kind: config.KindDaemonSet, Name: "agent", UID: "uid-agent"},
			wantIDs:   []string{advice.FindingNoPreStopHook, advice.FindingNoReadinessProbe}},
		{name: "ReplicaSet without a Deployment", pod: newPod(managed, ownedBy("ReplicaSet", "legacy")),
			wantVerbs: []string{"get replicasets", "get pods", "patch pods", "get replicasets", "list poddisruptionbudgets", "create events"},
			wantOwner: drain.Owner{Kind: config.KindReplicaSet, Name: "legacy", UID: "uid-legacy"}, wantIDs: []string{advice.FindingNoPDB}},
		{name: "another controller: not read", pod: newPod(managed, ownedBy("Rollout", "canary")), wantVerbs: []string{"get pods", "patch pods"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, nil, sts, ds, rs)
			out := f.addFinalizer(t, tt.pod)
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
			if tt.wantIDs == nil {
				assert.Nil(t, out.Advice)
				return
			}
			require.NotNil(t, out.Advice)
			assert.Equal(t, tt.wantOwner, out.Advice.Owner)
			assert.Equal(t, tt.wantIDs, ids(out.Advice.Findings))
			assert.Equal(t, string(tt.wantOwner.Kind), events(f.client)[0].InvolvedObject.Kind)
		})
	}
}

// What cannot be read is logged and skipped; it never fails the event.
func TestCheckOwnerReadFailures(t *testing.T) {
	t.Run("owner missing: no advice, read again for the next pod", func(t *testing.T) {
		f := newAdviceFixture(t, false, nil)
		out := f.addFinalizer(t, webPod("web-1"))
		assert.Nil(t, out.Advice)
		assert.Contains(t, f.logs.String(), "cannot read the pod's owner")
		f.reset()
		out = f.addFinalizer(t, webPod("web-2"))
		assert.Nil(t, out.Advice)
		assert.Equal(t, []string{"get pods", "patch pods", "get deployments"}, testutil.Verbs(f.client))
	})
	t.Run("PDBs unreadable: no PDB finding", func(t *testing.T) {
		f := newAdviceFixture(t, false, nil, webDeployment(3, graceful))
		f.client.PrependReactor("list", "poddisruptionbudgets", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "policy", Resource: "poddisruptionbudgets"}, "", errors.New("no RBAC"))
		})
		out := f.addFinalizer(t, webPod("web-1"))
		require.NotNil(t, out.Advice)
		assert.Empty(t, out.Advice.Findings)
		assert.Contains(t, f.logs.String(), "cannot list PodDisruptionBudgets")
		assert.Equal(t, []string{"get pods", "patch pods", "get deployments", "list poddisruptionbudgets"}, testutil.Verbs(f.client), "no findings, no Event")
	})
	t.Run("discovery fails: no in-place finding, asked again next time", func(t *testing.T) {
		f := newAdviceFixture(t, false, nil, webDeployment(3, graceful), webVPA("Auto"), pdbFor("mine", nil, map[string]string{"app": "web"}))
		f.client.Resources = nil
		out := f.addFinalizer(t, webPod("web-1"))
		require.NotNil(t, out.Advice)
		assert.Empty(t, out.Advice.Findings)
		assert.Contains(t, f.logs.String(), "in-place resize support unknown")
	})
	t.Run("Event refused: advice still returned", func(t *testing.T) {
		f := newAdviceFixture(t, false, nil, webDeployment(3))
		f.client.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("no RBAC"))
		})
		out := f.addFinalizer(t, webPod("web-1"))
		require.NotNil(t, out.Advice)
		assert.NotEmpty(t, out.Advice.Findings)
		assert.Contains(t, f.logs.String(), "creating event DrainNotGraceful for deployment default/web")
	})
}

// A PodDisruptionBudget that selects the pod's labels counts; one that selects other pods, or
// nothing (nil selector, policy/v1), does not.
func TestCheckOwnerPDBSelection(t *testing.T) {
	nilSelector := pdbFor("none", nil, nil)
	nilSelector.Spec.Selector = nil
	tests := []struct {
		name  string
		pdbs  []runtime.Object
		noPDB bool
	}{
		{name: "selects the pod", pdbs: []runtime.Object{pdbFor("mine", nil, map[string]string{"app": "web"})}},
		{name: "empty selector: every pod", pdbs: []runtime.Object{pdbFor("all", nil, map[string]string{})}},
		{name: "selects other pods", pdbs: []runtime.Object{pdbFor("other", nil, map[string]string{"app": "db"})}, noPDB: true},
		{name: "nil selector: no pod", pdbs: []runtime.Object{nilSelector}, noPDB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, nil, append(tt.pdbs, webDeployment(3, graceful))...)
			out := f.addFinalizer(t, webPod("web-1"))
			require.NotNil(t, out.Advice)
			if tt.noPDB {
				assert.Equal(t, []string{advice.FindingNoPDB}, ids(out.Advice.Findings))
			} else {
				assert.Empty(t, out.Advice.Findings)
			}
		})
	}
}
