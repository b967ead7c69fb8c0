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

	"function/config"
	"function/handlers"
	"function/handlers/drain"
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
// one; run by a user with exactly the permissions its help states, it does the whole uninstall.
func TestIntegrationReleaseFinalizersNamesEachMissingPermission(t *testing.T) {
	ctx := context.Background()
	tool := filepath.Join(t.TempDir(), "release-finalizers")
	build := exec.Command("go", "build", "-o", tool, "./cmd/release-finalizers")
	build.Dir = cluster.RepoRoot()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	podNS, cmNS := cp.Namespace(t, "rf"), cp.Namespace(t, "rf-cm")
	_, err = cp.Client.CoreV1().ConfigMaps(cmNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain", Namespace: cmNS}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	pod := cluster.PodSpec(podNS, "held", true)
	pod.Finalizers = []string{drain.Finalizer}
	_, err = cp.Client.CoreV1().Pods(podNS).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: handlers.PDBName("web"), Namespace: podNS,
		Labels: map[string]string{handlers.LabelManagedBy: handlers.Component}}}
	_, err = cp.Client.PolicyV1().PodDisruptionBudgets(podNS).Create(ctx, pdb, metav1.CreateOptions{})
	require.NoError(t, err)

	const ask = "; ask your cluster admin or run with an account that has it\n"
	needs := []struct{ access, line string }{
		{"get pods " + podNS, "release-finalizers needs get on pods (namespace " + podNS + ")" + ask},
		{"list pods " + podNS, "release-finalizers needs list on pods (namespace " + podNS + ")" + ask},
		{"patch pods " + podNS, "release-finalizers needs patch on pods (namespace " + podNS + ")" + ask},
		{"create events " + podNS, "release-finalizers needs create on events (namespace " + podNS + ")" + ask},
		{"patch configmaps " + cmNS + " vpa-graceful-drain", "release-finalizers needs patch on configmaps named vpa-graceful-drain (namespace " + cmNS + ")" + ask},
		{"list poddisruptionbudgets.policy -", "release-finalizers needs list on poddisruptionbudgets.policy (all namespaces)" + ask},
		{"delete poddisruptionbudgets.policy -", "release-finalizers needs delete on poddisruptionbudgets.policy (all namespaces)" + ask},
	}
	// run runs release-finalizers as a new user granted the needs but those left out.
	run := func(t *testing.T, user string, leftOut func(i int) bool) (stdout, stderr string, code int) {
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
		cmd := exec.Command(tool, "-namespace", podNS, "-config-map", cmNS+"/vpa-graceful-drain", "-settle", "100ms")
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
	unchanged := func(t *testing.T) {
		t.Helper()
		live, err := cp.Client.CoreV1().Pods(podNS).Get(ctx, "held", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, []string{drain.Finalizer}, live.Finalizers, "the pod still holds the finalizer")
		cm, err := cp.Client.CoreV1().ConfigMaps(cmNS).Get(ctx, "vpa-graceful-drain", metav1.GetOptions{})
		require.NoError(t, err)
		assert.NotContains(t, cm.Annotations, config.AnnotationUninstalling, "the ConfigMap is not marked")
		_, err = cp.Client.PolicyV1().PodDisruptionBudgets(podNS).Get(ctx, pdb.Name, metav1.GetOptions{})
		assert.NoError(t, err, "the PodDisruptionBudget is still there")
	}

	for i, n := range needs {
		a := access(n.access)
		t.Run("without "+a.Verb+" "+a.Resource, func(t *testing.T) {
			stdout, stderr, code := run(t, "rf-without-"+strings.ReplaceAll(a.Verb+"-"+a.Resource, ".", "-"), func(j int) bool { return j == i })
			assert.Equal(t, 1, code)
			assert.Equal(t, n.line, stderr)
			assert.Empty(t, stdout)
			unchanged(t)
		})
	}
	t.Run("without any", func(t *testing.T) {
		_, stderr, code := run(t, "rf-without-any", func(int) bool { return true })
		assert.Equal(t, 1, code)
		var all strings.Builder
		for _, n := range needs {
			all.WriteString(n.line)
		}
		assert.Equal(t, all.String(), stderr)
		unchanged(t)
	})
	t.Run("with exactly these", func(t *testing.T) {
		stdout, stderr, code := run(t, "rf-with-all", func(int) bool { return false })
		require.Equal(t, 0, code, "%s", stderr)
		assert.Equal(t, "released 1 pod(s)\n", stdout)
		live, err := cp.Client.CoreV1().Pods(podNS).Get(ctx, "held", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, live.Finalizers)
		cm, err := cp.Client.CoreV1().ConfigMaps(cmNS).Get(ctx, "vpa-graceful-drain", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "true", cm.Annotations[config.AnnotationUninstalling])
		_, err = cp.Client.PolicyV1().PodDisruptionBudgets(podNS).Get(ctx, pdb.Name, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "the PodDisruptionBudget pacing created is deleted: %v", err)
	})
}
