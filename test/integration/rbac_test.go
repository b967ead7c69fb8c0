//go:build integration

package integration

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"function/config"
	"function/config/live"
	"function/names"
	"function/test/cluster"
)

// The Role config/rbac.yaml gives the function for its live configuration is enough, on the
// real authorizer, to follow its ConfigMap (a list and watch limited by name) and to claim the
// sweep Lease, and gives nothing more: another ConfigMap in the same namespace stays unreadable.
func TestIntegrationConfigRoleIsEnoughAndNoMore(t *testing.T) {
	ctx := context.Background()
	ns := cp.Namespace(t, "rbac")
	role := roleFromRBACYAML(t, "vpa-graceful-drain-config")
	role.Namespace = ns
	_, err := cp.Client.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	user := "fn-" + ns
	_, err = cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "fn", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, name := range []string{"vpa-graceful-drain", "other"} {
		_, err = cp.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data: map[string]string{config.KeyGracePeriodSeconds: "7"}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	cfg, err := cp.UserConfig(user)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)

	// RBAC takes a moment to reach the authorizer's cache.
	require.Eventually(t, func() bool {
		_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "vpa-graceful-drain", metav1.GetOptions{})
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)

	applied := make(chan config.Config, 4)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	live := &live.Live{Client: client, Namespace: ns, Name: "vpa-graceful-drain", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Apply: func(c config.Config) { applied <- c }}
	require.NoError(t, live.Start(wctx, 10*time.Second), "list and watch by name are allowed")
	got := <-applied
	assert.Equal(t, 7*time.Second, got.GracePeriod)

	_, err = client.CoreV1().ConfigMaps(ns).Get(ctx, "other", metav1.GetOptions{})
	assert.True(t, apierrors.IsForbidden(err), "another ConfigMap is not readable: %v", err)
	_, err = client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "listing every ConfigMap is not allowed: %v", err)

	// The sweep Lease: created, read and claimed by name; no other Lease.
	leases := client.CoordinationV1().Leases(ns)
	_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: names.SweepLeaseName, Namespace: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	lease, err := leases.Get(ctx, names.SweepLeaseName, metav1.GetOptions{})
	require.NoError(t, err)
	holder := "replica-a"
	lease.Spec.HolderIdentity = &holder
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = cp.Client.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = leases.Get(ctx, "other", metav1.GetOptions{})
	assert.True(t, apierrors.IsForbidden(err), "another Lease is not readable: %v", err)
}

// roleFromRBACYAML reads one Role from config/rbac.yaml.
func roleFromRBACYAML(t *testing.T, name string) rbacv1.Role {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "config", "rbac.yaml"))
	require.NoError(t, err)
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		var r rbacv1.Role
		if err := yaml.Unmarshal(d, &r); err == nil && r.Kind == "Role" && r.Name == name {
			return r
		}
	}
	require.FailNow(t, "no Role "+name+" in config/rbac.yaml")
	return rbacv1.Role{}
}
