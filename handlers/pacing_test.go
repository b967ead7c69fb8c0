package handlers_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/advice"
	"function/internal/testutil"
	"function/names"
)

var pdbGVR = schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}

var pdbGR = schema.GroupResource{Group: "policy", Resource: "poddisruptionbudgets"}

func pacing(c *config.Config) { c.EnsurePDB = true }

func dbStatefulSet(replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", UID: "uid-db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}, Annotations: map[string]string{names.AnnotationManaged: "true"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{gracefulContainer("db")}}}}}
}

func livePDB(t *testing.T, f *adviceFixture, name string) *policyv1.PodDisruptionBudget {
	t.Helper()
	obj, err := f.client.Tracker().Get(pdbGVR, "default", name)
	require.NoError(t, err)
	return obj.(*policyv1.PodDisruptionBudget)
}

// With ensurePodDisruptionBudget, a managed Deployment or StatefulSet of 2 or more replicas
// that no PodDisruptionBudget selects gets one, owned by the workload.
func TestPacingCreatesThePDB(t *testing.T) {
	tests := []struct {
		name      string
		cfg       func(*config.Config)
		objs      []runtime.Object
		pod       *corev1.Pod
		wantVerbs []string
		wantPDB   *policyv1.PodDisruptionBudget // nil: none created
		wantGone  []string                      // PodDisruptionBudgets deleted
		wantIDs   []string
	}{
		{name: "3-replica Deployment", cfg: pacing, objs: []runtime.Object{webDeployment(3, graceful)}, pod: webPod("web-1"),
			wantVerbs: []string{"get pods", "patch pods", "list poddisruptionbudgets", "get deployments", "create poddisruptionbudgets"},
			wantPDB: &policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Name: "web-vpa-graceful-drain", Namespace: "default",
					Labels:          map[string]string{"app.kubernetes.io/managed-by": "vpa-graceful-drain", "vpagracefuldrain.dev/owner-kind": "Deployment"},
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-web", Controller: ptr.To(false)}}},
				Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow)},
			},
			wantIDs: []string{}},
		{name: "2-replica StatefulSet", cfg: pacing, objs: []runtime.Object{dbStatefulSet(2)},
			pod:       newPod(managed, ownedBy("StatefulSet", "db"), func(p *corev1.Pod) { p.Labels = map[string]string{"app": "db"} }),
			wantVerbs: []string{"get pods", "patch pods", "list poddisruptionbudgets", "get statefulsets", "create poddisruptionbudgets"},
			wantPDB: &policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Name: "db-vpa-graceful-drain", Namespace: "default",
					Labels:          map[string]string{"app.kubernetes.io/managed-by": "vpa-graceful-drain", "vpagracefuldrain.dev/owner-kind": "StatefulSet"},
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "uid-db", Controller: ptr.To(false)}}},
				Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow)},
			},
			wantIDs: []string{}},
		{name: "1 replica: no PDB (maxUnavailable 1 of 1 paces nothing)", cfg: pacing, objs: []runtime.Object{webDeployment(1, graceful)}, pod: webPod("web-1"),
			wantVerbs: []string{"get pods", "patch pods", "list poddisruptionbudgets", "get deployments", "create events"},
			wantIDs:   []string{advice.FindingSingleReplica}},
		{name: "a PDB selects the pods already", cfg: pacing,
			objs: []runtime.Object{webDeployment(3, graceful), pdbFor("theirs", nil, map[string]string{"app": "web"})}, pod: webPod("web-1"),
			wantVerbs: []string{"get pods", "patch pods", "list poddisruptionbudgets", "get deployments"},
			wantIDs:   []string{}},
		{name: "another PDB selects the pods: pacing's own is deleted (two budgets fail every eviction)", cfg: pacing,
			objs:      []runtime.Object{webDeployment(3, graceful), ourPDB("Deployment", "web"), pdbFor("theirs", nil, map[string]string{"app": "web"})},
			pod:       webPod("web-1"),
			wantVerbs: []string{"get pods", "patch pods", "list poddisruptionbudgets", "delete poddisruptionbudgets", "get deployments"},
			wantGone:  []string{"web-vpa-graceful-drain"},
			wantIDs:   []string{}},
		{name: "pacing off: advice only", objs: []runtime.Object{webDeployment(3, graceful)}, pod: webPod("web-1"),
			wantVerbs: []string{"get pods", "patch pods", "get deployments", "list poddisruptionbudgets", "create events"},
			wantIDs:   []string{advice.FindingNoPDB}},
		{name: "a DaemonSet is not paced", cfg: pacing, objs: []runtime.Object{&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default", UID: "uid-agent"},
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{gracefulContainer("agent")}}}}}},
			pod:       newPod(managed, ownedBy("DaemonSet", "agent")),
			wantVerbs: []string{"get pods", "patch pods", "get daemonsets", "list poddisruptionbudgets"},
			wantIDs:   []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, tt.cfg, tt.objs...)
			out := f.addFinalizer(t, tt.pod)
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
			require.NotNil(t, out.Advice)
			assert.Equal(t, tt.wantIDs, ids(out.Advice.Findings), "no PDB finding once the PDB is created")
			assert.Empty(t, f.logs.String())
			if tt.wantGone == nil {
				tt.wantGone = []string{}
			}
			assert.Equal(t, tt.wantGone, deletedPDBs(t, f))
			if tt.wantPDB == nil {
				return
			}
			got := livePDB(t, f, tt.wantPDB.Name)
			got.ManagedFields = nil // the fake's field manager
			assert.Equal(t, tt.wantPDB.ObjectMeta, got.ObjectMeta)
			assert.Equal(t, tt.wantPDB.Spec, got.Spec)
		})
	}
}

// Pacing is checked on every pod that gets the finalizer (a list of the namespace's PDBs),
// not only when advice is due.
func TestPacingEveryTime(t *testing.T) {
	f := newAdviceFixture(t, false, pacing, webDeployment(3, graceful))
	f.addFinalizer(t, webPod("web-1"))
	livePDB(t, f, "web-vpa-graceful-drain")

	f.reset()
	out := f.addFinalizer(t, webPod("web-2"))
	assert.Nil(t, out.Advice, "advised already")
	assert.Equal(t, []string{"get pods", "patch pods", "list poddisruptionbudgets"}, testutil.Verbs(f.client), "the PDB selects the pod: nothing more")

	// Someone deleted it: the next pod brings it back.
	require.NoError(t, f.client.Tracker().Delete(pdbGVR, "default", "web-vpa-graceful-drain"))
	f.reset()
	out = f.addFinalizer(t, webPod("web-3"))
	assert.Nil(t, out.Advice)
	assert.Equal(t, []string{"get pods", "patch pods", "list poddisruptionbudgets", "get deployments", "create poddisruptionbudgets"}, testutil.Verbs(f.client))
	livePDB(t, f, "web-vpa-graceful-drain")
}

func TestPacingCreateOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantIDs []string
		wantLog string
	}{
		{name: "AlreadyExists (another replica created it): fine", err: apierrors.NewAlreadyExists(pdbGR, "web-vpa-graceful-drain"), wantIDs: []string{}},
		{name: "forbidden: logged, and advised", err: apierrors.NewForbidden(pdbGR, "", errors.New("no pacing role")),
			wantIDs: []string{advice.FindingNoPDB}, wantLog: "vpa-graceful-drain-pacing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, pacing, webDeployment(3, graceful))
			f.client.PrependReactor("create", "poddisruptionbudgets", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.err
			})
			out := f.addFinalizer(t, webPod("web-1"))
			require.NotNil(t, out.Advice)
			assert.Equal(t, tt.wantIDs, ids(out.Advice.Findings))
			if tt.wantLog == "" {
				assert.Empty(t, f.logs.String())
			} else {
				assert.Contains(t, f.logs.String(), tt.wantLog)
			}
		})
	}
}

// ---- clean-up ----

// deploy is a Deployment in default with uid "uid-NAME" (unless changed), its template
// annotated with ann.
func deploy(name string, replicas int32, ann map[string]string) *appsv1.Deployment {
	d := webDeployment(replicas, graceful)
	d.Name, d.UID = name, k8stypes.UID("uid-"+name)
	d.Spec.Template.Annotations = ann
	return d
}

var optedIn = map[string]string{names.AnnotationManaged: "true"}

// ourPDB is a PodDisruptionBudget pacing created for kind/owner (uid "uid-OWNER").
func ourPDB(kind, owner string) *policyv1.PodDisruptionBudget {
	p := pdbFor(handlers.PDBName(owner), map[string]string{names.LabelManagedBy: names.Component, names.LabelOwnerKind: kind},
		map[string]string{"app": owner})
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner, UID: k8stypes.UID("uid-" + owner), Controller: ptr.To(false)}}
	return p
}

// cleanupWorld: workloads in every state, each with the PDB pacing made, and PDBs it did not
// make.
func cleanupWorld() []runtime.Object {
	replaced := deploy("replaced", 3, optedIn)
	replaced.UID = "uid-replaced-2"
	noOwner := ourPDB("Deployment", "noowner")
	noOwner.OwnerReferences = nil
	theirs := pdbFor("theirs", nil, map[string]string{"app": "gone"}) // no label, its workload gone
	theirs.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "gone", UID: "uid-gone"}}
	helm := ourPDB("Deployment", "gone")
	helm.Name, helm.UID, helm.Labels = "helm", "uid-pdb-helm", map[string]string{names.LabelManagedBy: "Helm"}
	return []runtime.Object{
		deploy("healthy", 3, optedIn), ourPDB("Deployment", "healthy"),
		deploy("one", 1, optedIn), ourPDB("Deployment", "one"),
		deploy("optout", 3, map[string]string{names.AnnotationManaged: "false"}), ourPDB("Deployment", "optout"),
		deploy("vpaonly", 3, nil), ourPDB("Deployment", "vpaonly"), vpaTargeting("vpaonly", "Auto"),
		deploy("unannotated", 3, nil), ourPDB("Deployment", "unannotated"),
		replaced, ourPDB("Deployment", "replaced"),
		ourPDB("Deployment", "gone"),
		dbStatefulSet(2), ourPDB("StatefulSet", "db"),
		noOwner, theirs, helm,
	}
}

// deletedPDBs lists the PodDisruptionBudgets deleted, checking each delete had a UID
// precondition.
func deletedPDBs(t *testing.T, f *adviceFixture) []string {
	t.Helper()
	out := []string{}
	for _, a := range f.client.Actions() {
		d, ok := a.(k8stesting.DeleteAction)
		if !ok || a.GetResource().Resource != "poddisruptionbudgets" {
			continue
		}
		opts := d.GetDeleteOptions()
		if assert.NotNil(t, opts.Preconditions, d.GetName()) && assert.NotNil(t, opts.Preconditions.UID) {
			assert.Equal(t, k8stypes.UID("uid-pdb-"+d.GetName()), *opts.Preconditions.UID)
		}
		out = append(out, d.GetName())
	}
	slices.Sort(out)
	return out
}

func TestCleanupPDBs(t *testing.T) {
	obsolete := []string{"gone-vpa-graceful-drain", "noowner-vpa-graceful-drain", "one-vpa-graceful-drain", "optout-vpa-graceful-drain",
		"replaced-vpa-graceful-drain", "unannotated-vpa-graceful-drain"}
	allOurs := []string{"db-vpa-graceful-drain", "gone-vpa-graceful-drain", "healthy-vpa-graceful-drain", "noowner-vpa-graceful-drain",
		"one-vpa-graceful-drain", "optout-vpa-graceful-drain", "replaced-vpa-graceful-drain", "unannotated-vpa-graceful-drain", "vpaonly-vpa-graceful-drain"}
	tests := []struct {
		name   string
		cfg    func(*config.Config)
		dryRun bool
		noDyn  bool
		want   []string
	}{
		{name: "pacing on: only the obsolete ones", cfg: pacing, want: obsolete},
		{name: "StatefulSets no longer managed", cfg: func(c *config.Config) {
			c.EnsurePDB = true
			c.Workloads = map[config.Kind]config.WorkloadOverride{config.KindStatefulSet: {Manage: ptr.To(false)}}
		}, want: append([]string{"db-vpa-graceful-drain"}, obsolete...)},
		{name: "VPA annotations not detected: a VPA target without the annotation no longer opts in", cfg: func(c *config.Config) {
			c.EnsurePDB, c.DetectVpaAnnotations = true, false
		}, want: []string{"gone-vpa-graceful-drain", "noowner-vpa-graceful-drain", "one-vpa-graceful-drain", "optout-vpa-graceful-drain",
			"replaced-vpa-graceful-drain", "unannotated-vpa-graceful-drain", "vpaonly-vpa-graceful-drain"}},
		{name: "no dynamic client: a template without the annotation is kept (never deleted on a guess)", cfg: pacing, noDyn: true,
			want: []string{"gone-vpa-graceful-drain", "noowner-vpa-graceful-drain", "one-vpa-graceful-drain", "optout-vpa-graceful-drain", "replaced-vpa-graceful-drain"}},
		{name: "pacing off: all of ours", want: allOurs},
		{name: "uninstalling: all of ours", cfg: func(c *config.Config) { c.EnsurePDB, c.Uninstalling = true, true }, want: allOurs},
		{name: "dry-run: none", cfg: pacing, dryRun: true, want: []string{}},
		{name: "dry-run, pacing off: none", dryRun: true, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, tt.dryRun, tt.cfg, cleanupWorld()...)
			if tt.noDyn {
				f.rec.Dynamic, f.rec.Checks.Dynamic = nil, nil
			}
			f.rec.Checks.CleanupPDBs(context.Background())
			assert.Equal(t, tt.want, deletedPDBs(t, f))
			for _, a := range f.client.Actions() {
				assert.Contains(t, []string{"list", "get", "delete"}, a.GetVerb(), "reads and deletes only")
			}
			// Never a PDB without the label.
			for _, name := range []string{"theirs", "helm"} {
				livePDB(t, f, name)
			}
			assert.Empty(t, f.logs.String())
		})
	}
}

// A budget pacing made gives way at the next sweep to another that selects the same pods,
// and only then: one that selects other pods, or another of pacing's own, does not count.
func TestCleanupPDBsGivesWayToAnotherBudget(t *testing.T) {
	tests := []struct {
		name  string
		other *policyv1.PodDisruptionBudget
		want  []string
	}{
		{name: "the user's budget selects the same pods", other: pdbFor("users", nil, map[string]string{"app": "web"}),
			want: []string{"healthy-vpa-graceful-drain"}},
		{name: "an empty selector selects every pod", other: func() *policyv1.PodDisruptionBudget {
			p := pdbFor("all", nil, nil)
			p.Spec.Selector = &metav1.LabelSelector{}
			return p
		}(), want: []string{"healthy-vpa-graceful-drain"}},
		{name: "a budget for other pods", other: pdbFor("users", nil, map[string]string{"app": "db"}), want: []string{}},
		{name: "a nil selector selects nothing", other: func() *policyv1.PodDisruptionBudget {
			p := pdbFor("none", nil, nil)
			p.Spec.Selector = nil
			return p
		}(), want: []string{}},
		{name: "another of pacing's own", other: func() *policyv1.PodDisruptionBudget {
			p := ourPDB("Deployment", "other")
			p.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
			return p
		}(), want: []string{"other-vpa-graceful-drain"}}, // its Deployment is gone
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, pacing, deploy("healthy", 3, optedIn), ourPDB("Deployment", "healthy"), tt.other)
			f.rec.Checks.CleanupPDBs(context.Background())
			assert.Equal(t, tt.want, deletedPDBs(t, f))
			assert.Empty(t, f.logs.String())
			_, err := f.client.Tracker().Get(pdbGVR, "default", tt.other.Name)
			assert.Equal(t, slices.Contains(tt.want, tt.other.Name), apierrors.IsNotFound(err), "the other budget: %v", err)
		})
	}
}

func TestCleanupPDBsFailures(t *testing.T) {
	t.Run("an unreadable workload keeps its PDB", func(t *testing.T) {
		f := newAdviceFixture(t, false, pacing, deploy("healthy", 1, optedIn), ourPDB("Deployment", "healthy"))
		f.client.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewServiceUnavailable("API server away")
		})
		f.rec.Checks.CleanupPDBs(context.Background())
		assert.Equal(t, []string{}, deletedPDBs(t, f))
		assert.Contains(t, f.logs.String(), "cannot tell whether a PodDisruptionBudget is still needed")
	})
	t.Run("gone already, or replaced: no error", func(t *testing.T) {
		f := newAdviceFixture(t, false, nil, ourPDB("Deployment", "a"), ourPDB("Deployment", "b"))
		f.client.PrependReactor("delete", "poddisruptionbudgets", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.(k8stesting.DeleteAction).GetName() == "a-vpa-graceful-drain" {
				return true, nil, apierrors.NewNotFound(pdbGR, "a-vpa-graceful-drain")
			}
			return true, nil, apierrors.NewConflict(pdbGR, "b-vpa-graceful-drain", errors.New("precondition failed: UID"))
		})
		n, err := f.rec.Checks.DeletePDBs(context.Background())
		require.NoError(t, err)
		assert.Zero(t, n)
	})
	t.Run("a failed delete is counted in the error; the others are deleted", func(t *testing.T) {
		f := newAdviceFixture(t, false, nil, ourPDB("Deployment", "a"), ourPDB("Deployment", "b"))
		f.client.PrependReactor("delete", "poddisruptionbudgets", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.(k8stesting.DeleteAction).GetName() == "a-vpa-graceful-drain" {
				return true, nil, apierrors.NewInternalError(errors.New("etcd down"))
			}
			return false, nil, nil
		})
		n, err := f.rec.Checks.DeletePDBs(context.Background())
		assert.Equal(t, 1, n)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "deleting PodDisruptionBudget default/a-vpa-graceful-drain")
		_, getErr := f.client.Tracker().Get(pdbGVR, "default", "b-vpa-graceful-drain")
		assert.True(t, apierrors.IsNotFound(getErr))
	})
	t.Run("list refused", func(t *testing.T) {
		f := newAdviceFixture(t, false, nil)
		f.client.PrependReactor("list", "poddisruptionbudgets", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(pdbGR, "", errors.New("no RBAC"))
		})
		_, err := f.rec.Checks.DeletePDBs(context.Background())
		assert.True(t, apierrors.IsForbidden(err))
		f.rec.Checks.CleanupPDBs(context.Background())
		assert.Contains(t, f.logs.String(), "cleaning up PodDisruptionBudgets failed")
	})
}

// DeletePDBs (uninstall) deletes every PDB pacing created, whatever the configuration, and
// never another.
func TestDeletePDBs(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		f := newAdviceFixture(t, dryRun, pacing, cleanupWorld()...)
		n, err := f.rec.Checks.DeletePDBs(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 9, n, "dry-run %t: all of ours (in dry-run, would delete)", dryRun)
		if dryRun {
			assert.Equal(t, []string{}, deletedPDBs(t, f))
		} else {
			assert.Len(t, deletedPDBs(t, f), 9)
		}
		assert.Equal(t, []string{"list poddisruptionbudgets"}, slices.DeleteFunc(testutil.Verbs(f.client), func(v string) bool { return v == "delete poddisruptionbudgets" }),
			"no reads but the list")
		livePDB(t, f, "theirs")
		livePDB(t, f, "helm")
	}
	_, err := (&handlers.OwnerChecks{Deps: handlers.Deps{Log: discard}}).DeletePDBs(context.Background())
	assert.ErrorIs(t, err, handlers.ErrNoCluster)
}
