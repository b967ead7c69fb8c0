package function

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"function/config"
)

// A ConfigMap the function cannot read (its Role missing) never holds pods hostage: after the
// wait the function runs on the environment's configuration, and applies the ConfigMap once
// the watch can read it.
func TestStartRunsOnTheEnvironmentWhileTheConfigMapIsUnreadable(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain", Namespace: "ops"},
		Data: map[string]string{config.KeyGracePeriodSeconds: "7"}}
	c := fake.NewClientset(cm)
	var forbidden atomic.Bool
	forbidden.Store(true)
	c.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbidden.Load() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("no Role"))
		}
		return false, nil, nil
	})
	f := New(WithClient(c), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithoutSweeps())
	f.configWait = 200 * time.Millisecond
	require.NoError(t, f.Start(context.Background(), map[string]string{
		config.KeyConfigDir: t.TempDir(), config.KeyConfigMap: "ops/vpa-graceful-drain", config.KeyGracePeriodSeconds: "11"}))
	t.Cleanup(func() { _ = f.Stop(context.Background()) })

	ready, err := f.Ready(context.Background())
	require.NoError(t, err)
	assert.True(t, ready, "ready on the environment's configuration")
	p, err := f.started()
	require.NoError(t, err)
	rec := p.drains
	assert.Equal(t, 11*time.Second, rec.CurrentConfig().GracePeriod)

	forbidden.Store(false) // the Role is applied: the watch's retry reads the ConfigMap
	require.Eventually(t, func() bool { return rec.CurrentConfig().GracePeriod == 7*time.Second }, 10*time.Second, 20*time.Millisecond)
}

// The configuration log shows every key of config's table with its effective value, then
// uninstalling and dryRun.
func TestLogConfigShowsEveryKey(t *testing.T) {
	var out bytes.Buffer
	cfg := config.Default()
	cfg.GracePeriod = 7 * time.Second
	cfg.Surge.CoolDown = time.Hour
	logConfig(slog.New(slog.NewJSONHandler(&out, nil)), "configuration in force", cfg, true)
	var line map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &line), out.String())
	assert.Equal(t, "configuration in force", line["msg"])
	for _, k := range config.Keys() {
		assert.Contains(t, line, k, "the log shows %s", k)
	}
	assert.Len(t, line, 3+len(config.Keys())+2, "time, level, msg, the keys, uninstalling and dryRun: %s", out.String())
	assert.Equal(t, 7.0, line[config.KeyGracePeriodSeconds], "the effective value, in whole seconds")
	assert.Equal(t, "1h0m0s", line[config.KeySurgeCoolDown])
	assert.Equal(t, map[string]any{"exclude": []any{"kube-system", "kube-public", "kube-node-lease"}}, line[config.KeyNamespaceSelector])
	assert.Equal(t, true, line[config.KeyDetectVpaAnnotations])
	assert.Equal(t, "evictions", line[config.KeyHoldOn])
	assert.Equal(t, false, line["uninstalling"])
	assert.Equal(t, true, line["dryRun"])
}
