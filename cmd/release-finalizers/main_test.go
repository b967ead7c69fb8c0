package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"function/config"
	"function/handlers"
	"function/handlers/drain"
)

func TestSummary(t *testing.T) {
	tests := []struct {
		name   string
		res    handlers.ReleaseResult
		dryRun bool
		want   string
	}{
		{"all released", handlers.ReleaseResult{Released: []string{"a/x", "a/y"}, Listed: 5}, false, "released 2 pod(s)"},
		{"some failed", handlers.ReleaseResult{Released: []string{"a/x"}, Failed: 3, Listed: 5}, false, "released 1 pod(s), 3 failed"},
		{"dry-run", handlers.ReleaseResult{Released: []string{"a/x"}, Listed: 5}, true, "would release 1 pod(s)"},
		{"nothing", handlers.ReleaseResult{}, false, "released 0 pod(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, summary(tt.res, tt.dryRun))
		})
	}
}

func TestProgressLine(t *testing.T) {
	var b strings.Builder
	progress(&b, false)(10, 7, 1)
	progress(&b, true)(3, 2, 0)
	assert.Equal(t, "released 7, failed 1, checked 10 pods\nwould release 2, failed 0, checked 3 pods\n", b.String())
}

func TestRunRefusesNonPositiveLimits(t *testing.T) {
	for _, o := range []options{{qps: 0, burst: 1, workers: 1}, {qps: 1, burst: 0, workers: 1}, {qps: 1, burst: 1, workers: 0}} {
		assert.ErrorContains(t, run(o), "must be positive")
	}
}

func heldPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps", UID: types.UID("uid-" + name),
		Finalizers: []string{drain.Finalizer}}}
}

// Uninstalling marks the ConfigMap first, then releases every pod, and passes again until a
// pass finds nothing left.
func TestUninstallMarksTheConfigMapAndPassesUntilNothingIsLeft(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain", Namespace: "vpa-graceful-drain"}}
	c := fake.NewClientset(cm, heldPod("a"), heldPod("b"))
	var out strings.Builder
	o := options{workers: 2, configMap: "vpa-graceful-drain/vpa-graceful-drain", settle: time.Millisecond}
	res, err := uninstall(context.Background(), c, o, slog.New(slog.DiscardHandler), &out)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"apps/a", "apps/b"}, res.Released)
	assert.Zero(t, res.Failed)

	live, err := c.CoreV1().ConfigMaps("vpa-graceful-drain").Get(context.Background(), "vpa-graceful-drain", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "true", live.Annotations[config.AnnotationUninstalling])
	assert.Contains(t, out.String(), "marked ConfigMap")
	assert.Contains(t, out.String(), "pass 1 done", "a second pass checks nothing was added meanwhile")
	assert.NotContains(t, out.String(), "pass 2 done", "the second pass found nothing")
	for _, name := range []string{"a", "b"} {
		p, err := c.CoreV1().Pods("apps").Get(context.Background(), name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, p.Finalizers)
	}
}

// Something that keeps adding the finalizer back (a replica not in uninstall mode) makes every
// pass release pods again: after the last one, an error names the pods and the likely causes.
func TestUninstallFailsWhenSomethingKeepsAddingTheFinalizer(t *testing.T) {
	c := fake.NewClientset(heldPod("a"))
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	c.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		// Before each pass: the finalizer is back, as a running replica would add it.
		p, err := c.Tracker().Get(pods, "apps", "a")
		require.NoError(t, err)
		pod := p.(*corev1.Pod).DeepCopy()
		pod.Finalizers = []string{drain.Finalizer}
		require.NoError(t, c.Tracker().Update(pods, pod, "apps"))
		return false, nil, nil
	})
	var out strings.Builder
	o := options{workers: 1, settle: time.Millisecond}
	res, err := uninstall(context.Background(), c, o, slog.New(slog.DiscardHandler), &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("pass %d of %d still released 1 pod(s) (apps/a): something keeps adding %s back", maxPasses, maxPasses, drain.Finalizer))
	assert.Contains(t, err.Error(), "not in uninstall mode")
	assert.Len(t, res.Released, maxPasses, "released once per pass")
}

func TestMarkUninstalling(t *testing.T) {
	tests := []struct {
		name    string
		ref     string
		objs    []runtime.Object
		wantOut string
		wantErr string
	}{
		{"marked", "ns/cm", []runtime.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}}, "marked ConfigMap ns/cm", ""},
		{"missing ConfigMap: nothing to mark", "ns/cm", nil, "not found: nothing to mark", ""},
		{"not namespace/name", "cm", nil, "", "want namespace/name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := markUninstalling(context.Background(), fake.NewClientset(tt.objs...), tt.ref, &out)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Contains(t, out.String(), tt.wantOut)
		})
	}
}

// A dry-run neither marks the ConfigMap nor passes twice.
func TestUninstallDryRun(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}
	c := fake.NewClientset(cm, heldPod("a"))
	var out strings.Builder
	res, err := uninstall(context.Background(), c, options{dryRun: true, workers: 1, configMap: "ns/cm", settle: time.Millisecond}, slog.New(slog.DiscardHandler), &out)
	require.NoError(t, err)
	assert.Equal(t, []string{"apps/a"}, res.Released)
	live, err := c.CoreV1().ConfigMaps("ns").Get(context.Background(), "cm", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, live.Annotations)
	p, err := c.CoreV1().Pods("apps").Get(context.Background(), "a", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{drain.Finalizer}, p.Finalizers)
}

// Last, uninstalling deletes the PodDisruptionBudgets pacing created, and no other.
func TestUninstallDeletesThePDBsPacingCreated(t *testing.T) {
	ours := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: handlers.PDBName("web"), Namespace: "apps", UID: "uid-ours",
		Labels: map[string]string{handlers.LabelManagedBy: handlers.Component}}}
	theirs := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", UID: "uid-theirs"}}
	for _, dryRun := range []bool{false, true} {
		c := fake.NewClientset(heldPod("a"), ours.DeepCopy(), theirs.DeepCopy())
		var out strings.Builder
		_, err := uninstall(context.Background(), c, options{dryRun: dryRun, workers: 1, settle: time.Millisecond}, slog.New(slog.DiscardHandler), &out)
		require.NoError(t, err)
		list, err := c.PolicyV1().PodDisruptionBudgets("").List(context.Background(), metav1.ListOptions{})
		require.NoError(t, err)
		var left []string
		for _, p := range list.Items {
			left = append(left, p.Name)
		}
		if dryRun {
			assert.Contains(t, out.String(), "would delete 1 PodDisruptionBudget(s)")
			assert.ElementsMatch(t, []string{"web", "web-vpa-graceful-drain"}, left)
		} else {
			assert.Contains(t, out.String(), "deleted 1 PodDisruptionBudget(s)")
			assert.Equal(t, []string{"web"}, left)
		}
	}
}

func TestPermissions(t *testing.T) {
	pods := func(verb, ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Resource: "pods", Namespace: ns}
	}
	events := func(ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: "create", Resource: "events", Namespace: ns}
	}
	pdbs := func(verb string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "policy", Resource: "poddisruptionbudgets"}
	}
	cm := authorizationv1.ResourceAttributes{Verb: "patch", Resource: "configmaps", Namespace: "vpa-graceful-drain", Name: "vpa-graceful-drain"}
	tests := []struct {
		name string
		o    options
		want []authorizationv1.ResourceAttributes
	}{
		{"every namespace", options{configMap: "vpa-graceful-drain/vpa-graceful-drain"},
			[]authorizationv1.ResourceAttributes{pods("get", ""), pods("list", ""), pods("patch", ""), events(""), cm, pdbs("list"), pdbs("delete")}},
		{"one namespace: PodDisruptionBudgets still everywhere", options{namespace: "apps", configMap: "vpa-graceful-drain/vpa-graceful-drain"},
			[]authorizationv1.ResourceAttributes{pods("get", "apps"), pods("list", "apps"), pods("patch", "apps"), events("apps"), cm, pdbs("list"), pdbs("delete")}},
		{"no ConfigMap", options{namespace: "apps"},
			[]authorizationv1.ResourceAttributes{pods("get", "apps"), pods("list", "apps"), pods("patch", "apps"), events("apps"), pdbs("list"), pdbs("delete")}},
		{"dry-run reads only", options{namespace: "apps", dryRun: true, configMap: "vpa-graceful-drain/vpa-graceful-drain"},
			[]authorizationv1.ResourceAttributes{pods("list", "apps"), pdbs("list")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := permissions(tt.o)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := permissions(options{configMap: "cm"})
	assert.ErrorContains(t, err, "want namespace/name")
}

// Every denied permission is listed, one line each, and nothing else is asked of the cluster.
func TestCheckPermissionsListsEveryMissingOne(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "selfsubjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		a := review.Spec.ResourceAttributes
		review.Status.Allowed = !(a.Verb == "patch" && a.Resource == "pods") && !(a.Verb == "delete" && a.Resource == "poddisruptionbudgets")
		return true, review, nil
	})
	needed, err := permissions(options{namespace: "apps", configMap: "vpa-graceful-drain/vpa-graceful-drain"})
	require.NoError(t, err)
	err = checkPermissions(context.Background(), c, needed)
	var missing missingPermissions
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "release-finalizers needs patch on pods (namespace apps); ask your cluster admin or run with an account that has it\n"+
		"release-finalizers needs delete on poddisruptionbudgets.policy (all namespaces); ask your cluster admin or run with an account that has it\n",
		err.Error())
	for _, a := range c.Actions() {
		assert.Equal(t, "selfsubjectaccessreviews", a.GetResource().Resource, "only checks: %v", a)
	}

	named := missingPermissions{{Verb: "patch", Resource: "configmaps", Namespace: "ns", Name: "cm"}}
	assert.Equal(t, "release-finalizers needs patch on configmaps named cm (namespace ns); ask your cluster admin or run with an account that has it\n", named.Error())

	c = fake.NewClientset()
	c.PrependReactor("create", "selfsubjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		review := &authorizationv1.SelfSubjectAccessReview{}
		review.Status.Allowed = true
		return true, review, nil
	})
	assert.NoError(t, checkPermissions(context.Background(), c, needed))
}

func TestUsageStatesThePermissions(t *testing.T) {
	var b strings.Builder
	fs := flag.NewFlagSet("release-finalizers", flag.ContinueOnError)
	fs.String("namespace", "", "only this namespace")
	usage(&b, fs)
	for _, line := range []string{
		"get, list, patch  pods                         in -namespace (all namespaces without it)",
		"create            events                       in the same scope",
		"patch             configmaps                   the one -config-map names",
		"list, delete      poddisruptionbudgets.policy  in all namespaces",
		"-namespace string",
	} {
		assert.Contains(t, b.String(), line)
	}
}
