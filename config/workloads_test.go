package config_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/config"
)

// workload is a Workload as tests write it: the gates it waits for by name.
type workload struct {
	manage bool
	grace  time.Duration
	waits  []string
}

const (
	replacement = "replacement-ready"
	endpoints   = "endpoints-gone"
)

func workloadOf(w config.Workload) workload {
	got := workload{manage: w.Manage, grace: w.GracePeriod}
	for _, g := range config.WorkloadGates() {
		if w.WaitsFor(g.Gate) {
			got.waits = append(got.waits, g.Gate)
		}
	}
	return got
}

func TestWorkloadDefaultsPerKind(t *testing.T) {
	grace := 30 * time.Second
	tests := []struct {
		name      string
		overrides string
		kind      config.Kind
		want      workload
	}{
		{"Deployment waits for its replacement", "", config.KindDeployment, workload{true, grace, []string{replacement}}},
		{"bare ReplicaSet waits for its replacement", "", config.KindReplicaSet, workload{true, grace, []string{replacement}}},
		{"StatefulSet: containers only, no grace", "", config.KindStatefulSet, workload{manage: true}},
		{"DaemonSet: containers only, no grace", "", config.KindDaemonSet, workload{manage: true}},
		{"Job not managed", "", config.KindJob, workload{grace: grace}},
		{"bare pod not managed", "", config.KindPod, workload{grace: grace}},
		{"other controllers: grace and containers", "", config.KindOther, workload{manage: true, grace: grace}},
		{"bare pods managed when configured", `{"Pod":{"manage":true}}`, config.KindPod, workload{manage: true, grace: grace}},
		{"one field overrides, the rest stays", `{"Deployment":{"waitForEndpoints":true,"gracePeriodSeconds":0}}`, config.KindDeployment,
			workload{manage: true, waits: []string{replacement, endpoints}}},
		{"a default gate turned off", `{"Deployment":{"waitForReplacement":false}}`, config.KindDeployment, workload{manage: true, grace: grace}},
		{"another kind's override does not leak", `{"Deployment":{"manage":false}}`, config.KindReplicaSet,
			workload{true, grace, []string{replacement}}},
		{"StatefulSet grace by config", `{"StatefulSet":{"gracePeriodSeconds":10}}`, config.KindStatefulSet, workload{manage: true, grace: 10 * time.Second}},
		{"StatefulSet endpoints by config", `{"StatefulSet":{"waitForEndpoints":true}}`, config.KindStatefulSet, workload{manage: true, waits: []string{endpoints}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: tt.overrides})
			require.NoError(t, err)
			assert.Equal(t, tt.want, workloadOf(cfg.Workload(tt.kind)))
		})
	}
	assert.False(t, config.Default().Workload(config.KindDeployment).WaitsFor("no-such-gate"))
}

// The table of WorkloadGates is whole: each gate has a workloadDefaults field that sets it for
// every kind that can wait for it (and is refused, saying why, for the others), and its
// defaults only where it is possible. Package drain's TestGateTable checks that the gates
// are drain's.
func TestWorkloadGateTable(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range config.WorkloadGates() {
		t.Run(g.Gate, func(t *testing.T) {
			require.NotEmpty(t, g.Gate)
			require.False(t, seen[g.Gate], "one entry per gate")
			seen[g.Gate] = true
			require.NotEmpty(t, g.Field)
			require.NotNil(t, g.Default)
			for _, k := range config.Kinds() {
				for _, b := range []bool{true, false} {
					value := fmt.Sprintf(`{%q:{%q:%t}}`, k, g.Field, b)
					cfg, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: value})
					if b && !k.CanWaitFor(g.Gate) {
						require.Error(t, err, value)
						assert.Contains(t, err.Error(), fmt.Sprintf("%s.%s: %s", k, g.Field, g.Impossible))
						continue
					}
					require.NoError(t, err, value)
					assert.Equal(t, b, cfg.Workload(k).WaitsFor(g.Gate), "%s sets the gate for %s", value, k)
				}
				if g.Default(k.Spec()) {
					assert.True(t, k.CanWaitFor(g.Gate), "%s waits by default only if it can", k)
				}
				assert.Equal(t, g.Default(k.Spec()), config.Default().Workload(k).WaitsFor(g.Gate), "%s's default", k)
			}
		})
	}
	_, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: `{"Pod":{"waitFor":true}}`})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(fields: manage, gracePeriodSeconds, waitForReplacement, waitForEndpoints)", "the error lists every field")
	assert.False(t, config.KindDeployment.CanWaitFor("no-such-gate"))
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
			assert.NotEmpty(t, s.Version, "%s: read at its API version", k)
			assert.NotEmpty(t, s.Resource, "%s: read as its resource", k)
			assert.True(t, s.InGroup(s.APIVersion()), "%s: its ownerReferences' apiVersion is its own", k)
		} else {
			assert.Empty(t, s.Group+s.Version+s.Resource, "%s: an API only for a kind that is read", k)
			assert.False(t, s.InGroup("apps/v1"), "%s: not read", k)
		}
	}
	assert.Equal(t, config.KindOther, config.Kind("Rollout").Spec().Kind, "an unknown kind is Other")
}
