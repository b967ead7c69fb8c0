package live_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"function/config"
	"function/config/live"
	"function/names"
)

// applied collects what Live hands over.
type applied struct {
	mu   sync.Mutex
	cfgs []config.Config
}

func (a *applied) apply(c config.Config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfgs = append(a.cfgs, c)
}

func (a *applied) all() []config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]config.Config(nil), a.cfgs...)
}

func configMap(data map[string]string, annotations map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain", Namespace: "vpa-graceful-drain",
		Annotations: annotations}, Data: data}
}

func startLive(t *testing.T, objs ...runtime.Object) (*fake.Clientset, *applied) {
	t.Helper()
	c := fake.NewClientset(objs...)
	a := &applied{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := &live.Live{Client: c, Namespace: "vpa-graceful-drain", Name: "vpa-graceful-drain",
		Base: map[string]string{config.KeyGracePeriodSeconds: "10"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Apply: a.apply}
	require.NoError(t, l.Start(ctx, 5*time.Second))
	return c, a
}

func update(t *testing.T, c *fake.Clientset, cm *corev1.ConfigMap) {
	t.Helper()
	_, err := c.CoreV1().ConfigMaps(cm.Namespace).Update(context.Background(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func TestLiveFollowsTheConfigMap(t *testing.T) {
	c, a := startLive(t, configMap(map[string]string{config.KeyDrainTimeoutSeconds: "120"}, nil))
	first := a.all()
	require.Len(t, first, 1, "the first configuration is in before Start returns")
	assert.Equal(t, 10*time.Second, first[0].GracePeriod, "a key the ConfigMap does not set comes from the base (env)")
	assert.Equal(t, 120*time.Second, first[0].DrainTimeout)
	assert.False(t, first[0].Uninstalling)

	update(t, c, configMap(map[string]string{config.KeyDrainTimeoutSeconds: "120", config.KeyNamespaceSelector: `{"include":["prod"]}`}, nil))
	require.Eventually(t, func() bool { return len(a.all()) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"prod"}, a.all()[1].Namespaces.Include)

	// Invalid: the last good configuration stays, a Warning Event on the ConfigMap says why.
	update(t, c, configMap(map[string]string{config.KeyDrainTimeoutSeconds: "soon"}, nil))
	require.Eventually(t, func() bool {
		evs, err := c.CoreV1().Events("vpa-graceful-drain").List(context.Background(), metav1.ListOptions{})
		return err == nil && len(evs.Items) == 1
	}, 5*time.Second, 5*time.Millisecond)
	evs, err := c.CoreV1().Events("vpa-graceful-drain").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, corev1.EventTypeWarning, evs.Items[0].Type)
	assert.Equal(t, live.EventInvalidConfiguration, evs.Items[0].Reason)
	assert.Equal(t, "ConfigMap", evs.Items[0].InvolvedObject.Kind)
	assert.Contains(t, evs.Items[0].Message, "drainTimeoutSeconds")
	assert.Len(t, a.all(), 2, "nothing applied")

	// The uninstall marker, then the ConfigMap gone: uninstall mode either way.
	update(t, c, configMap(map[string]string{config.KeyDrainTimeoutSeconds: "120"}, map[string]string{names.AnnotationUninstalling: "true"}))
	require.Eventually(t, func() bool { n := a.all(); return len(n) == 3 && n[2].Uninstalling }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, c.CoreV1().ConfigMaps("vpa-graceful-drain").Delete(context.Background(), "vpa-graceful-drain", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { n := a.all(); return len(n) == 4 && n[3].Uninstalling }, 5*time.Second, 5*time.Millisecond)
}

func TestLiveWithoutTheConfigMapIsUninstalling(t *testing.T) {
	_, a := startLive(t)
	got := a.all()
	require.Len(t, got, 1)
	assert.True(t, got[0].Uninstalling)
	assert.Equal(t, 10*time.Second, got[0].GracePeriod, "the base configuration otherwise")
}

func TestLiveWatchesOnlyItsConfigMap(t *testing.T) {
	c := fake.NewClientset(configMap(nil, nil))
	var selectors []string
	var mu sync.Mutex
	c.PrependReactor("list", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		selectors = append(selectors, a.(k8stesting.ListAction).GetListRestrictions().Fields.String())
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &live.Live{Client: c, Namespace: "vpa-graceful-drain", Name: "vpa-graceful-drain",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Apply: func(config.Config) {}}
	require.NoError(t, l.Start(ctx, 5*time.Second))
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"metadata.name=vpa-graceful-drain"}, selectors, "RBAC can be limited to that one ConfigMap")
}

func TestConfigMapRef(t *testing.T) {
	tests := []struct {
		name           string
		env            map[string]string
		wantNS, wantCM string
		wantFollow     bool
		wantErr        string
	}{
		{"unset: follow none", map[string]string{}, "", "", false, ""},
		{"namespace/name", map[string]string{config.KeyConfigMap: "ops/drain"}, "ops", "drain", true, ""},
		{"name in POD_NAMESPACE", map[string]string{config.KeyConfigMap: "drain", "POD_NAMESPACE": "ops"}, "ops", "drain", true, ""},
		{"name without a namespace outside a cluster", map[string]string{config.KeyConfigMap: "drain"}, "", "", false, "no namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, name, follow, err := config.ConfigMapRef(tt.env)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, [3]any{tt.wantNS, tt.wantCM, tt.wantFollow}, [3]any{ns, name, follow})
		})
	}
}
