package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/config"
)

func TestWorkloadDefaultsPerKind(t *testing.T) {
	grace := 30 * time.Second
	tests := []struct {
		name      string
		overrides string
		kind      config.Kind
		want      config.Workload
	}{
		{"Deployment waits for its replacement", "", config.KindDeployment, config.Workload{Manage: true, GracePeriod: grace, WaitForReplacement: true}},
		{"bare ReplicaSet waits for its replacement", "", config.KindReplicaSet, config.Workload{Manage: true, GracePeriod: grace, WaitForReplacement: true}},
		{"StatefulSet: containers only, no grace", "", config.KindStatefulSet, config.Workload{Manage: true}},
		{"DaemonSet: containers only, no grace", "", config.KindDaemonSet, config.Workload{Manage: true}},
		{"Job not managed", "", config.KindJob, config.Workload{GracePeriod: grace}},
		{"bare pod not managed", "", config.KindPod, config.Workload{GracePeriod: grace}},
		{"other controllers: grace and containers", "", config.KindOther, config.Workload{Manage: true, GracePeriod: grace}},
		{"bare pods managed when configured", `{"Pod":{"manage":true}}`, config.KindPod, config.Workload{Manage: true, GracePeriod: grace}},
		{"one field overrides, the rest stays", `{"Deployment":{"waitForEndpoints":true,"gracePeriodSeconds":0}}`, config.KindDeployment,
			config.Workload{Manage: true, WaitForReplacement: true, WaitForEndpoints: true}},
		{"another kind's override does not leak", `{"Deployment":{"manage":false}}`, config.KindReplicaSet,
			config.Workload{Manage: true, GracePeriod: grace, WaitForReplacement: true}},
		{"StatefulSet grace by config", `{"StatefulSet":{"gracePeriodSeconds":10}}`, config.KindStatefulSet, config.Workload{Manage: true, GracePeriod: 10 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: tt.overrides})
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg.Workload(tt.kind))
		})
	}
}

func TestWorkloadAndHoldOnErrors(t *testing.T) {
	tests := []struct {
		name, key, value, wantErr string
	}{
		{"unknown kind", config.KeyWorkloadDefaults, `{"CronJob":{"manage":true}}`, `unknown kind "CronJob" (known: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, Pod, Other)`},
		{"unknown field", config.KeyWorkloadDefaults, `{"Pod":{"manged":true}}`, `unknown field "manged"`},
		{"not an object", config.KeyWorkloadDefaults, `["Pod"]`, "not a JSON object"},
		{"negative grace", config.KeyWorkloadDefaults, `{"Pod":{"gracePeriodSeconds":-1}}`, "Pod.gracePeriodSeconds: must be between 0 and 86400"},
		{"grace over the timeout", config.KeyWorkloadDefaults, `{"Other":{"gracePeriodSeconds":301}}`, "Other.gracePeriodSeconds 301 must be <= drainTimeoutSeconds (300)"},
		{"StatefulSet cannot wait for a replacement", config.KeyWorkloadDefaults, `{"StatefulSet":{"waitForReplacement":true}}`, "only Deployment and ReplicaSet pods can wait for a replacement"},
		{"bare pod has no replacement", config.KeyWorkloadDefaults, `{"Pod":{"waitForReplacement":true}}`, "only Deployment and ReplicaSet"},
		{"holdOn unknown", config.KeyHoldOn, "deletes", `must be "evictions" or "all"`},
		{"ensurePodDisruptionBudget not a bool", config.KeyEnsurePDB, "sometimes", "not a boolean"},
		{"surgeRollout not a bool", config.KeySurgeRollout, "maybe", "not a boolean"},
		{"useAdmissionControllerStatus not a bool", config.KeyUseAdmissionControllerStatus, "2", "not a boolean"},
		{"podUpdateThreshold not a number", config.KeyPodUpdateThreshold, "ten percent", "a fraction between 0 and 10"},
		{"podUpdateThreshold negative", config.KeyPodUpdateThreshold, "-0.1", "a fraction between 0 and 10"},
		{"lifetime threshold not a duration", config.KeyInRecommendationBoundsLifetime, "12", "a duration like 12h"},
		{"OOM threshold too long", config.KeyEvictAfterOOMThreshold, "200h", "between 0 and 168h"},
		{"no rollout in flight", config.KeySurgeMaxInFlight, "0", "a whole number between 1 and 1000"},
		{"rollouts a minute not a number", config.KeySurgeMaxPerMinute, "six", "a whole number between 1 and 1000"},
		{"cool-down negative", config.KeySurgeCoolDown, "-1m", "between 0s and 168h0m0s"},
		{"Pending timeout of no time", config.KeySurgePendingTimeout, "0s", "between 1s and 24h0m0s"},
		{"a rollout deadline under a minute", config.KeySurgeRolloutTimeout, "30s", "between 1m0s and 24h0m0s"},
		{"no rollout deadline", config.KeySurgeRolloutTimeout, "0", "between 1m0s and 24h0m0s"},
		{"no attempt", config.KeySurgeMaxAttempts, "0", "a whole number between 1 and 100"},
		{"Lease namespace not a name", config.KeyAdmissionControllerStatusLeaseNamespace, "Kube_System", "must be a namespace name"},
		{"Lease namespace empty", config.KeyAdmissionControllerStatusLeaseNamespace, "", "must be a namespace name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse(map[string]string{tt.key: tt.value})
			var keyErr *config.KeyError
			require.ErrorAs(t, err, &keyErr)
			assert.Equal(t, tt.key, keyErr.Key)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestKindOf(t *testing.T) {
	for in, want := range map[string]config.Kind{
		"": config.KindPod, "ReplicaSet": config.KindReplicaSet, "StatefulSet": config.KindStatefulSet,
		"DaemonSet": config.KindDaemonSet, "Job": config.KindJob, "Rollout": config.KindOther, "Deployment": config.KindDeployment,
	} {
		assert.Equal(t, want, config.KindOf(in), in)
	}
	assert.True(t, config.KindDeployment.Replaceable())
	assert.False(t, config.KindStatefulSet.Replaceable())
}

// The table of kinds is consistent: unique kinds, and the properties that imply others do.
func TestKindTable(t *testing.T) {
	seen := map[config.Kind]bool{}
	for _, k := range config.Kinds() {
		s := k.Spec()
		require.Equal(t, k, s.Kind)
		assert.False(t, seen[k], "%s listed twice", k)
		seen[k] = true
		if s.Replaceable || s.Paced || s.GapMeasured {
			assert.True(t, s.Replicated, "%s: a replacement, a budget or a gap is counted in replicas", k)
		}
		if s.Replicated {
			assert.True(t, s.Read, "%s: its replicas are read", k)
		}
		if s.Read {
			assert.True(t, s.Controller, "%s: only a controller's object is read", k)
		}
	}
	assert.Equal(t, config.KindOther, config.Kind("Rollout").Spec().Kind, "an unknown kind is Other")
}
