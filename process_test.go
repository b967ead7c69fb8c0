package function_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"

	function "function"
	"function/config"
)

// New reads nothing: an unreadable kubeconfig only shows at Start, which reads DRY_RUN and
// LOG_LEVEL from the environment func-go hands it, with every other key.
func TestNewDoesNoIOAndStartReadsTheProcessSettings(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(broken, []byte("not: [a kubeconfig"), 0o600))
	t.Setenv("KUBECONFIG", broken)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	f := function.New(function.WithLogger(discard))
	ready, err := f.Ready(context.Background())
	assert.False(t, ready)
	assert.ErrorContains(t, err, "configuration not loaded yet", "nothing read before Start")

	require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir()}))
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	ready, err = f.Ready(context.Background())
	assert.False(t, ready)
	assert.ErrorContains(t, err, broken, "Start found the broken kubeconfig")

	tests := []struct {
		name, key, value string
	}{
		{"bad DRY_RUN", config.KeyDryRun, "perhaps"},
		{"bad LOG_LEVEL", config.KeyLogLevel, "loud"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := function.New(function.WithClient(fake.NewClientset()), function.WithLogger(discard))
			require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir(), tt.key: tt.value}))
			t.Cleanup(func() { _ = f.Stop(context.Background()) })
			ready, err := f.Ready(context.Background())
			assert.False(t, ready)
			assert.ErrorContains(t, err, tt.key)
		})
	}
	t.Run("DRY_RUN=true from Start's environment", func(t *testing.T) {
		c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
		f := started(t, c, map[string]string{config.KeyDryRun: "true"})
		reply, err := f.HandleEvent(context.Background(), sampleEvent(t, "managed-pod-added.http"))
		require.NoError(t, err)
		require.NotNil(t, reply)
		assert.Equal(t, "true", reply.Extensions()["dryrun"], "decided, not written")
	})
}
