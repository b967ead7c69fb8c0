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

	"function/handlers"
	"function/names"
)

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		res  handlers.ReleaseResult
		o    options
		want string
	}{
		{"all released", handlers.ReleaseResult{Released: []string{"a/x", "a/y"}, Listed: 5}, options{}, "released 2 pod(s)"},
		{"some failed", handlers.ReleaseResult{Released: []string{"a/x"}, Failed: 3, Listed: 5}, options{}, "released 1 pod(s), 3 failed"},
		{"dry-run", handlers.ReleaseResult{Released: []string{"a/x"}, Listed: 5}, options{dryRun: true}, "would release 1 pod(s)"},
		{"nothing", handlers.ReleaseResult{}, options{}, "released 0 pod(s)"},
		{"one namespace", handlers.ReleaseResult{Released: []string{"a/x"}, Failed: 1}, options{namespace: "a"}, "released 1 pod(s) in namespace a, 1 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, summary(tt.res, tt.o))
		})
	}
}

func TestProgressLine(t *testing.T) {
	var b strings.Builder
	progress(&b, options{})(10, 7, 1)
	progress(&b, options{dryRun: true})(3, 2, 0)
	progress(&b, options{namespace: "a"})(4, 1, 0)
	assert.Equal(t, "released 7, failed 1, checked 10 pods\nwould release 2, failed 0, checked 3 pods\n"+
		"released 1, failed 0, checked 4 pods in namespace a\n", b.String())
}

func TestRunRefusesNonPositiveLimits(t *testing.T) {
	for _, o := range []options{{qps: 0, burst: 1, workers: 1}, {qps: 1, burst: 0, workers: 1}, {qps: 1, burst: 1, workers: 0}} {
		assert.ErrorContains(t, run(o), "must be positive")
	}
}

func heldPod(name string) *corev1.Pod { return heldPodIn("apps", name) }

func heldPodIn(namespace, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID("uid-" + namespace + "-" + name),
		Finalizers: []string{names.Finalizer}}}
}

func pacingPDB(namespace string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: handlers.PDBName("web"), Namespace: namespace,
		UID: types.UID("uid-pdb-" + namespace), Labels: map[string]string{names.LabelManagedBy: names.Component}}}
}

// calls is every API call the fake clientset saw, in order, as "verb resource namespace/name"
// (the name only for a get, patch or delete; "" namespace: all namespaces).
func calls(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		s := a.GetVerb() + " " + a.GetResource().Resource + " " + a.GetNamespace()
		if a, ok := a.(interface{ GetName() string }); ok { // a get, patch or delete
			s += "/" + a.GetName()
		}
		out = append(out, s)
	}
	return out
}

// -namespace touches that namespace only: its pods are released, and namespace b's held pods,
// every PodDisruptionBudget and the ConfigMap are left alone, not even read; it says the
// function is still installed. Without -namespace, every namespace's pods are released, the
// ConfigMap is marked and the PodDisruptionBudgets pacing created are deleted everywhere.
func TestUninstallTouchesOnlyTheNamespaceGiven(t *testing.T) {
	const cmRef = "vpa-graceful-drain/vpa-graceful-drain"
	theirs := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "b", UID: "uid-theirs"}}
	tests := []struct {
		name      string
		o         options
		wantCalls []string // every API call, in order
		released  []string
		held      []string // pods that still hold the finalizer
		pdbsLeft  []string
		marked    bool
		wantOut   []string
		notOut    []string
	}{
		{
			name: "-namespace a",
			o:    options{namespace: "a", workers: 1, configMap: cmRef, settle: time.Millisecond},
			wantCalls: []string{
				"list pods a",
				"patch pods a/x", "create events a",
				"patch pods a/y", "create events a",
				"list pods a", // the second pass: nothing left
			},
			released: []string{"a/x", "a/y"},
			held:     []string{"b/z"},
			pdbsLeft: []string{"a/web-vpa-graceful-drain", "b/web", "b/web-vpa-graceful-drain"},
			wantOut: []string{
				"pass 1 done",
				"released 2, failed 0, checked 2 pods in namespace a",
				"-namespace a: released pods in namespace a only; vpa-graceful-drain is still installed (its ConfigMap was not marked as uninstalling",
				"its PodDisruptionBudgets were left in every namespace; to remove all, run release-finalizers without -namespace",
			},
			notOut: []string{"marked ConfigMap", "PodDisruptionBudget(s) vpa-graceful-drain created"},
		},
		{
			name:      "-namespace a, dry-run",
			o:         options{namespace: "a", dryRun: true, workers: 1, configMap: cmRef, settle: time.Millisecond},
			wantCalls: []string{"list pods a"},
			released:  []string{"a/x", "a/y"},
			held:      []string{"a/x", "a/y", "b/z"},
			pdbsLeft:  []string{"a/web-vpa-graceful-drain", "b/web", "b/web-vpa-graceful-drain"},
			wantOut:   []string{"-namespace a: would release pods in namespace a only; vpa-graceful-drain is still installed"},
			notOut:    []string{"marked ConfigMap", "PodDisruptionBudget(s) vpa-graceful-drain created"},
		},
		{
			name: "every namespace",
			o:    options{workers: 1, configMap: cmRef, settle: time.Millisecond},
			wantCalls: []string{
				"patch configmaps vpa-graceful-drain/vpa-graceful-drain",
				"list pods ",
				"patch pods a/x", "create events a",
				"patch pods a/y", "create events a",
				"patch pods b/z", "create events b",
				"list pods ", // the second pass: nothing left
				"list poddisruptionbudgets ",
				"delete poddisruptionbudgets a/web-vpa-graceful-drain",
				"delete poddisruptionbudgets b/web-vpa-graceful-drain",
			},
			released: []string{"a/x", "a/y", "b/z"},
			pdbsLeft: []string{"b/web"},
			marked:   true,
			wantOut:  []string{"marked ConfigMap " + cmRef, "pass 1 done", "deleted 2 PodDisruptionBudget(s) vpa-graceful-drain created"},
			notOut:   []string{"-namespace", "still installed", "in namespace"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain", Namespace: "vpa-graceful-drain"}}
			c := fake.NewClientset(cm, heldPodIn("a", "x"), heldPodIn("a", "y"), heldPodIn("b", "z"),
				pacingPDB("a"), pacingPDB("b"), theirs.DeepCopy())
			var out strings.Builder
			res, err := uninstall(ctx, c, tt.o, slog.New(slog.DiscardHandler), &out)
			require.NoError(t, err)
			assert.Equal(t, tt.released, res.Released)
			assert.Zero(t, res.Failed)
			assert.Equal(t, tt.wantCalls, calls(c), "every API call, in order")

			c.ClearActions()
			pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			var held []string
			for _, p := range pods.Items {
				if len(p.Finalizers) > 0 {
					held = append(held, p.Namespace+"/"+p.Name)
				}
			}
			assert.ElementsMatch(t, tt.held, held)
			pdbs, err := c.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			var left []string
			for _, p := range pdbs.Items {
				left = append(left, p.Namespace+"/"+p.Name)
			}
			assert.ElementsMatch(t, tt.pdbsLeft, left)
			live, err := c.CoreV1().ConfigMaps("vpa-graceful-drain").Get(ctx, "vpa-graceful-drain", metav1.GetOptions{})
			require.NoError(t, err)
			if tt.marked {
				assert.Equal(t, "true", live.Annotations[names.AnnotationUninstalling])
			} else {
				assert.NotContains(t, live.Annotations, names.AnnotationUninstalling)
			}
			for _, s := range tt.wantOut {
				assert.Contains(t, out.String(), s)
			}
			for _, s := range tt.notOut {
				assert.NotContains(t, out.String(), s)
			}
		})
	}
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
	assert.Equal(t, "true", live.Annotations[names.AnnotationUninstalling])
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
		pod.Finalizers = []string{names.Finalizer}
		require.NoError(t, c.Tracker().Update(pods, pod, "apps"))
		return false, nil, nil
	})
	tests := []struct {
		name      string
		namespace string
		want      []string
	}{
		{"every namespace", "", []string{"a replica of the function that is not in uninstall mode", "kubectl get pods -A -o yaml"}},
		{"-namespace: the function is still installed", "apps", []string{
			"the function, which a -namespace run leaves installed and which still manages namespace apps (exclude it from the function's namespaceSelector first, or run without -namespace to uninstall it), or a controller",
			"kubectl get pods -n apps -o yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			o := options{namespace: tt.namespace, workers: 1, settle: time.Millisecond}
			res, err := uninstall(context.Background(), c, o, slog.New(slog.DiscardHandler), &out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("pass %d of %d still released 1 pod(s) (apps/a): something keeps adding %s back", maxPasses, maxPasses, names.Finalizer))
			for _, s := range tt.want {
				assert.Contains(t, err.Error(), s)
			}
			assert.Len(t, res.Released, maxPasses, "released once per pass")
		})
	}
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
	assert.Equal(t, []string{names.Finalizer}, p.Finalizers)
}

// Last, uninstalling deletes the PodDisruptionBudgets pacing created, and no other.
func TestUninstallDeletesThePDBsPacingCreated(t *testing.T) {
	ours := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: handlers.PDBName("web"), Namespace: "apps", UID: "uid-ours",
		Labels: map[string]string{names.LabelManagedBy: names.Component}}}
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
		{"every namespace, no ConfigMap", options{},
			[]authorizationv1.ResourceAttributes{pods("get", ""), pods("list", ""), pods("patch", ""), events(""), pdbs("list"), pdbs("delete")}},
		{"one namespace: nothing outside it, no ConfigMap, no PodDisruptionBudget", options{namespace: "apps", configMap: "vpa-graceful-drain/vpa-graceful-drain"},
			[]authorizationv1.ResourceAttributes{pods("get", "apps"), pods("list", "apps"), pods("patch", "apps"), events("apps")}},
		{"one namespace, -config-map not even parsed", options{namespace: "apps", configMap: "cm"},
			[]authorizationv1.ResourceAttributes{pods("get", "apps"), pods("list", "apps"), pods("patch", "apps"), events("apps")}},
		{"dry-run reads only", options{dryRun: true, configMap: "vpa-graceful-drain/vpa-graceful-drain"},
			[]authorizationv1.ResourceAttributes{pods("list", ""), pdbs("list")}},
		{"dry-run in one namespace reads its pods only", options{namespace: "apps", dryRun: true, configMap: "vpa-graceful-drain/vpa-graceful-drain"},
			[]authorizationv1.ResourceAttributes{pods("list", "apps")}},
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
	needed, err := permissions(options{configMap: "vpa-graceful-drain/vpa-graceful-drain"})
	require.NoError(t, err)
	err = checkPermissions(context.Background(), c, needed)
	var missing missingPermissions
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "release-finalizers needs patch on pods (all namespaces); ask your cluster admin or run with an account that has it\n"+
		"release-finalizers needs delete on poddisruptionbudgets.policy (all namespaces); ask your cluster admin or run with an account that has it\n",
		err.Error())
	for _, a := range c.Actions() {
		assert.Equal(t, "selfsubjectaccessreviews", a.GetResource().Resource, "only checks: %v", a)
	}

	// In one namespace, the PodDisruptionBudget a -namespace run never touches is not asked for.
	needed, err = permissions(options{namespace: "apps", configMap: "vpa-graceful-drain/vpa-graceful-drain"})
	require.NoError(t, err)
	err = checkPermissions(context.Background(), c, needed)
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "release-finalizers needs patch on pods (namespace apps); ask your cluster admin or run with an account that has it\n", err.Error())

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
		"patch             configmaps                   the one -config-map names (none if it is empty); none with -namespace",
		"list, delete      poddisruptionbudgets.policy  in all namespaces; none with -namespace",
		"With -namespace it releases that namespace's pods only and changes nothing else",
		"-namespace string",
	} {
		assert.Contains(t, b.String(), line)
	}
}
