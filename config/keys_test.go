package config_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	"function/config"
)

// upperSnake is the rule of a key's environment alias: gracePeriodSeconds is
// GRACE_PERIOD_SECONDS.
func upperSnake(key string) string {
	var b strings.Builder
	for i, r := range key {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// Every entry of the table of keys is whole: a name, its UPPER_SNAKE_CASE alias, a doc line and
// a default that parses (alone, and with every other key's). A key added to the table is
// checked here without a new row: this test says what its entry lacks.
func TestKeyTable(t *testing.T) {
	specs := config.KeySpecs()
	require.NotEmpty(t, specs)
	names, envs := map[string]bool{}, map[string]bool{}
	for _, k := range specs {
		t.Run(k.Name, func(t *testing.T) {
			require.NotEmpty(t, k.Name, "a key has a name")
			require.False(t, names[k.Name], "key names are unique")
			names[k.Name] = true
			require.True(t, unicode.IsLower(rune(k.Name[0])), "a key is camelCase")

			require.NotEmpty(t, k.Env, "a key has an environment alias")
			assert.Equal(t, upperSnake(k.Name), k.Env, "the alias is the key in UPPER_SNAKE_CASE")
			require.False(t, envs[k.Env], "aliases are unique")
			envs[k.Env] = true

			require.NotEmpty(t, strings.TrimSpace(k.Doc), "a key has a doc line")
			assert.NotContains(t, k.Doc, "\n", "one line")
			assert.True(t, strings.HasSuffix(k.Doc, "."), "a sentence: %q", k.Doc)

			cfg, err := config.Parse(map[string]string{k.Name: k.Default})
			require.NoError(t, err, "the default %q parses", k.Default)
			assert.Equal(t, config.Default(), cfg, "the default is what Default holds")
			_, err = config.Load(map[string]string{config.KeyConfigDir: t.TempDir(), k.Env: k.Default})
			require.NoError(t, err, "the alias is read")
		})
	}
	assert.Equal(t, len(specs), len(config.Keys()))
	for i, k := range config.Keys() {
		assert.Equal(t, specs[i].Name, k, "Keys follows the table")
	}
	assert.Subset(t, config.EnvNames(), config.Keys())
}

// The keys, in the order they are documented: the table's order is a contract (Keys, the
// log, the order errors are reported in).
func TestKeysInOrder(t *testing.T) {
	assert.Equal(t, []string{"gracePeriodSeconds", "drainTimeoutSeconds", "namespaceSelector", "detectVpaAnnotations", "sweepIntervalSeconds",
		"holdOn", "workloadDefaults", "ensurePodDisruptionBudget", "surgeRollout", "podUpdateThreshold", "inRecommendationBoundsEvictionLifetimeThreshold",
		"evictAfterOomThreshold", "useAdmissionControllerStatus", "surgeMaxInFlight", "surgeMaxPerMinute", "surgeCoolDown",
		"surgePendingTimeout", "surgeRolloutTimeout", "surgeMaxAttempts", "admissionControllerStatusLeaseNamespace"}, config.Keys())
}

// Default is what it was before the table (parsed from the table's defaults now).
func TestDefaultIsUnchanged(t *testing.T) {
	assert.Equal(t, config.Config{
		GracePeriod:          30 * time.Second,
		DrainTimeout:         300 * time.Second,
		Namespaces:           config.NamespaceSelector{Exclude: []string{"kube-system", "kube-public", "kube-node-lease"}},
		DetectVpaAnnotations: true,
		SweepInterval:        60 * time.Second,
		HoldOn:               config.HoldEvictions,
		Surge: config.Surge{PodUpdateThreshold: 0.1, InBoundsLifetime: 12 * time.Hour, EvictAfterOOM: 10 * time.Minute,
			UseAdmissionControllerStatus: true, MaxInFlight: 2, MaxPerMinute: 6, CoolDown: 30 * time.Minute, PendingTimeout: 5 * time.Minute,
			Timeout: 15 * time.Minute, MaxAttempts: 2, StatusLeaseNamespace: "kube-system"},
	}, config.Default())
}

// Data writes each key as the ConfigMap would, so the configuration it shows parses back to
// itself.
func TestDataRoundTrips(t *testing.T) {
	other := config.Config{GracePeriod: 15 * time.Second, DrainTimeout: 150 * time.Second,
		Namespaces: config.NamespaceSelector{Include: []string{"shop"}, Exclude: []string{"batch"}}, SweepInterval: 10 * time.Minute,
		HoldOn: config.HoldAll, Workloads: map[config.Kind]config.WorkloadOverride{config.KindPod: {Manage: ptr.To(true)},
			config.KindDeployment: {GracePeriodSeconds: ptr.To(0), WaitForEndpoints: ptr.To(true), WaitForReplacement: ptr.To(false)}},
		EnsurePDB: true,
		Surge: config.Surge{Enabled: true, PodUpdateThreshold: 0.25, InBoundsLifetime: 90 * time.Minute, EvictAfterOOM: 5 * time.Minute,
			MaxInFlight: 3, MaxPerMinute: 12, CoolDown: time.Hour, PendingTimeout: 30 * time.Second,
			Timeout: 20 * time.Minute, MaxAttempts: 3, StatusLeaseNamespace: "vpa"}}
	for name, cfg := range map[string]config.Config{"defaults": config.Default(), "every key set": other} {
		t.Run(name, func(t *testing.T) {
			data := cfg.Data()
			assert.ElementsMatch(t, config.Keys(), keys(data))
			back, err := config.Parse(data)
			require.NoError(t, err, "%v", data)
			assert.Equal(t, cfg, back)
		})
	}
	data := config.Default().Data()
	assert.Equal(t, "30", data[config.KeyGracePeriodSeconds])
	assert.Equal(t, `{"exclude":["kube-system","kube-public","kube-node-lease"]}`, data[config.KeyNamespaceSelector])
	assert.Equal(t, "{}", data[config.KeyWorkloadDefaults])
	assert.Equal(t, "0.1", data[config.KeyPodUpdateThreshold])
	assert.Equal(t, "12h0m0s", data[config.KeyInRecommendationBoundsLifetime])
	assert.Equal(t, "true", data[config.KeyUseAdmissionControllerStatus])
}

// The startup log shows every key, under its name, in the table's order, with the types it
// always had (whole seconds as numbers, switches as booleans, JSON keys as objects).
func TestLogValues(t *testing.T) {
	attrs := config.Default().LogValues()
	require.Len(t, attrs, len(config.Keys()))
	for i, k := range config.Keys() {
		assert.Equal(t, k, attrs[i].Key)
	}
	kinds := map[string]slog.Kind{}
	for _, a := range attrs {
		kinds[a.Key] = a.Value.Kind()
	}
	assert.Equal(t, slog.KindInt64, kinds[config.KeyGracePeriodSeconds])
	assert.Equal(t, slog.KindInt64, kinds[config.KeySweepIntervalSeconds])
	assert.Equal(t, slog.KindAny, kinds[config.KeyNamespaceSelector])
	assert.Equal(t, slog.KindBool, kinds[config.KeyDetectVpaAnnotations])
	assert.Equal(t, slog.KindString, kinds[config.KeyHoldOn])
	assert.Equal(t, slog.KindAny, kinds[config.KeyWorkloadDefaults])
	assert.Equal(t, slog.KindBool, kinds[config.KeySurgeRollout])
	assert.Equal(t, slog.KindString, kinds[config.KeySurgeCoolDown], "a duration as written: 30m0s")
}
