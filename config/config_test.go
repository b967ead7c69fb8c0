package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	"function/config"
)

// emptyDir is a CONFIG_DIR with no files, so Load never reads the real default directory.
func emptyDir(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{config.KeyConfigDir: t.TempDir()}
}

func TestDefault(t *testing.T) {
	cfg := config.Default()
	assert.Equal(t, 30*time.Second, cfg.GracePeriod)
	assert.Equal(t, 300*time.Second, cfg.DrainTimeout)
	assert.True(t, cfg.DetectVpaAnnotations)
	assert.Empty(t, cfg.Namespaces.Include)
	assert.Equal(t, []string{"kube-system", "kube-public", "kube-node-lease"}, cfg.Namespaces.Exclude)
}

func TestLoadWithNothingSetIsDefault(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"empty CONFIG_DIR":   emptyDir(t),
		"missing CONFIG_DIR": {config.KeyConfigDir: filepath.Join(t.TempDir(), "does-not-exist")},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Load(env)
			require.NoError(t, err)
			assert.Equal(t, config.Default(), cfg)
		})
	}
	cfg, err := config.Parse(nil)
	require.NoError(t, err)
	assert.Equal(t, config.Default(), cfg)
}

func TestParseValidValues(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]string
		check  func(t *testing.T, cfg config.Config)
	}{
		{"grace period", map[string]string{config.KeyGracePeriodSeconds: "45"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, 45*time.Second, cfg.GracePeriod)
			assert.Equal(t, 300*time.Second, cfg.DrainTimeout)
		}},
		{"grace period zero", map[string]string{config.KeyGracePeriodSeconds: "0"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, time.Duration(0), cfg.GracePeriod)
		}},
		{"sweep interval", map[string]string{config.KeySweepIntervalSeconds: "300"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, 5*time.Minute, cfg.SweepInterval)
		}},
		{"sweep at the lower bound", map[string]string{config.KeySweepIntervalSeconds: "5"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, 5*time.Second, cfg.SweepInterval)
		}},
		{"sweep at the upper bound", map[string]string{config.KeySweepIntervalSeconds: "900"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, 15*time.Minute, cfg.SweepInterval)
		}},
		{"grace period with spaces", map[string]string{config.KeyGracePeriodSeconds: " 60 "}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, 60*time.Second, cfg.GracePeriod)
		}},
		{"both at the one-day maximum", map[string]string{config.KeyGracePeriodSeconds: "86400", config.KeyDrainTimeoutSeconds: "86400"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, 24*time.Hour, cfg.GracePeriod)
			assert.Equal(t, 24*time.Hour, cfg.DrainTimeout)
		}},
		{"drain timeout", map[string]string{config.KeyDrainTimeoutSeconds: "600"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, 600*time.Second, cfg.DrainTimeout)
		}},
		{"drain timeout equal to grace period", map[string]string{config.KeyGracePeriodSeconds: "30", config.KeyDrainTimeoutSeconds: "30"}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, cfg.GracePeriod, cfg.DrainTimeout)
		}},
		{"selector include and exclude", map[string]string{config.KeyNamespaceSelector: `{"include":["prod","staging"],"exclude":["kube-system"]}`}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, config.NamespaceSelector{Include: []string{"prod", "staging"}, Exclude: []string{"kube-system"}}, cfg.Namespaces)
		}},
		{"selector replaces the default excludes", map[string]string{config.KeyNamespaceSelector: `{"include":["prod"]}`}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, config.NamespaceSelector{Include: []string{"prod"}}, cfg.Namespaces)
		}},
		{"empty selector selects all", map[string]string{config.KeyNamespaceSelector: "  "}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, config.NamespaceSelector{}, cfg.Namespaces)
			assert.True(t, cfg.Namespaces.Selects("kube-system"))
		}},
		{"selector empty object", map[string]string{config.KeyNamespaceSelector: `{}`}, func(t *testing.T, cfg config.Config) {
			assert.Equal(t, config.NamespaceSelector{}, cfg.Namespaces)
		}},
		{"detect false", map[string]string{config.KeyDetectVpaAnnotations: "false"}, func(t *testing.T, cfg config.Config) {
			assert.False(t, cfg.DetectVpaAnnotations)
		}},
		{"detect FALSE", map[string]string{config.KeyDetectVpaAnnotations: "FALSE"}, func(t *testing.T, cfg config.Config) {
			assert.False(t, cfg.DetectVpaAnnotations)
		}},
		{"detect 0", map[string]string{config.KeyDetectVpaAnnotations: "0"}, func(t *testing.T, cfg config.Config) {
			assert.False(t, cfg.DetectVpaAnnotations)
		}},
		{"detect yes", map[string]string{config.KeyDetectVpaAnnotations: "yes"}, func(t *testing.T, cfg config.Config) {
			assert.True(t, cfg.DetectVpaAnnotations)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(tt.values)
			require.NoError(t, err)
			tt.check(t, cfg)
		})
	}
}

func TestParseInvalidValuesNameTheKey(t *testing.T) {
	tests := []struct {
		name       string
		values     map[string]string
		wantKey    string
		wantReason string
	}{
		{"grace not a number", map[string]string{config.KeyGracePeriodSeconds: "abc"}, config.KeyGracePeriodSeconds, "not a whole number"},
		{"grace fraction", map[string]string{config.KeyGracePeriodSeconds: "1.5"}, config.KeyGracePeriodSeconds, "not a whole number"},
		{"grace with unit", map[string]string{config.KeyGracePeriodSeconds: "30s"}, config.KeyGracePeriodSeconds, "not a whole number"},
		{"grace empty", map[string]string{config.KeyGracePeriodSeconds: ""}, config.KeyGracePeriodSeconds, "not a whole number"},
		{"grace negative", map[string]string{config.KeyGracePeriodSeconds: "-1"}, config.KeyGracePeriodSeconds, "between 0 and 86400"},
		{"grace over one day", map[string]string{config.KeyGracePeriodSeconds: "86401", config.KeyDrainTimeoutSeconds: "86400"}, config.KeyGracePeriodSeconds, "between 0 and 86400"},
		{"timeout not a number", map[string]string{config.KeyDrainTimeoutSeconds: "five"}, config.KeyDrainTimeoutSeconds, "not a whole number"},
		{"timeout zero", map[string]string{config.KeyDrainTimeoutSeconds: "0", config.KeyGracePeriodSeconds: "0"}, config.KeyDrainTimeoutSeconds, "between 1 and 86400"},
		{"timeout negative", map[string]string{config.KeyDrainTimeoutSeconds: "-300"}, config.KeyDrainTimeoutSeconds, "between 1 and 86400"},
		{"timeout over one day", map[string]string{config.KeyDrainTimeoutSeconds: "86401"}, config.KeyDrainTimeoutSeconds, "between 1 and 86400"},
		{"timeout below grace", map[string]string{config.KeyGracePeriodSeconds: "60", config.KeyDrainTimeoutSeconds: "30"}, config.KeyDrainTimeoutSeconds, "must be >= gracePeriodSeconds (60)"},
		{"timeout below default grace", map[string]string{config.KeyDrainTimeoutSeconds: "10"}, config.KeyDrainTimeoutSeconds, "must be >= gracePeriodSeconds (30)"},
		{"selector bad JSON", map[string]string{config.KeyNamespaceSelector: `{"include":`}, config.KeyNamespaceSelector, "not a JSON object"},
		{"selector not JSON", map[string]string{config.KeyNamespaceSelector: `prod,staging`}, config.KeyNamespaceSelector, "not a JSON object"},
		{"selector array", map[string]string{config.KeyNamespaceSelector: `["prod"]`}, config.KeyNamespaceSelector, "not a JSON object"},
		{"selector unknown field", map[string]string{config.KeyNamespaceSelector: `{"includes":["prod"]}`}, config.KeyNamespaceSelector, `unknown field "includes"`},
		{"selector trailing data", map[string]string{config.KeyNamespaceSelector: `{"include":["a"]} {"exclude":["b"]}`}, config.KeyNamespaceSelector, "unexpected data after the JSON object"},
		{"selector invalid include name", map[string]string{config.KeyNamespaceSelector: `{"include":["Prod_NS"]}`}, config.KeyNamespaceSelector, `namespace "Prod_NS" is not a valid name`},
		{"selector invalid exclude name", map[string]string{config.KeyNamespaceSelector: `{"exclude":["-bad"]}`}, config.KeyNamespaceSelector, `namespace "-bad" is not a valid name`},
		{"selector empty name", map[string]string{config.KeyNamespaceSelector: `{"include":[""]}`}, config.KeyNamespaceSelector, `namespace "" is not a valid name`},
		{"detect not a boolean", map[string]string{config.KeyDetectVpaAnnotations: "maybe"}, config.KeyDetectVpaAnnotations, "not a boolean"},
		{"sweep not a number", map[string]string{config.KeySweepIntervalSeconds: "1m"}, config.KeySweepIntervalSeconds, "not a whole number"},
		{"sweep negative", map[string]string{config.KeySweepIntervalSeconds: "-60"}, config.KeySweepIntervalSeconds, "between 5 and 86400"},
		{"sweeps cannot be turned off", map[string]string{config.KeySweepIntervalSeconds: "0"}, config.KeySweepIntervalSeconds, "cannot be turned off"},
		{"sweep below the lower bound", map[string]string{config.KeySweepIntervalSeconds: "4"}, config.KeySweepIntervalSeconds, "between 5 and 86400"},
		{"sweep over the upper bound", map[string]string{config.KeySweepIntervalSeconds: "901"}, config.KeySweepIntervalSeconds, "between 5 and 900"},
		{"detect on", map[string]string{config.KeyDetectVpaAnnotations: "on"}, config.KeyDetectVpaAnnotations, "not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(tt.values)
			require.Error(t, err)
			assert.Equal(t, config.Config{}, cfg, "an invalid configuration returns the zero Config")
			var keyErr *config.KeyError
			require.ErrorAs(t, err, &keyErr)
			assert.Equal(t, tt.wantKey, keyErr.Key)
			assert.Contains(t, keyErr.Reason, tt.wantReason)
			assert.Contains(t, err.Error(), "config key "+tt.wantKey+"=")
			if raw, ok := tt.values[tt.wantKey]; ok && tt.wantKey != config.KeyDrainTimeoutSeconds {
				assert.Equal(t, raw, keyErr.Value)
			}
		})
	}
}

func TestParseReportsEveryInvalidKey(t *testing.T) {
	_, err := config.Parse(map[string]string{
		config.KeyGracePeriodSeconds:   "abc",
		config.KeyDrainTimeoutSeconds:  "-1",
		config.KeyNamespaceSelector:    "{",
		config.KeyDetectVpaAnnotations: "maybe",
	})
	require.Error(t, err)
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "errors are joined")
	var keys []string
	for _, e := range joined.Unwrap() {
		var keyErr *config.KeyError
		require.ErrorAs(t, e, &keyErr)
		keys = append(keys, keyErr.Key)
	}
	assert.Equal(t, []string{config.KeyGracePeriodSeconds, config.KeyDrainTimeoutSeconds, config.KeyNamespaceSelector, config.KeyDetectVpaAnnotations}, keys)
}

func TestKeyErrorMessage(t *testing.T) {
	err := &config.KeyError{Key: "gracePeriodSeconds", Value: "abc", Reason: "not a whole number of seconds"}
	assert.Equal(t, `config key gracePeriodSeconds="abc": not a whole number of seconds`, err.Error())
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	return dir
}

func TestLoadSources(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		env   map[string]string
		want  func(t *testing.T, cfg config.Config)
	}{
		{
			name:  "mounted files, trimmed",
			files: map[string]string{"gracePeriodSeconds": "10\n", "drainTimeoutSeconds": " 100 \n", "namespaceSelector": `{"include":["prod"]}` + "\n", "detectVpaAnnotations": "false\n", "sweepIntervalSeconds": "30\n", "holdOn": "all\n"},
			want: func(t *testing.T, cfg config.Config) {
				assert.Equal(t, config.Config{GracePeriod: 10 * time.Second, DrainTimeout: 100 * time.Second,
					Namespaces: config.NamespaceSelector{Include: []string{"prod"}}, DetectVpaAnnotations: false, SweepInterval: 30 * time.Second, HoldOn: config.HoldAll,
					Surge: config.Default().Surge}, cfg)
			},
		},
		{
			name:  "env beats file",
			files: map[string]string{"gracePeriodSeconds": "10", "drainTimeoutSeconds": "100"},
			env:   map[string]string{"gracePeriodSeconds": "20"},
			want: func(t *testing.T, cfg config.Config) {
				assert.Equal(t, 20*time.Second, cfg.GracePeriod)
				assert.Equal(t, 100*time.Second, cfg.DrainTimeout, "a key only in the file still comes from the file")
			},
		},
		{
			name:  "UPPER_SNAKE env beats file",
			files: map[string]string{"drainTimeoutSeconds": "100"},
			env:   map[string]string{"DRAIN_TIMEOUT_SECONDS": "200"},
			want: func(t *testing.T, cfg config.Config) {
				assert.Equal(t, 200*time.Second, cfg.DrainTimeout)
			},
		},
		{
			name: "UPPER_SNAKE aliases for every key",
			env: map[string]string{
				"GRACE_PERIOD_SECONDS":         "15",
				"DRAIN_TIMEOUT_SECONDS":        "150",
				"NAMESPACE_SELECTOR":           `{"exclude":["batch"]}`,
				"DETECT_VPA_ANNOTATIONS":       "no",
				"SWEEP_INTERVAL_SECONDS":       "600",
				"HOLD_ON":                      "all",
				"WORKLOAD_DEFAULTS":            `{"Pod":{"manage":true}}`,
				"ENSURE_POD_DISRUPTION_BUDGET": "true",
				"SURGE_ROLLOUT":                "true",
				"POD_UPDATE_THRESHOLD":         "0.2",
				"IN_RECOMMENDATION_BOUNDS_EVICTION_LIFETIME_THRESHOLD": "1h",
				"EVICT_AFTER_OOM_THRESHOLD":                            "5m",
				"USE_ADMISSION_CONTROLLER_STATUS":                      "false",
				"SURGE_MAX_IN_FLIGHT":                                  "3",
				"SURGE_MAX_PER_MINUTE":                                 "12",
				"SURGE_COOL_DOWN":                                      "1h",
				"SURGE_PENDING_TIMEOUT":                                "30s",
				"SURGE_ROLLOUT_TIMEOUT":                                "20m",
				"SURGE_MAX_ATTEMPTS":                                   "3",
				"ADMISSION_CONTROLLER_STATUS_LEASE_NAMESPACE":          "vpa",
			},
			want: func(t *testing.T, cfg config.Config) {
				assert.Equal(t, config.Config{GracePeriod: 15 * time.Second, DrainTimeout: 150 * time.Second,
					Namespaces: config.NamespaceSelector{Exclude: []string{"batch"}}, DetectVpaAnnotations: false, SweepInterval: 10 * time.Minute,
					HoldOn: config.HoldAll, Workloads: map[config.Kind]config.WorkloadOverride{config.KindPod: {Manage: ptr.To(true)}}, EnsurePDB: true,
					Surge: config.Surge{Enabled: true, PodUpdateThreshold: 0.2, InBoundsLifetime: time.Hour, EvictAfterOOM: 5 * time.Minute,
						MaxInFlight: 3, MaxPerMinute: 12, CoolDown: time.Hour, PendingTimeout: 30 * time.Second,
						Timeout: 20 * time.Minute, MaxAttempts: 3, StatusLeaseNamespace: "vpa"}}, cfg)
			},
		},
		{
			name: "camelCase beats UPPER_SNAKE",
			env:  map[string]string{"gracePeriodSeconds": "5", "GRACE_PERIOD_SECONDS": "6"},
			want: func(t *testing.T, cfg config.Config) {
				assert.Equal(t, 5*time.Second, cfg.GracePeriod)
			},
		},
		{
			name: "unrelated env ignored",
			env:  map[string]string{"PATH": "/usr/bin", "gracePeriod": "1", "GRACE_PERIOD": "2"},
			want: func(t *testing.T, cfg config.Config) {
				assert.Equal(t, config.Default(), cfg)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{config.KeyConfigDir: writeFiles(t, tt.files)}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := config.Load(env)
			require.NoError(t, err)
			tt.want(t, cfg)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("invalid file value names the key", func(t *testing.T) {
		_, err := config.Load(map[string]string{config.KeyConfigDir: writeFiles(t, map[string]string{"detectVpaAnnotations": "perhaps"})})
		var keyErr *config.KeyError
		require.ErrorAs(t, err, &keyErr)
		assert.Equal(t, config.KeyDetectVpaAnnotations, keyErr.Key)
		assert.Equal(t, "perhaps", keyErr.Value)
	})
	t.Run("invalid UPPER_SNAKE value names the camelCase key", func(t *testing.T) {
		env := emptyDir(t)
		env["GRACE_PERIOD_SECONDS"] = "-5"
		_, err := config.Load(env)
		var keyErr *config.KeyError
		require.ErrorAs(t, err, &keyErr)
		assert.Equal(t, config.KeyGracePeriodSeconds, keyErr.Key)
	})
	t.Run("env overrides a bad file value", func(t *testing.T) {
		env := map[string]string{config.KeyConfigDir: writeFiles(t, map[string]string{"gracePeriodSeconds": "bad"}), "gracePeriodSeconds": "12"}
		cfg, err := config.Load(env)
		require.NoError(t, err)
		assert.Equal(t, 12*time.Second, cfg.GracePeriod)
	})
	t.Run("unreadable file", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(dir, config.KeyGracePeriodSeconds), 0o700))
		_, err := config.Load(map[string]string{config.KeyConfigDir: dir})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "reading config file")
		assert.Contains(t, err.Error(), config.KeyGracePeriodSeconds)
		var keyErr *config.KeyError
		assert.False(t, errors.As(err, &keyErr), "an I/O error is not a KeyError")
	})
}

func TestParseSeconds(t *testing.T) {
	tests := []struct {
		in      string
		minimum int
		want    time.Duration
		wantErr string
	}{
		{"0", 0, 0, ""},
		{"1", 1, time.Second, ""},
		{"86400", 0, 24 * time.Hour, ""},
		{"\t7 ", 0, 7 * time.Second, ""},
		{"0", 1, 0, "between 1 and 86400"},
		{"86401", 0, 0, "between 0 and 86400"},
		{"1e3", 0, 0, "not a whole number"},
		{"0x10", 0, 0, "not a whole number"},
		{"", 0, 0, "not a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseSeconds(tt.in, tt.minimum)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseBool(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{"true", true, false}, {"True", true, false}, {" TRUE ", true, false}, {"1", true, false}, {"yes", true, false}, {"YES", true, false},
		{"false", false, false}, {"False", false, false}, {"0", false, false}, {"no", false, false}, {"No", false, false},
		{"", false, true}, {"t", false, true}, {"y", false, true}, {"on", false, true}, {"2", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseBool(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "not a boolean")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNamespaceSelectorSelects(t *testing.T) {
	tests := []struct {
		name string
		sel  config.NamespaceSelector
		ns   string
		want bool
	}{
		{"zero selector selects all", config.NamespaceSelector{}, "default", true},
		{"zero selector selects kube-system", config.NamespaceSelector{}, "kube-system", true},
		{"empty include = all", config.NamespaceSelector{Include: []string{}}, "anything", true},
		{"excluded", config.NamespaceSelector{Exclude: []string{"kube-system"}}, "kube-system", false},
		{"not excluded", config.NamespaceSelector{Exclude: []string{"kube-system"}}, "default", true},
		{"included", config.NamespaceSelector{Include: []string{"prod", "staging"}}, "staging", true},
		{"not in include list", config.NamespaceSelector{Include: []string{"prod"}}, "default", false},
		{"exclude wins over include", config.NamespaceSelector{Include: []string{"prod"}, Exclude: []string{"prod"}}, "prod", false},
		{"exact match only", config.NamespaceSelector{Include: []string{"prod"}}, "prod-2", false},
		{"case sensitive", config.NamespaceSelector{Include: []string{"prod"}}, "Prod", false},
		{"defaults exclude kube-public", config.Default().Namespaces, "kube-public", false},
		{"defaults exclude kube-node-lease", config.Default().Namespaces, "kube-node-lease", false},
		{"defaults select default", config.Default().Namespaces, "default", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.sel.Selects(tt.ns))
		})
	}
}

func TestEnvNames(t *testing.T) {
	names := config.EnvNames()
	for _, k := range config.Keys() {
		assert.Contains(t, names, k)
	}
	assert.Subset(t, names, []string{"CONFIG_DIR", "DRY_RUN", "LOG_LEVEL", "CONFIG_MAP", "GRACE_PERIOD_SECONDS", "SWEEP_INTERVAL_SECONDS", "DETECT_VPA_ANNOTATIONS",
		"KUBE_API_QPS", "KUBE_API_BURST", "SENDER_AUDIENCE", "SENDER_IDENTITIES"})
	assert.Len(t, names, 8+2*len(config.Keys()))
}
