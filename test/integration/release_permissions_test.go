//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers"
	"function/names"
	"function/test/cluster"
)

// grant gives user exactly the accesses: a Role and RoleBinding per namespace for the
// namespaced ones, a ClusterRole and ClusterRoleBinding for the cluster-wide ones (removed
// when the test ends), and waits until the authorizer grants them.
func grant(t *testing.T, user string, accesses []authorizationv1.ResourceAttributes) {
	t.Helper()
	ctx := context.Background()
	rules := map[string][]rbacv1.PolicyRule{} // by namespace, "" cluster-wide
	for _, a := range accesses {
		res := a.Resource
		if a.Subresource != "" {
			res += "/" + a.Subresource
		}
		r := rbacv1.PolicyRule{Verbs: []string{a.Verb}, APIGroups: []string{a.Group}, Resources: []string{res}}
		if a.Name != "" {
			r.ResourceNames = []string{a.Name}
		}
		rules[a.Namespace] = append(rules[a.Namespace], r)
	}
	subjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}
	meta := metav1.ObjectMeta{Name: user}
	for ns, r := range rules {
		var err error
		if ns == "" {
			_, err = cp.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: r}, metav1.CreateOptions{})
			require.NoError(t, err)
			_, err = cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user}}, metav1.CreateOptions{})
			require.NoError(t, err)
			t.Cleanup(func() {
				_ = cp.Client.RbacV1().ClusterRoleBindings().Delete(ctx, user, metav1.DeleteOptions{})
				_ = cp.Client.RbacV1().ClusterRoles().Delete(ctx, user, metav1.DeleteOptions{})
			})
			continue
		}
		m := meta
		m.Namespace = ns
		_, err = cp.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: m, Rules: r}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: m, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}

// release-finalizers checks every permission it needs before it does anything: run by a user
// that lacks one (each in turn, then all), it changes nothing and exits 1 naming each missing
// one; run by a user with exactly the permissions its help states, it does what it says. With
// -namespace a that is a's pods only: b's held pod, every PodDisruptionBudget and the ConfigMap
// are left alone (and not asked for); without -namespace, the whole uninstall: both
// namespaces' pods released, the ConfigMap marked, the PodDisruptionBudgets pacing created
// deleted in both.
func TestIntegrationReleaseFinalizersNamesEachMissingPermission(t *testing.T) {
	ctx := context.Background()
	tool := filepath.Join(t.TempDir(), "release-finalizers")
	build := exec.Command("go", "build", "-o", tool, "./cmd/release-finalizers")
	build.Dir = cluster.RepoRoot()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	nsA, nsB, cmNS := cp.Namespace(t, "rf"), cp.Namespace(t, "rf-b"), cp.Namespace(t, "rf-cm")
	_, err = cp.Client.CoreV1().ConfigMaps(cmNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain", Namespace: cmNS}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	pdbName := handlers.PDBName("web")
	for _, ns := range []string{nsA, nsB} {
		pod := cluster.PodSpec(ns, "held", true)
		pod.Finalizers = []string{names.Finalizer}
		_, err = cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: pdbName, Namespace: ns,
			Labels: map[string]string{names.LabelManagedBy: names.Component}}}
		_, err = cp.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	const ask = "; ask your cluster admin or run with an account that has it\n"
	type need struct{ access, line string }
	namespaced := []need{
		{"get pods " + nsA, "release-finalizers needs get on pods (namespace " + nsA + ")" + ask},
		{"list pods " + nsA, "release-finalizers needs list on pods (namespace " + nsA + ")" + ask},
		{"patch pods " + nsA, "release-finalizers needs patch on pods (namespace " + nsA + ")" + ask},
		{"create events " + nsA, "release-finalizers needs create on events (namespace " + nsA + ")" + ask},
	}
	everywhere := []need{
		{"get pods -", "release-finalizers needs get on pods (all namespaces)" + ask},
		{"list pods -", "release-finalizers needs list on pods (all namespaces)" + ask},
		{"patch pods -", "release-finalizers needs patch on pods (all namespaces)" + ask},
		{"create events -", "release-finalizers needs create on events (all namespaces)" + ask},
		{"patch configmaps " + cmNS + " vpa-graceful-drain", "release-finalizers needs patch on configmaps named vpa-graceful-drain (namespace " + cmNS + ")" + ask},
		{"list poddisruptionbudgets.policy -", "release-finalizers needs list on poddisruptionbudgets.policy (all namespaces)" + ask},
		{"delete poddisruptionbudgets.policy -", "release-finalizers needs delete on poddisruptionbudgets.policy (all namespaces)" + ask},
	}
	// run runs release-finalizers with args as a new user granted the needs but those left out.
	run := func(t *testing.T, user string, needs []need, leftOut func(i int) bool, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		var granted []authorizationv1.ResourceAttributes
		for i, n := range needs {
			if !leftOut(i) {
				granted = append(granted, access(n.access))
			}
		}
		grant(t, user, granted)
		cfg, err := cp.UserConfig(user)
		require.NoError(t, err)
		require.NoError(t, cluster.WaitAuthorized(ctx, cfg, granted...))
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		require.NoError(t, cluster.WriteKubeconfig(cfg, user, kubeconfig))
		cmd := exec.Command(tool, append(args, "-config-map", cmNS+"/vpa-graceful-drain", "-settle", "100ms")...)
		cmd.Env = []string{"KUBECONFIG=" + kubeconfig, "HOME=" + t.TempDir()}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return o.String(), e.String(), exit.ExitCode()
		}
		require.NoError(t, err)
		return o.String(), e.String(), 0
	}
	// state asserts which pods still hold the finalizer, whether the ConfigMap is marked and
	// whether the PodDisruptionBudgets are still there.
	state := func(t *testing.T, heldA, heldB, marked, pdbsLeft bool) {
		t.Helper()
		for ns, held := range map[string]bool{nsA: heldA, nsB: heldB} {
			live, err := cp.Client.CoreV1().Pods(ns).Get(ctx, "held", metav1.GetOptions{})
			require.NoError(t, err)
			if held {
				assert.Equal(t, []string{names.Finalizer}, live.Finalizers, "%s/held still holds the finalizer", ns)
			} else {
				assert.Empty(t, live.Finalizers, "%s/held is released", ns)
			}
			_, err = cp.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdbName, metav1.GetOptions{})
			if pdbsLeft {
				assert.NoError(t, err, "the PodDisruptionBudget in %s is still there", ns)
			} else {
				assert.True(t, apierrors.IsNotFound(err), "the PodDisruptionBudget pacing created in %s is deleted: %v", ns, err)
			}
		}
		cm, err := cp.Client.CoreV1().ConfigMaps(cmNS).Get(ctx, "vpa-graceful-drain", metav1.GetOptions{})
		require.NoError(t, err)
		if marked {
			assert.Equal(t, "true", cm.Annotations[names.AnnotationUninstalling], "the ConfigMap is marked")
		} else {
			assert.NotContains(t, cm.Annotations, names.AnnotationUninstalling, "the ConfigMap is not marked")
		}
	}

	scopes := []struct {
		name  string
		args  []string
		needs []need
	}{
		{"-namespace a", []string{"-namespace", nsA}, namespaced},
		{"every namespace", nil, everywhere},
	}
	for _, sc := range scopes {
		for i, n := range sc.needs {
			a := access(n.access)
			t.Run(sc.name+" without "+a.Verb+" "+a.Resource, func(t *testing.T) {
				user := "rf-" + strings.ReplaceAll(strings.TrimPrefix(sc.name, "-"), " ", "-") + "-without-" + strings.ReplaceAll(a.Verb+"-"+a.Resource, ".", "-")
				stdout, stderr, code := run(t, user, sc.needs, func(j int) bool { return j == i }, sc.args...)
				assert.Equal(t, 1, code)
				assert.Equal(t, n.line, stderr)
				assert.Empty(t, stdout)
				state(t, true, true, false, true)
			})
		}
		t.Run(sc.name+" without any", func(t *testing.T) {
			user := "rf-" + strings.ReplaceAll(strings.TrimPrefix(sc.name, "-"), " ", "-") + "-without-any"
			_, stderr, code := run(t, user, sc.needs, func(int) bool { return true }, sc.args...)
			assert.Equal(t, 1, code)
			var all strings.Builder
			for _, n := range sc.needs {
				all.WriteString(n.line)
			}
			assert.Equal(t, all.String(), stderr)
			state(t, true, true, false, true)
		})
	}
	t.Run("-namespace a with exactly these: a's pod only", func(t *testing.T) {
		stdout, stderr, code := run(t, "rf-namespace-a-with-all", namespaced, func(int) bool { return false }, "-namespace", nsA)
		require.Equal(t, 0, code, "%s", stderr)
		assert.Equal(t, "released 1 pod(s) in namespace "+nsA+"\n", stdout)
		assert.Contains(t, stderr, "-namespace "+nsA+": released pods in namespace "+nsA+" only; vpa-graceful-drain is still installed")
		assert.Contains(t, stderr, "its PodDisruptionBudgets were left in every namespace; to remove all, run release-finalizers without -namespace")
		assert.NotContains(t, stderr, "marked ConfigMap")
		state(t, false, true, false, true)
	})
	t.Run("every namespace with exactly these: the whole uninstall", func(t *testing.T) {
		stdout, stderr, code := run(t, "rf-every-namespace-with-all", everywhere, func(int) bool { return false })
		require.Equal(t, 0, code, "%s", stderr)
		// Held pods other tests left in this API server are released too: at least b's.
		assert.Regexp(t, `^released [1-9][0-9]* pod\(s\)\n$`, stdout)
		assert.Contains(t, stderr, "marked ConfigMap "+cmNS+"/vpa-graceful-drain")
		assert.Regexp(t, `deleted ([2-9]|[1-9][0-9]+) PodDisruptionBudget\(s\) vpa-graceful-drain created`, stderr)
		assert.NotContains(t, stderr, "still installed")
		state(t, false, false, true, false)
	})
}
