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
	"sigs.k8s.io/yaml"

	"function/config"
	"function/handlers"
	"function/handlers/drain"
	"function/internal/testutil"
)

var vpaGVR = schema.GroupVersionResource{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}

// gracefulContainer has a preStop hook and a readiness probe.
func gracefulContainer(name string) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox",
		Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}}}
}

// gracefulInput is advice input for a Deployment web that defeats nothing.
func gracefulInput() handlers.AdviceInput {
	return handlers.AdviceInput{
		Owner:     drain.Owner{Kind: config.KindDeployment, Name: "web", UID: "uid-web"},
		Namespace: "default",
		Replicas:  ptr.To[int32](3),
		Selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{gracefulContainer("app")}}},
		GracePeriod: 30 * time.Second,
		PDB:         ptr.To(true),
	}
}

const webPDBYAML = `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: default
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: web
  unhealthyPodEvictionPolicy: AlwaysAllow
`

func ids(findings []handlers.Finding) []string {
	out := []string{}
	for _, f := range findings {
		out = append(out, f.ID)
	}
	return out
}

func TestAdvise(t *testing.T) {
	tests := []struct {
		name   string
		change func(in *handlers.AdviceInput)
		want   []string
		check  func(t *testing.T, f []handlers.Finding)
	}{
		{name: "graceful: nothing", change: func(*handlers.AdviceInput) {}},
		{name: "no preStop hook", change: func(in *handlers.AdviceInput) { in.Template.Spec.Containers[0].Lifecycle = nil },
			want: []string{handlers.FindingNoPreStopHook},
			check: func(t *testing.T, f []handlers.Finding) {
				assert.Equal(t, "container app has no preStop hook: it gets SIGTERM while Services may still send it traffic", f[0].Message)
				assert.Equal(t, "spec:\n  template:\n    spec:\n      containers:\n      - name: app\n        lifecycle:\n          preStop:\n            sleep:\n              seconds: 5\n", f[0].Fix)
			}},
		{name: "no readiness probe, in two containers, on a port", change: func(in *handlers.AdviceInput) {
			side := gracefulContainer("side")
			side.ReadinessProbe = nil
			side.Ports = []corev1.ContainerPort{{ContainerPort: 9090}}
			in.Template.Spec.Containers[0].ReadinessProbe = nil
			in.Template.Spec.Containers = append(in.Template.Spec.Containers, side)
		}, want: []string{handlers.FindingNoReadinessProbe},
			check: func(t *testing.T, f []handlers.Finding) {
				assert.Contains(t, f[0].Message, "containers app, side have no readinessProbe")
				assert.Contains(t, f[0].Fix, "- name: app\n        readinessProbe:\n          httpGet:\n")
				assert.Contains(t, f[0].Fix, "port: 8080\n")
				assert.Contains(t, f[0].Fix, "- name: side\n")
				assert.Contains(t, f[0].Fix, "port: 9090\n")
			}},
		{name: "terminationGracePeriodSeconds shorter than the grace period", change: func(in *handlers.AdviceInput) {
			in.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](20)
		}, want: []string{handlers.FindingShortTermination},
			check: func(t *testing.T, f []handlers.Finding) {
				assert.Equal(t, "terminationGracePeriodSeconds 20 is shorter than the drain's grace period 30s: the kubelet kills the containers after 20s", f[0].Message)
				assert.Equal(t, "spec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: 30\n", f[0].Fix)
			}},
		{name: "default termination (30 s) shorter than a 45 s grace", change: func(in *handlers.AdviceInput) { in.GracePeriod = 45 * time.Second },
			want: []string{handlers.FindingShortTermination}},
		{name: "termination equal to the grace period: fine", change: func(in *handlers.AdviceInput) {
			in.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
		}},
		{name: "a StatefulSet's grace period 0: fine", change: func(in *handlers.AdviceInput) {
			in.Owner.Kind, in.GracePeriod, in.Template.Spec.TerminationGracePeriodSeconds = config.KindStatefulSet, 0, ptr.To[int64](0)
		}},
		{name: "single replica (no PDB finding besides)", change: func(in *handlers.AdviceInput) { in.Replicas, in.PDB = ptr.To[int32](1), ptr.To(false) },
			want: []string{handlers.FindingSingleReplica},
			check: func(t *testing.T, f []handlers.Finding) {
				assert.Equal(t, "Deployment web has 1 replica: each eviction is downtime until the replacement is Ready", f[0].Message)
				assert.Equal(t, "spec:\n  replicas: 2\n---\n"+webPDBYAML, f[0].Fix)
			}},
		{name: "single-replica StatefulSet", change: func(in *handlers.AdviceInput) {
			in.Owner.Kind, in.Replicas = config.KindStatefulSet, ptr.To[int32](1)
		}, want: []string{handlers.FindingSingleReplica}},
		{name: "no PDB selects the pods", change: func(in *handlers.AdviceInput) { in.PDB = ptr.To(false) },
			want: []string{handlers.FindingNoPDB},
			check: func(t *testing.T, f []handlers.Finding) {
				assert.Equal(t, "no PodDisruptionBudget selects the pods of Deployment web: the VPA updater may evict the next pod before the replacement is Ready", f[0].Message)
				assert.Equal(t, webPDBYAML, f[0].Fix)
			}},
		{name: "PDB unknown (could not list): no finding", change: func(in *handlers.AdviceInput) { in.PDB = nil }},
		{name: "DaemonSet: replicas do not apply", change: func(in *handlers.AdviceInput) {
			in.Owner.Kind, in.Replicas, in.PDB = config.KindDaemonSet, nil, ptr.To(false)
		}},
		{name: "scaled to 0: nothing to evict", change: func(in *handlers.AdviceInput) { in.Replicas, in.PDB = ptr.To[int32](0), ptr.To(false) }},
		{name: "VPA Recreate on an in-place cluster", change: func(in *handlers.AdviceInput) {
			in.VPA, in.VPAUpdateMode, in.InPlaceResize = "web-vpa", "Recreate", true
		}, want: []string{handlers.FindingUseInPlaceOrRecreate},
			check: func(t *testing.T, f []handlers.Finding) {
				assert.Equal(t, "VerticalPodAutoscaler web-vpa of Deployment web has updateMode Recreate, which evicts a pod to resize it; this cluster resizes pods in place", f[0].Message)
				assert.Equal(t, "spec:\n  updatePolicy:\n    updateMode: InPlaceOrRecreate\n", f[0].Fix)
			}},
		{name: "VPA Auto", change: func(in *handlers.AdviceInput) { in.VPA, in.VPAUpdateMode, in.InPlaceResize = "v", "Auto", true },
			want: []string{handlers.FindingUseInPlaceOrRecreate}},
		{name: "VPA without updateMode (VPA's default recreates)", change: func(in *handlers.AdviceInput) { in.VPA, in.InPlaceResize = "v", true },
			want:  []string{handlers.FindingUseInPlaceOrRecreate},
			check: func(t *testing.T, f []handlers.Finding) { assert.Contains(t, f[0].Message, "updateMode unset (Auto)") }},
		{name: "VPA Recreate, no in-place resize", change: func(in *handlers.AdviceInput) { in.VPA, in.VPAUpdateMode = "v", "Recreate" }},
		{name: "VPA InPlaceOrRecreate already", change: func(in *handlers.AdviceInput) {
			in.VPA, in.VPAUpdateMode, in.InPlaceResize = "v", "InPlaceOrRecreate", true
		}},
		{name: "VPA Off", change: func(in *handlers.AdviceInput) { in.VPA, in.VPAUpdateMode, in.InPlaceResize = "v", "Off", true }},
		{name: "no VPA", change: func(in *handlers.AdviceInput) { in.InPlaceResize = true }},
		{name: "everything, in order", change: func(in *handlers.AdviceInput) {
			in.Template.Spec.Containers = []corev1.Container{{Name: "app"}}
			in.GracePeriod, in.Replicas = time.Minute, ptr.To[int32](1)
			in.VPA, in.InPlaceResize = "v", true
		}, want: []string{handlers.FindingNoPreStopHook, handlers.FindingNoReadinessProbe, handlers.FindingShortTermination,
			handlers.FindingSingleReplica, handlers.FindingUseInPlaceOrRecreate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := gracefulInput()
			tt.change(&in)
			got := handlers.Advise(in)
			assert.Equal(t, append([]string{}, tt.want...), ids(got))
			for _, f := range got {
				assert.NotEmpty(t, f.Message)
				assertFixParses(t, f)
			}
			if tt.check != nil && len(got) > 0 {
				tt.check(t, got)
			}
		})
	}
}

// assertFixParses: each fix is YAML of the object it changes, strictly.
func assertFixParses(t *testing.T, f handlers.Finding) {
	t.Helper()
	for _, doc := range strings.Split(f.Fix, "\n---\n") {
		var meta struct{ Kind string }
		require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), "%s: %s", f.ID, doc)
		var into any
		switch {
		case meta.Kind == "PodDisruptionBudget":
			into = &policyv1.PodDisruptionBudget{}
		case f.ID == handlers.FindingUseInPlaceOrRecreate:
			into = &map[string]any{}
		default:
			into = &appsv1.Deployment{}
		}
		assert.NoError(t, yaml.UnmarshalStrict([]byte(doc), into), "%s: %s", f.ID, doc)
	}
}

// ---- checkOwner, through Reconcile adding the finalizer ----

type adviceFixture struct {
	client *fake.Clientset
	dyn    *dynamicfake.FakeDynamicClient
	clock  *clocktesting.FakeClock
	rec    *handlers.Reconciler
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
	r := &handlers.Reconciler{
		Client: c, Dynamic: dyn, Config: c2, DryRun: dryRun, Clock: fc, Rechecks: handlers.NewRechecks(fc),
		Log:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Events: handlers.APIEventRecorder{Client: c, Now: fc.Now},
	}
	t.Cleanup(r.Stop)
	return &adviceFixture{client: c, dyn: dyn, clock: fc, rec: r, logs: logs}
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
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{drain.AnnotationManaged: "true"}},
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
	assert.Equal(t, []string{handlers.FindingNoPreStopHook, handlers.FindingNoReadinessProbe, handlers.FindingNoPDB, handlers.FindingUseInPlaceOrRecreate},
		ids(out.Advice.Findings))
	assert.Equal(t, []string{"get pods", "patch pods", "get deployments", "list poddisruptionbudgets", "get resource", "create events"}, testutil.Verbs(f.client),
		"the finalizer, then the owner, the PDBs, discovery (pods/resize), and the Event")
	assert.Equal(t, []string{"list verticalpodautoscalers"}, testutil.Verbs(f.dyn))
	evs := events(f.client)
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, corev1.ObjectReference{Kind: "Deployment", APIVersion: "apps/v1", Namespace: "default", Name: "web", UID: "uid-web"}, ev.InvolvedObject)
	assert.Equal(t, corev1.EventTypeWarning, ev.Type)
	assert.Equal(t, handlers.EventDrainNotGraceful, ev.Reason)
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
	assert.Equal(t, []string{handlers.FindingNoPreStopHook, handlers.FindingNoReadinessProbe, handlers.FindingNoPDB, handlers.FindingUseInPlaceOrRecreate},
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
				f.rec.Dynamic = nil
			}
			out := f.addFinalizer(t, webPod("web-1"))
			require.NotNil(t, out.Advice)
			assert.Equal(t, []string{handlers.FindingNoPreStopHook, handlers.FindingNoReadinessProbe, handlers.FindingNoPDB}, ids(out.Advice.Findings))
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
			wantOwner: drain.Owner{Kind: config.KindStatefulSet, Name: "db", UID: "uid-db"}, wantIDs: []string{handlers.FindingSingleReplica}},
		{name: "DaemonSet: no replica findings", pod: newPod(managed, ownedBy("DaemonSet", "agent")),
			wantVerbs: []string{"get pods", "patch pods", "get daemonsets", "list poddisruptionbudgets", "create events"},
			wantOwner: drain.Owner{Kind: config.KindDaemonSet, Name: "agent", UID: "uid-agent"},
			wantIDs:   []string{handlers.FindingNoPreStopHook, handlers.FindingNoReadinessProbe}},
		{name: "ReplicaSet without a Deployment", pod: newPod(managed, ownedBy("ReplicaSet", "legacy")),
			wantVerbs: []string{"get replicasets", "get pods", "patch pods", "get replicasets", "list poddisruptionbudgets", "create events"},
			wantOwner: drain.Owner{Kind: config.KindReplicaSet, Name: "legacy", UID: "uid-legacy"}, wantIDs: []string{handlers.FindingNoPDB}},
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
				assert.Equal(t, []string{handlers.FindingNoPDB}, ids(out.Advice.Findings))
			} else {
				assert.Empty(t, out.Advice.Findings)
			}
		})
	}
}
