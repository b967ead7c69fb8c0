//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/surge"
	"function/names"
	"function/test/cluster"
)

// The policy's messages for the writes of the opt-in modes (config/admission-policy.yaml).
const (
	refusedNotOptedIn        = "vpa-graceful-drain may write only a Deployment that has opted in (vpagracefuldrain.dev/surge-rollout: \"true\")"
	refusedOptIn             = "vpa-graceful-drain may not set, change or remove a Deployment's vpagracefuldrain.dev/surge-rollout"
	refusedDeploymentKeys    = "vpa-graceful-drain may set or remove only its own vpagracefuldrain.dev/surge-state annotation of a Deployment"
	refusedTemplateLabels    = "vpa-graceful-drain may not change the labels of a Deployment's pod template"
	refusedTemplateFinalizer = "vpa-graceful-drain may not change the finalizers of a Deployment's pod template"
	refusedTemplateOwners    = "vpa-graceful-drain may not change the ownerReferences of a Deployment's pod template"
	refusedTemplateMeta      = "vpa-graceful-drain may change only its own restart annotations in the metadata of a Deployment's pod template"
	refusedTemplateKeys      = "vpa-graceful-drain may set or remove only its own vpagracefuldrain.dev/restarted-at and vpagracefuldrain.dev/predicted-resources annotations of a Deployment's pod template"
	refusedPDBWrite          = "vpa-graceful-drain may only create or delete poddisruptionbudgets, not UPDATE poddisruptionbudgets"
	refusedPDBLabel          = "vpa-graceful-drain may create only PodDisruptionBudgets labelled app.kubernetes.io/managed-by: vpa-graceful-drain"
	refusedPDBOwner          = "vpa-graceful-drain may create a PodDisruptionBudget only for its workload W"
	refusedPDBSpec           = "vpa-graceful-drain may create a PodDisruptionBudget only as pacing does"
	refusedPDBDelete         = "vpa-graceful-drain may delete only the PodDisruptionBudgets it created"
	refusedEventWrite        = "vpa-graceful-drain may only create events, not "
	refusedEventOwn          = "vpa-graceful-drain may create only its own Events"
)

// policyFunction returns the function's client (a real token of its ServiceAccount) once the
// admission policy is in force for it and RBAC grants it the accesses.
func policyFunction(ctx context.Context, t *testing.T, accesses ...authorizationv1.ResourceAttributes) kubernetes.Interface {
	t.Helper()
	require.NoError(t, cp.ApplyRBAC(ctx)) // every RBAC manifest, then the policy and its binding
	cfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	require.NoError(t, err)
	require.NoError(t, cluster.WaitAdmissionPolicy(ctx, cp.Client, cfg))
	require.NoError(t, cluster.WaitAuthorized(ctx, cfg, accesses...))
	fn, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return fn
}

// carelessGrant binds the function's ServiceAccount, in ns, to a Role of the writes its own
// roles do not grant (a careless RoleBinding of an operator), and waits until the authorizer
// grants them: a refusal of them is then the admission policy's, not RBAC's.
func carelessGrant(ctx context.Context, t *testing.T, ns string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	role, err := cp.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "careless", Namespace: ns}, Rules: rules}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "careless", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: cluster.FunctionNamespace, Name: cluster.FunctionServiceAccount}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	require.NoError(t, err)
	var accesses []authorizationv1.ResourceAttributes
	for _, r := range rules {
		for _, res := range r.Resources {
			resource, sub, _ := strings.Cut(res, "/")
			for _, v := range r.Verbs {
				accesses = append(accesses, authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Group: r.APIGroups[0], Resource: resource, Subresource: sub})
			}
		}
	}
	require.NoError(t, cluster.WaitAuthorized(ctx, cfg, accesses...))
}

// assertRefused checks that err is the policy's 403 with message want.
func assertRefused(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err)
	assert.True(t, apierrors.IsForbidden(err), "403, not a 422 the function would take for a failed guard: %v", err)
	assert.True(t, cluster.IsAdmissionPolicyRefusal(err), "refused by the policy: %v", err)
	assert.Contains(t, err.Error(), "denied request: "+want)
}

// optInDeployment creates, as the admin, a 1-replica Deployment as surge rollouts find it
// (maxSurge 1, maxUnavailable 0, its last rollout recorded complete: no controller runs here),
// opted in or not, with someone else's annotation on it and on its template and a template
// label its selector does not use.
func optInDeployment(ctx context.Context, t *testing.T, ns, name string, optedIn bool) *appsv1.Deployment {
	t.Helper()
	annotations := map[string]string{"example.com/keep": "1"}
	if optedIn {
		annotations[names.AnnotationSurgeRollout] = "true"
	}
	selector := map[string]string{"app": name}
	d, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: selector, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "frontend"}, Annotations: map[string]string{"example.com/keep": "1"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10"), corev1.ResourceMemory: resource.MustParse("1Gi")}}}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	d, err = cp.Client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	return d
}

// optInRestartPatch is the function's own restart of d, as surge.Patch writes it, decided as
// though d had opted in (the write a stolen token would make to restart any Deployment).
func optInRestartPatch(t *testing.T, d *appsv1.Deployment) []byte {
	t.Helper()
	opted := d.DeepCopy()
	opted.Annotations[names.AnnotationSurgeRollout] = "true"
	dec, _ := restart(t, opted)
	patch, err := surge.Patch(d, dec)
	require.NoError(t, err)
	return patch
}

// With surge rollouts, a real token of the function's account may write only a Deployment that
// had already opted in, never the opt-in itself, and in it only its own state annotation and
// its pod template's restart annotations: every other change of the template's metadata is
// refused with a 403. The function's own restart, abort and skip still pass, and the admin's
// same writes are not narrowed.
func TestIntegrationAdmissionPolicyDeploymentOptIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fn := policyFunction(ctx, t, authorizationv1.ResourceAttributes{Verb: "patch", Group: "apps", Resource: "deployments"})
	annotation := func(key string) string { return "/metadata/annotations/" + jsonPointerEscape(key) }
	template := func(key string) string { return "/spec/template/metadata/annotations/" + jsonPointerEscape(key) }
	static := func(ops ...[]any) func(*testing.T, *appsv1.Deployment) []byte {
		return func(t *testing.T, _ *appsv1.Deployment) []byte { return jsonPatch(t, ops...) }
	}
	tests := []struct {
		name    string
		optedIn bool // the Deployment has opted in before the write
		// patch is the JSON patch, built on the Deployment as the function would read it (the
		// function's own guard ops test its uid and resourceVersion).
		patch func(t *testing.T, d *appsv1.Deployment) []byte
		// refused is the policy's message when the function's token is refused; "" when it may.
		refused string
	}{
		// What the function writes (surge.Patch of its own decisions).
		{name: "the function's restart", optedIn: true, patch: restartPatch},
		{name: "the function's abort", optedIn: true, patch: func(t *testing.T, d *appsv1.Deployment) []byte {
			// Restarted (as the admin here), then the abort decided on the restarted Deployment.
			restarted, err := cp.Client.AppsV1().Deployments(d.Namespace).Patch(context.Background(), d.Name, types.JSONPatchType, restartPatch(t, d), metav1.PatchOptions{})
			require.NoError(t, err)
			_, v := restart(t, d)
			restarted.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}
			abort := surge.Decide(surge.DecideInput{Input: surge.Input{Deployment: restarted, VPA: v, Settings: surge.DefaultSettings()},
				Enabled: true, Limits: surge.LimitsOf(config.Default().Surge), Now: time.Now().UTC()})
			require.Equal(t, surge.Abort, abort.Action, abort.Reason)
			patch, err := surge.Patch(restarted, abort)
			require.NoError(t, err)
			return patch
		}},
		{name: "the function's skip (its state alone)", optedIn: true, patch: func(t *testing.T, d *appsv1.Deployment) []byte {
			_, v := restart(t, d)
			skip := surge.Decide(surge.DecideInput{Input: surge.Input{Deployment: d, VPA: v, AdmissionController: false, Settings: surge.DefaultSettings()},
				Enabled: true, Limits: surge.LimitsOf(config.Default().Surge), Now: time.Now().UTC()})
			require.Equal(t, surge.Skip, skip.Action, skip.Reason)
			patch, err := surge.Patch(d, skip)
			require.NoError(t, err)
			return patch
		}},

		// What a stolen token would write. The opt-in is the owner's alone.
		{name: "opt a Deployment in", patch: static([]any{"add", annotation(names.AnnotationSurgeRollout), "true"}),
			refused: refusedNotOptedIn},
		{name: "restart one that has not opted in", patch: optInRestartPatch, refused: refusedNotOptedIn},
		{name: "restarted-at in the template of one that has not opted in",
			patch: static([]any{"add", template(names.AnnotationRestartedAt), "2030-01-01T00:00:00Z"}), refused: refusedNotOptedIn},
		{name: "its state on one that has not opted in",
			patch: static([]any{"add", annotation(names.AnnotationSurgeState), `{"phase":"completed"}`}), refused: refusedNotOptedIn},
		{name: "remove the opt-in", optedIn: true, patch: static([]any{"remove", annotation(names.AnnotationSurgeRollout)}),
			refused: refusedOptIn},
		{name: "change the opt-in", optedIn: true, patch: static([]any{"replace", annotation(names.AnnotationSurgeRollout), "false"}),
			refused: refusedOptIn},
		{name: "another vpagracefuldrain.dev/ annotation on the Deployment", optedIn: true,
			patch: static([]any{"add", annotation("vpagracefuldrain.dev/other"), "1"}), refused: refusedDeploymentKeys},
		// The pod template's metadata, but for the restart's own two annotations.
		{name: "a template finalizer", optedIn: true,
			patch: static([]any{"add", "/spec/template/metadata/finalizers", []string{"example.com/hang"}}), refused: refusedTemplateFinalizer},
		{name: "a template finalizer, with the function's restart", optedIn: true, patch: func(t *testing.T, d *appsv1.Deployment) []byte {
			var ops []map[string]any
			require.NoError(t, json.Unmarshal(restartPatch(t, d), &ops))
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/metadata/finalizers", "value": []string{"example.com/hang"}})
			b, err := json.Marshal(ops)
			require.NoError(t, err)
			return b
		}, refused: refusedTemplateFinalizer},
		{name: "a template ownerReference", optedIn: true, patch: static([]any{"add", "/spec/template/metadata/ownerReferences", []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: "evil", UID: "6b1c0a7e-7a35-4c2c-9a57-3f6f3ad1a001"}}}), refused: refusedTemplateOwners},
		{name: "change a template label", optedIn: true,
			patch: static([]any{"replace", "/spec/template/metadata/labels/tier", "backend"}), refused: refusedTemplateLabels},
		{name: "remove a template label", optedIn: true,
			patch: static([]any{"remove", "/spec/template/metadata/labels/tier"}), refused: refusedTemplateLabels},
		{name: "a template generateName", optedIn: true,
			patch: static([]any{"add", "/spec/template/metadata/generateName", "evil-"}), refused: refusedTemplateMeta},
		{name: "change another template annotation", optedIn: true,
			patch: static([]any{"replace", template("example.com/keep"), "2"}), refused: refusedTemplateKeys},
		{name: "remove another template annotation", optedIn: true,
			patch: static([]any{"remove", template("example.com/keep")}), refused: refusedTemplateKeys},
		// A key under the function's prefix that is no restart's: a pod override of its drain.
		{name: "another vpagracefuldrain.dev/ template annotation", optedIn: true,
			patch: static([]any{"add", template(names.AnnotationGracePeriod), "0"}), refused: refusedTemplateKeys},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := cp.Namespace(t, fmt.Sprintf("vap-optin-%d", i))
			d := optInDeployment(ctx, t, ns, "web", tt.optedIn)
			patch := tt.patch(t, d)
			live, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
			require.NoError(t, err)
			written, err := fn.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: names.Component})
			if tt.refused == "" {
				require.NoError(t, err)
				assert.Equal(t, live.Spec.Template.Spec, written.Spec.Template.Spec, "the pod spec as it was")
				assert.Equal(t, "true", written.Annotations[names.AnnotationSurgeRollout], "still opted in")
				return
			}
			assertRefused(t, err, tt.refused)
			after, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, live.ResourceVersion, after.ResourceVersion, "the Deployment is unchanged")

			// The admin is not narrowed: the same write, on a Deployment as it was, passes.
			admin := optInDeployment(ctx, t, ns, "web-admin", tt.optedIn)
			_, err = cp.Client.AppsV1().Deployments(ns).Patch(ctx, admin.Name, types.JSONPatchType, tt.patch(t, admin), metav1.PatchOptions{})
			require.NoError(t, err, "as the admin")
		})
	}
}

// pacingPDB is the PodDisruptionBudget pacing creates for the workload (handlers/pacing.go's
// ensurePDB, field by field): TestIntegrationAdmissionPolicyPacingCreatesItsPDB checks the
// real one passes too.
func pacingPDB(kind config.Kind, name string, uid types.UID, selector map[string]string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{
			Name:   handlers.PDBName(name),
			Labels: map[string]string{names.LabelManagedBy: names.Component, names.LabelOwnerKind: string(kind)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: string(kind), Name: name, UID: uid,
				Controller: ptr.To(false)}},
		},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             ptr.To(intstr.FromInt32(1)),
			Selector:                   &metav1.LabelSelector{MatchLabels: selector},
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
}

// With pacing, a real token of the function's account may create a PodDisruptionBudget only as
// pacing builds one (its label, one ownerReference to the workload it is named after,
// maxUnavailable 1) and delete only the labelled ones; it may update none, even a labelled
// one, were RBAC to grant it.
func TestIntegrationAdmissionPolicyPDBs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := cp.Namespace(t, "vap-pdb")
	fn := policyFunction(ctx, t,
		authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "policy", Resource: "poddisruptionbudgets"},
		authorizationv1.ResourceAttributes{Namespace: ns, Verb: "delete", Group: "policy", Resource: "poddisruptionbudgets"})
	carelessGrant(ctx, t, ns, rbacv1.PolicyRule{APIGroups: []string{"policy"},
		Resources: []string{"poddisruptionbudgets", "poddisruptionbudgets/status"}, Verbs: []string{"update", "patch"}})

	// The workloads the budgets are for (their UIDs, as pacing reads them).
	web := optInDeployment(ctx, t, ns, "web", false)
	db, err := cp.Client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "busybox"}}}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	webPDB := func(change func(*policyv1.PodDisruptionBudget)) func() *policyv1.PodDisruptionBudget {
		return func() *policyv1.PodDisruptionBudget {
			p := pacingPDB(config.KindDeployment, web.Name, web.UID, web.Spec.Selector.MatchLabels)
			if change != nil {
				change(p)
			}
			return p
		}
	}
	// existing creates, as the admin, a budget with the given labels for the write to act on.
	existing := func(name string, labels map[string]string) *policyv1.PodDisruptionBudget {
		p, err := cp.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return p
	}
	labelled := map[string]string{names.LabelManagedBy: names.Component, names.LabelOwnerKind: string(config.KindDeployment)}
	del := func(p *policyv1.PodDisruptionBudget) error {
		return fn.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	}
	patch := func(body string) func(p *policyv1.PodDisruptionBudget) error {
		return func(p *policyv1.PodDisruptionBudget) error {
			_, err := fn.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, p.Name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
			return err
		}
	}

	tests := []struct {
		name string
		// create is the budget the function's token creates; else it writes to an existing one.
		create func() *policyv1.PodDisruptionBudget
		// labels of the existing budget (nil: unlabelled), and the write to it.
		labels  map[string]string
		write   func(p *policyv1.PodDisruptionBudget) error
		refused string
	}{
		// What pacing writes.
		{name: "create a Deployment's budget as pacing does", create: webPDB(nil)},
		{name: "create a StatefulSet's budget as pacing does", create: func() *policyv1.PodDisruptionBudget {
			return pacingPDB(config.KindStatefulSet, db.Name, db.UID, db.Spec.Selector.MatchLabels)
		}},
		{name: "delete a labelled budget", labels: labelled, write: del},

		// What a stolen token would write.
		{name: "delete an unlabelled budget", write: del, refused: refusedPDBDelete},
		{name: "delete a budget labelled managed by another", labels: map[string]string{names.LabelManagedBy: "helm"}, write: del,
			refused: refusedPDBDelete},
		{name: "update a labelled budget", labels: labelled, write: patch(`{"spec":{"maxUnavailable":0}}`), refused: refusedPDBWrite},
		{name: "update a labelled budget's labels only", labels: labelled, write: patch(`{"metadata":{"labels":{"x":"1"}}}`),
			refused: refusedPDBWrite},
		{name: "update an unlabelled budget", write: patch(`{"spec":{"maxUnavailable":0}}`), refused: refusedPDBWrite},
		{name: "update a budget's status", labels: labelled, write: func(p *policyv1.PodDisruptionBudget) error {
			_, err := fn.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, p.Name, types.MergePatchType,
				[]byte(`{"status":{"disruptionsAllowed":5}}`), metav1.PatchOptions{}, "status")
			return err
		}, refused: refusedPDBWrite + "/status"},
		{name: "create without the label", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			delete(p.Labels, names.LabelManagedBy)
		}), refused: refusedPDBLabel},
		{name: "create labelled managed by another", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Labels[names.LabelManagedBy] = "helm"
		}), refused: refusedPDBLabel},
		{name: "create without an ownerReference", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.OwnerReferences = nil
		}), refused: refusedPDBOwner},
		{name: "create owned by another workload than it is named after", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.OwnerReferences[0].Name = "other"
		}), refused: refusedPDBOwner},
		{name: "create named after no workload", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Name = "evil"
		}), refused: refusedPDBOwner},
		{name: "create owned by a DaemonSet", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.OwnerReferences[0].Kind, p.Labels[names.LabelOwnerKind] = "DaemonSet", "DaemonSet"
		}), refused: refusedPDBOwner},
		{name: "create owned by a core object", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.OwnerReferences[0].APIVersion = "v1"
		}), refused: refusedPDBOwner},
		{name: "create with a wrong owner-kind label", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Labels[names.LabelOwnerKind] = string(config.KindStatefulSet)
		}), refused: refusedPDBOwner},
		{name: "create with two ownerReferences", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: db.Name, UID: db.UID})
		}), refused: refusedPDBOwner},
		{name: "create as its workload's controller", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.OwnerReferences[0].Controller = ptr.To(true)
		}), refused: refusedPDBOwner},
		{name: "create with maxUnavailable 0", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(0))
		}), refused: refusedPDBSpec},
		{name: "create with minAvailable", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Spec.MaxUnavailable, p.Spec.MinAvailable = nil, ptr.To(intstr.FromString("100%"))
		}), refused: refusedPDBSpec},
		{name: "create without AlwaysAllow", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Spec.UnhealthyPodEvictionPolicy = nil
		}), refused: refusedPDBSpec},
		{name: "create with an empty selector (every pod of the namespace)", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Spec.Selector = &metav1.LabelSelector{}
		}), refused: refusedPDBSpec},
		{name: "create with a finalizer", create: webPDB(func(p *policyv1.PodDisruptionBudget) {
			p.Finalizers = []string{"example.com/keep"}
		}), refused: refusedPDBSpec},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.create != nil {
				p := tt.create()
				_, err := fn.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, p, metav1.CreateOptions{FieldManager: names.Component})
				if err == nil { // its name is free again for the next case, refused or not
					t.Cleanup(func() {
						_ = cp.Client.PolicyV1().PodDisruptionBudgets(ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{})
					})
				}
				if tt.refused == "" {
					require.NoError(t, err)
					return
				}
				assertRefused(t, err, tt.refused)
				_, err = cp.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, p.Name, metav1.GetOptions{})
				assert.True(t, apierrors.IsNotFound(err), "nothing created: %v", err)
				return
			}
			p := existing(fmt.Sprintf("pdb-%d", i), tt.labels)
			err := tt.write(p)
			if tt.refused == "" {
				require.NoError(t, err)
				return
			}
			assertRefused(t, err, tt.refused)
			after, err := cp.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, p.Name, metav1.GetOptions{})
			require.NoError(t, err, "still there")
			assert.Equal(t, p.ResourceVersion, after.ResourceVersion, "unchanged")
		})
	}

	t.Run("the admin is not narrowed", func(t *testing.T) {
		p := existing("users", nil)
		_, err := cp.Client.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, p.Name, types.MergePatchType, []byte(`{"spec":{"maxUnavailable":0}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		require.NoError(t, cp.Client.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}))
	})
}

// The real pacing (handlers' ensurePDB, run by a Reconciler on a real token of the function's
// account, under the policy): the budget it creates for a managed 2-replica Deployment passes.
func TestIntegrationAdmissionPolicyPacingCreatesItsPDB(t *testing.T) {
	cfg := config.Default()
	cfg.EnsurePDB = true
	f := newFixture(t, cfg)
	selector := map[string]string{"app": "paced"}
	d, err := cp.Client.AppsV1().Deployments(f.ns).Create(f.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "paced"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: selector},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	rs, err := cp.Client.AppsV1().ReplicaSets(f.ns).Create(f.ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "paced-1", Labels: selector, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: d.Spec.Template},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	pod := cluster.PodSpec(f.ns, "paced-1-a", true)
	for k, v := range selector {
		pod.Labels[k] = v
	}
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}
	pod, err = cp.Client.CoreV1().Pods(f.ns).Create(f.ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	pod, err = cluster.MarkRunning(f.ctx, cp.Client, pod)
	require.NoError(t, err)

	f.reconcile(pod)
	pdb, err := cp.Client.PolicyV1().PodDisruptionBudgets(f.ns).Get(f.ctx, handlers.PDBName(d.Name), metav1.GetOptions{})
	require.NoError(t, err, "pacing created its budget under the policy")
	assert.Equal(t, names.Component, pdb.Labels[names.LabelManagedBy])
	require.Len(t, pdb.OwnerReferences, 1)
	assert.Equal(t, d.UID, pdb.OwnerReferences[0].UID)
	require.NotEmpty(t, pdb.ManagedFields)
	assert.Equal(t, names.Component, pdb.ManagedFields[0].Manager, "written by the function")

	// And the function's token may delete it again (the sweeps' clean-up).
	fn, err := kubernetes.NewForConfig(functionConfig(t))
	require.NoError(t, err)
	require.NoError(t, fn.PolicyV1().PodDisruptionBudgets(f.ns).Delete(f.ctx, pdb.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pdb.UID}}))
}

// A real token of the function's account may create Events, as handlers' APIEventRecorder
// writes them, and nothing else: no update or delete of an Event (were RBAC to grant them), no
// Event that claims another reporting controller, in either API group.
func TestIntegrationAdmissionPolicyEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := cp.Namespace(t, "vap-events")
	fn := policyFunction(ctx, t, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "events"})
	carelessGrant(ctx, t, ns,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"update", "patch", "delete"}},
		rbacv1.PolicyRule{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "update", "patch", "delete"}})
	pod := policyPod(t, ns, "subject", false)
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: pod.Name, UID: pod.UID}
	now := metav1.NewTime(time.Now())
	// existing creates, as the admin, an Event as handlers' APIEventRecorder writes one, for
	// the write to act on.
	existing := func(t *testing.T) *corev1.Event {
		e, err := cp.Client.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + "."},
			InvolvedObject: ref, Reason: "DrainStarted", Message: "recorded", Type: corev1.EventTypeNormal,
			Source: corev1.EventSource{Component: names.Component}, ReportingController: "vpagracefuldrain.dev/" + names.Component,
			ReportingInstance: names.Component, FirstTimestamp: now, LastTimestamp: now, Count: 1}, metav1.CreateOptions{})
		require.NoError(t, err)
		return e
	}
	eventsV1 := func(controller string) *eventsv1.Event {
		// events.k8s.io validates generateName as a name: it must end alphanumeric (no ".").
		return &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + "-"}, EventTime: metav1.NewMicroTime(time.Now()),
			Regarding: ref, Reason: "Test", Note: "note", Type: corev1.EventTypeNormal, Action: "Test",
			ReportingController: controller, ReportingInstance: names.Component}
	}
	own := "vpagracefuldrain.dev/" + names.Component

	tests := []struct {
		name    string
		write   func(t *testing.T) error
		refused string
	}{
		// What the function writes.
		{name: "record an Event as the function does", write: func(t *testing.T) error {
			return handlers.APIEventRecorder{Client: fn, Now: time.Now}.RecordFor(ctx, ref, corev1.EventTypeWarning, "DrainTimedOut", "a message")
		}},
		{name: "events.k8s.io: its own Event (were RBAC to grant it)", write: func(t *testing.T) error {
			_, err := fn.EventsV1().Events(ns).Create(ctx, eventsV1(own), metav1.CreateOptions{})
			return err
		}},

		// What a stolen token would write.
		{name: "update an Event", write: func(t *testing.T) error {
			e := existing(t)
			e.Message = "rewritten"
			_, err := fn.CoreV1().Events(ns).Update(ctx, e, metav1.UpdateOptions{})
			return err
		}, refused: refusedEventWrite + "UPDATE events"},
		{name: "patch an Event", write: func(t *testing.T) error {
			e := existing(t)
			_, err := fn.CoreV1().Events(ns).Patch(ctx, e.Name, types.MergePatchType, []byte(`{"count":100}`), metav1.PatchOptions{})
			return err
		}, refused: refusedEventWrite + "UPDATE events"},
		{name: "delete an Event", write: func(t *testing.T) error {
			e := existing(t)
			return fn.CoreV1().Events(ns).Delete(ctx, e.Name, metav1.DeleteOptions{})
		}, refused: refusedEventWrite + "DELETE events"},
		{name: "an Event as the kubelet", write: func(t *testing.T) error {
			_, err := fn.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + "."},
				InvolvedObject: ref, Reason: "Killing", Message: "forged", Type: corev1.EventTypeNormal,
				Source: corev1.EventSource{Component: "kubelet"}, ReportingController: "kubelet", ReportingInstance: "node-1",
				FirstTimestamp: now, LastTimestamp: now, Count: 1}, metav1.CreateOptions{})
			return err
		}, refused: refusedEventOwn},
		{name: "an Event of no reporting controller", write: func(t *testing.T) error {
			_, err := fn.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + "."},
				InvolvedObject: ref, Reason: "Forged", Message: "forged", Type: corev1.EventTypeNormal,
				FirstTimestamp: now, LastTimestamp: now, Count: 1}, metav1.CreateOptions{})
			return err
		}, refused: refusedEventOwn},
		{name: "events.k8s.io: an Event as another controller", write: func(t *testing.T) error {
			_, err := fn.EventsV1().Events(ns).Create(ctx, eventsV1("kubelet"), metav1.CreateOptions{})
			return err
		}, refused: refusedEventOwn},
		{name: "events.k8s.io: update an Event", write: func(t *testing.T) error {
			e, err := cp.Client.EventsV1().Events(ns).Create(ctx, eventsV1(own), metav1.CreateOptions{})
			require.NoError(t, err)
			// events.k8s.io lets only an Event's series change.
			e.Series = &eventsv1.EventSeries{Count: 100, LastObservedTime: metav1.NewMicroTime(time.Now())}
			_, err = fn.EventsV1().Events(ns).Update(ctx, e, metav1.UpdateOptions{})
			return err
		}, refused: refusedEventWrite + "UPDATE events"},
		{name: "events.k8s.io: delete an Event", write: func(t *testing.T) error {
			e, err := cp.Client.EventsV1().Events(ns).Create(ctx, eventsV1(own), metav1.CreateOptions{})
			require.NoError(t, err)
			return fn.EventsV1().Events(ns).Delete(ctx, e.Name, metav1.DeleteOptions{})
		}, refused: refusedEventWrite + "DELETE events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write(t)
			if tt.refused == "" {
				require.NoError(t, err)
				return
			}
			assertRefused(t, err, tt.refused)
		})
	}
}
