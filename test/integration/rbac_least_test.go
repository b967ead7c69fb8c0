//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"function/names"
	"function/test/cluster"
)

// appNS is any namespace of the cluster's workloads (SubjectAccessReviews need no namespace
// to exist).
const appNS = "some-app"

// access parses "verb resource[/subresource][.group] [namespace] [name]" ("-" for all
// namespaces, as kubectl's resource.group).
func access(s string) authorizationv1.ResourceAttributes {
	f := strings.Fields(s)
	a := authorizationv1.ResourceAttributes{Verb: f[0]}
	res, group, _ := strings.Cut(f[1], ".")
	a.Resource, a.Subresource, _ = strings.Cut(res, "/")
	a.Group = group
	if len(f) > 2 && f[2] != "-" {
		a.Namespace = f[2]
	}
	if len(f) > 3 {
		a.Name = f[3]
	}
	return a
}

// subject is whom the reviews ask about: the user and groups the API server authenticated a
// real token of the ServiceAccount as (a SelfSubjectReview), not names written by hand.
type subject struct {
	name string
	user authenticationv1.UserInfo
	cfg  *rest.Config
}

func serviceAccount(t *testing.T, name string) subject {
	t.Helper()
	ctx := context.Background()
	cfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, name)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	require.NoError(t, err)
	user := review.Status.UserInfo
	require.Equal(t, cluster.ServiceAccountUser(cluster.FunctionNamespace, name), user.Username)
	require.Subset(t, user.Groups, cluster.ServiceAccountGroups(cluster.FunctionNamespace))
	return subject{name: name, user: user, cfg: cfg}
}

// allowed asks the real authorizer (a SubjectAccessReview) whether s may do a.
func (s subject) allowed(ctx context.Context, client kubernetes.Interface, a authorizationv1.ResourceAttributes) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range s.user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	review, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: &a, User: s.user.Username, Groups: s.user.Groups, UID: s.user.UID, Extra: extra},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return review.Status.Allowed, nil
}

// The function's allowed accesses, with every role the test bed applies (cluster.RBACFiles:
// config/rbac.yaml and the opt-in rbac-pacing.yaml and rbac-surge.yaml): exactly what its code
// calls (the files say which call needs which).
var functionNeeds = []string{
	"get pods " + appNS, "list pods " + appNS, "list pods -", "patch pods " + appNS,
	"create events " + appNS, "create events " + cluster.FunctionNamespace,
	"get replicasets.apps " + appNS, "get deployments.apps " + appNS, "get statefulsets.apps " + appNS, "get daemonsets.apps " + appNS,
	"list endpointslices.discovery.k8s.io " + appNS,
	"list poddisruptionbudgets.policy -",
	"create poddisruptionbudgets.policy " + appNS, "delete poddisruptionbudgets.policy " + appNS, // the pacing role (rbac-pacing.yaml)
	"list verticalpodautoscalers.autoscaling.k8s.io " + appNS,
	"create tokenreviews.authentication.k8s.io", // the sender-auth role (SENDER_AUDIENCE)
	// The surge role (surgeRollout, rbac-surge.yaml): Deployments listed and patched
	// (admission-policy.yaml narrows the patch to opted-in ones and the function's own
	// annotations), a namespace's LimitRanges listed, VPA's admission controller status read.
	"list deployments.apps -", "patch deployments.apps " + appNS, "list limitranges " + appNS,
	"get leases.coordination.k8s.io kube-system vpa-admission-controller",
	// The surge budget's Lease, beside the sweep's (created with the config Role's create).
	"get leases.coordination.k8s.io " + cluster.FunctionNamespace + " " + names.SurgeLeaseName,
	"update leases.coordination.k8s.io " + cluster.FunctionNamespace + " " + names.SurgeLeaseName,
	"get configmaps " + cluster.FunctionNamespace + " vpa-graceful-drain",
	"list configmaps " + cluster.FunctionNamespace + " vpa-graceful-drain",
	"watch configmaps " + cluster.FunctionNamespace + " vpa-graceful-drain",
	"get leases.coordination.k8s.io " + cluster.FunctionNamespace + " " + names.SweepLeaseName,
	"update leases.coordination.k8s.io " + cluster.FunctionNamespace + " " + names.SweepLeaseName,
	"create leases.coordination.k8s.io " + cluster.FunctionNamespace,
}

// What the function must never be allowed.
var functionDenied = []string{
	"delete pods " + appNS, "deletecollection pods " + appNS, "create pods/eviction " + appNS, "update pods " + appNS,
	"create pods " + appNS, "watch pods -", "patch pods/status " + appNS, "create pods/exec " + appNS, "get pods/log " + appNS,
	"get secrets " + cluster.FunctionNamespace, "list secrets -", "get secrets " + appNS,
	"update configmaps " + cluster.FunctionNamespace + " vpa-graceful-drain", "patch configmaps " + cluster.FunctionNamespace + " vpa-graceful-drain",
	"delete configmaps " + cluster.FunctionNamespace + " vpa-graceful-drain",
	"get configmaps " + cluster.FunctionNamespace + " other", "list configmaps " + cluster.FunctionNamespace,
	"get configmaps " + appNS + " vpa-graceful-drain",
	"get nodes", "patch nodes",
	"update deployments.apps " + appNS, "delete deployments.apps " + appNS, "create deployments.apps " + appNS,
	"get leases.coordination.k8s.io kube-system other", "update leases.coordination.k8s.io kube-system vpa-admission-controller",
	"update deployments/scale.apps " + appNS, "list replicasets.apps " + appNS,
	"update leases.coordination.k8s.io " + cluster.FunctionNamespace + " other", "delete leases.coordination.k8s.io " + cluster.FunctionNamespace + " " + names.SweepLeaseName,
	"delete leases.coordination.k8s.io " + cluster.FunctionNamespace + " " + names.SurgeLeaseName,
	"create leases.coordination.k8s.io " + appNS,
	"get poddisruptionbudgets.policy " + appNS, "update poddisruptionbudgets.policy " + appNS, "patch poddisruptionbudgets.policy " + appNS,
	"update events " + appNS, "delete events " + appNS, "patch events " + appNS,
	"create events.events.k8s.io " + appNS, "update events.events.k8s.io " + appNS, "delete events.events.k8s.io " + appNS,
	"get limitranges " + appNS, "watch limitranges -", "create limitranges " + appNS, "patch limitranges " + appNS,
	"delete limitranges " + appNS, "deletecollection poddisruptionbudgets.policy " + appNS,
	"create verticalpodautoscalers.autoscaling.k8s.io " + appNS, "patch verticalpodautoscalers.autoscaling.k8s.io " + appNS,
	"get clusterroles.rbac.authorization.k8s.io", "create clusterroles.rbac.authorization.k8s.io", "escalate clusterroles.rbac.authorization.k8s.io",
	"bind clusterroles.rbac.authorization.k8s.io", "create clusterrolebindings.rbac.authorization.k8s.io",
	"create rolebindings.rbac.authorization.k8s.io " + cluster.FunctionNamespace,
	"delete namespaces", "create namespaces", "create serviceaccounts/token " + cluster.FunctionNamespace,
	"impersonate serviceaccounts " + cluster.FunctionNamespace, "impersonate users", "impersonate groups",
	"create customresourcedefinitions.apiextensions.k8s.io", "create validatingwebhookconfigurations.admissionregistration.k8s.io",
	"create subjectaccessreviews.authorization.k8s.io", // tokenreviews alone, not system:auth-delegator
}

// The event source only watches pods and VerticalPodAutoscalers (surge rollouts' trigger).
var sourceNeeds = []string{"get pods " + appNS, "list pods " + appNS, "watch pods " + appNS, "list pods -", "watch pods -",
	"get verticalpodautoscalers.autoscaling.k8s.io " + appNS, "list verticalpodautoscalers.autoscaling.k8s.io -",
	"watch verticalpodautoscalers.autoscaling.k8s.io -"}

var sourceDenied = []string{
	"patch pods " + appNS, "update pods " + appNS, "delete pods " + appNS, "create pods/eviction " + appNS,
	"create events " + appNS, "get secrets " + appNS, "get configmaps " + cluster.FunctionNamespace + " vpa-graceful-drain",
	"get deployments.apps " + appNS, "get nodes", "create leases.coordination.k8s.io " + cluster.FunctionNamespace,
	"list poddisruptionbudgets.policy -", "get clusterroles.rbac.authorization.k8s.io",
	"create tokenreviews.authentication.k8s.io",
}

// everyAuthenticated is what Kubernetes' bootstrap RBAC lets every authenticated user do: ask
// about itself (system:basic-user), read the public CA bundles (system:cluster-trust-bundle-
// discovery).
var everyAuthenticated = []string{
	"create selfsubjectaccessreviews.authorization.k8s.io", "create selfsubjectrulesreviews.authorization.k8s.io",
	"create selfsubjectreviews.authentication.k8s.io",
	"get clustertrustbundles.certificates.k8s.io", "list clustertrustbundles.certificates.k8s.io", "watch clustertrustbundles.certificates.k8s.io",
}

// The RBAC manifests (config/rbac.yaml, rbac-pacing.yaml, rbac-surge.yaml), applied to the
// real API server, give the function's and the source's ServiceAccounts what their code needs
// and nothing else, by the real authorizer
// (SubjectAccessReviews for the user and groups their tokens authenticate as).
func TestIntegrationLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	require.NoError(t, cp.ApplyRBAC(ctx))
	fn, source := serviceAccount(t, cluster.FunctionServiceAccount), serviceAccount(t, cluster.SourceServiceAccount)
	// RBAC reaches the authorizer's cache a moment after it is written.
	for _, s := range []struct {
		subject
		needs []string
	}{{fn, functionNeeds}, {source, sourceNeeds}} {
		var accesses []authorizationv1.ResourceAttributes
		for _, a := range s.needs {
			accesses = append(accesses, access(a))
		}
		require.NoError(t, cluster.WaitAuthorized(ctx, s.cfg, accesses...))
	}

	tests := []struct {
		subject  subject
		accesses []string
		allowed  bool
	}{
		{fn, functionNeeds, true},
		{fn, functionDenied, false},
		{source, sourceNeeds, true},
		{source, sourceDenied, false},
	}
	for _, tt := range tests {
		for _, a := range tt.accesses {
			verdict := map[bool]string{true: "allowed", false: "denied"}[tt.allowed]
			t.Run(fmt.Sprintf("%s/%s %s", tt.subject.name, verdict, cluster.Access(access(a))), func(t *testing.T) {
				got, err := tt.subject.allowed(ctx, cp.Client, access(a))
				require.NoError(t, err)
				assert.Equal(t, tt.allowed, got)
			})
		}
	}

	// The reviews speak for the real requests: the function's token is refused what they deny.
	client, err := kubernetes.NewForConfig(fn.cfg)
	require.NoError(t, err)
	err = client.CoreV1().Pods(appNS).Delete(ctx, "any", metav1.DeleteOptions{})
	assert.True(t, apierrors.IsForbidden(err), "pods delete: %v", err)
	_, err = client.CoreV1().Secrets(cluster.FunctionNamespace).List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "secrets list: %v", err)
	_, err = client.CoreV1().Pods(appNS).List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "pods list")
}

// Every resource the API server serves, every verb it supports on it (and escalate, bind,
// impersonate), in the workloads' namespace, in vpa-graceful-drain and cluster-wide: the
// ServiceAccounts are allowed exactly their needs (without names) and what every
// authenticated user may do, nothing else.
func TestIntegrationLeastPrivilegeEverythingElseDenied(t *testing.T) {
	ctx := context.Background()
	require.NoError(t, cp.ApplyRBAC(ctx))
	lists, err := cp.Client.Discovery().ServerPreferredResources()
	require.NoError(t, err)
	var all []authorizationv1.ResourceAttributes
	for _, list := range lists {
		gv, err := schemaGroupVersion(list.GroupVersion)
		require.NoError(t, err)
		for _, r := range list.APIResources {
			res, sub, _ := strings.Cut(r.Name, "/")
			scopes := []string{""}
			if r.Namespaced {
				scopes = []string{"", appNS, cluster.FunctionNamespace}
			}
			for _, ns := range scopes {
				for _, verb := range append(slices.Clone([]string(r.Verbs)), "escalate", "bind", "impersonate") {
					all = append(all, authorizationv1.ResourceAttributes{Verb: verb, Group: gv, Resource: res, Subresource: sub, Namespace: ns})
				}
			}
		}
	}
	t.Logf("%d accesses per ServiceAccount", len(all))

	// Allowed without a name: the needs, with each namespaced need cluster-wide too when it
	// comes from a ClusterRole (every need in appNS does), and in vpa-graceful-drain.
	unnamed := func(needs []string) map[string]bool {
		want := map[string]bool{}
		for _, s := range append(slices.Clone(needs), everyAuthenticated...) {
			a := access(s)
			if a.Name != "" {
				continue
			}
			if a.Namespace == appNS || a.Namespace == "" {
				for _, ns := range []string{"", appNS, cluster.FunctionNamespace} {
					a.Namespace = ns
					want[cluster.Access(a)] = true
				}
				continue
			}
			want[cluster.Access(a)] = true
		}
		return want
	}
	fast := rest.CopyConfig(cp.Config)
	fast.QPS, fast.Burst = 2000, 2000
	client, err := kubernetes.NewForConfig(fast)
	require.NoError(t, err)
	for _, tt := range []struct {
		subject subject
		needs   []string
	}{
		{serviceAccount(t, cluster.FunctionServiceAccount), functionNeeds},
		{serviceAccount(t, cluster.SourceServiceAccount), sourceNeeds},
	} {
		t.Run(tt.subject.name, func(t *testing.T) {
			want := unnamed(tt.needs)
			var mu sync.Mutex
			var got []string
			jobs := make(chan authorizationv1.ResourceAttributes)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for a := range jobs {
						ok, err := tt.subject.allowed(ctx, client, a)
						assert.NoError(t, err)
						if ok {
							mu.Lock()
							got = append(got, cluster.Access(a))
							mu.Unlock()
						}
					}
				})
			}
			served := map[string]bool{}
			for _, a := range all {
				served[cluster.Access(a)] = true
				jobs <- a
			}
			close(jobs)
			wg.Wait()
			// Only the needs of resources this API server serves can show up (no VPA CRD here).
			var wantServed []string
			for a := range want {
				if served[a] {
					wantServed = append(wantServed, a)
				}
			}
			assert.ElementsMatch(t, wantServed, got)
		})
	}
}

// schemaGroupVersion returns the group of "group/version" ("" for "v1").
func schemaGroupVersion(gv string) (string, error) {
	group, _, ok := strings.Cut(gv, "/")
	if !ok {
		if gv != "v1" {
			return "", fmt.Errorf("unexpected group version %q", gv)
		}
		return "", nil
	}
	return group, nil
}

// The opt-in rights come from the opt-in files alone: a user bound to exactly the roles of
// config/rbac.yaml (the default install) may write no PodDisruptionBudget and no Deployment, nor
// read LimitRanges or VPA's status Lease; adding rbac-pacing.yaml's roles gives pacing's rights
// only, adding rbac-surge.yaml's the surge rollouts' only. By the real authorizer.
func TestIntegrationOptInRightsOnlyFromTheirFiles(t *testing.T) {
	ctx := context.Background()
	require.NoError(t, cp.ApplyRBAC(ctx)) // the roles, by the names the files give them
	pacing := []string{"create poddisruptionbudgets.policy " + appNS, "delete poddisruptionbudgets.policy " + appNS}
	surge := []string{"list deployments.apps -", "patch deployments.apps " + appNS, "list limitranges " + appNS,
		"get leases.coordination.k8s.io kube-system vpa-admission-controller",
		"update leases.coordination.k8s.io " + cluster.FunctionNamespace + " " + names.SurgeLeaseName}
	always := []string{"get pods " + appNS, "patch pods " + appNS, "list poddisruptionbudgets.policy -", "get deployments.apps " + appNS}
	tests := []struct {
		name            string
		files           []string
		allowed, denied []string
	}{
		{"the default install", []string{"config/rbac.yaml"}, always, append(slices.Clone(pacing), surge...)},
		{"with pacing", []string{"config/rbac.yaml", "config/rbac-pacing.yaml"}, append(slices.Clone(always), pacing...), surge},
		{"with surge rollouts", []string{"config/rbac.yaml", "config/rbac-surge.yaml"}, append(slices.Clone(always), surge...), pacing},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := fmt.Sprintf("fn-opt-in-%d", i)
			var checks []authorizationv1.ResourceAttributes
			for _, file := range tt.files {
				objs, err := cluster.RBACFileObjects(file)
				require.NoError(t, err)
				for _, obj := range objs {
					// Bind the user to each role the file binds the function's account to.
					switch o := obj.(type) {
					case *rbacv1.ClusterRoleBinding:
						if o.Subjects[0].Name != cluster.FunctionServiceAccount {
							continue
						}
						_, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
							ObjectMeta: metav1.ObjectMeta{Name: user + "-" + o.Name}, RoleRef: o.RoleRef,
							Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
						}, metav1.CreateOptions{})
						require.NoError(t, err)
						name := user + "-" + o.Name
						t.Cleanup(func() {
							_ = cp.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
						})
					case *rbacv1.RoleBinding:
						if o.Subjects[0].Name != cluster.FunctionServiceAccount {
							continue
						}
						ns, name := o.Namespace, user+"-"+o.Name
						_, err := cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
							ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, RoleRef: o.RoleRef,
							Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
						}, metav1.CreateOptions{})
						require.NoError(t, err)
						t.Cleanup(func() {
							_ = cp.Client.RbacV1().RoleBindings(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
						})
					}
				}
			}
			for _, a := range tt.allowed {
				checks = append(checks, access(a))
			}
			cfg, err := cp.UserConfig(user)
			require.NoError(t, err)
			require.NoError(t, cluster.WaitAuthorized(ctx, cfg, checks...))
			s := subject{name: user, user: authenticationv1.UserInfo{Username: user, Groups: []string{"system:authenticated"}}}
			for _, a := range tt.denied {
				got, err := s.allowed(ctx, cp.Client, access(a))
				require.NoError(t, err)
				assert.False(t, got, "%s: %s", tt.name, a)
			}
		})
	}
}
