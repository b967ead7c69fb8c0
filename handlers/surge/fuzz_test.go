package surge_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"

	"function/handlers/surge"
	"function/names"
)

// FuzzSurgeDecide: whatever the Deployment, its pods, its VPA, the state, the budget and the
// clock, Decide never panics, never restarts when a precondition fails, never twice for one
// prediction, never inside the cool-down or over the budget, and every write it decides has
// a patch guarded on the Deployment as read.
func FuzzSurgeDecide(f *testing.F) {
	// One seed per property (each a restart but for the one thing that forbids it), run by
	// every go test; the fuzzer mutates from them.
	for _, seed := range []struct {
		flags      uint64
		startedAgo int64
	}{
		{0, 0},                           // a restart is due
		{2 << 13, 0},                     // 2 in flight
		{6 << 15, 0},                     // 6 started in the last minute
		{1 << 2, 0},                      // paused
		{2 << 8, 0},                      // VPA Recreate
		{1 << 11, 0},                     // admission controller down
		{1 << 12, 0},                     // surgeRollout off
		{1<<18 | 1<<20, 86400},           // rolled out for this prediction, long ago
		{2<<18 | 1<<20, 60},              // another prediction, inside the cool-down
		{3<<18 | 1<<20, 60},              // rolling
		{1 << 27, 0},                     // a namespace not selected
		{1<<20 | 1<<28, 0},               // a state from the future
		{^uint64(0), 0}, {0x5555555, 60}, // anything
	} {
		f.Add(seed.flags, uint8(1), uint8(1), uint8(0), seed.startedAgo, uint16(1800))
	}
	f.Fuzz(func(t *testing.T, flags uint64, replicas, maxSurge, maxUnavail uint8, startedAgo int64, coolDownSec uint16) {
		bit := func(i uint) bool { return flags&(1<<i) != 0 }
		field := func(shift, width uint) uint64 { return flags >> shift & (1<<width - 1) }
		n := int32(replicas%4) + 1
		d := optedIn(func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptr.To(n)
			d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas = n, n, n
			ru := d.Spec.Strategy.RollingUpdate
			ru.MaxSurge, ru.MaxUnavailable = intOrStr(intstr.FromInt32(int32(maxSurge%3))), intOrStr(intstr.FromInt32(int32(maxUnavail%3)))
			if bit(0) {
				ru.MaxSurge = intOrStr(intstr.FromString("1%"))
			}
			if bit(1) {
				d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
			}
			d.Spec.Paused = bit(2)
			if bit(3) {
				d.Generation++
			}
			if bit(4) {
				delete(d.Annotations, names.AnnotationSurgeRollout)
			}
		})
		cpu := "10" // outside the bounds
		if bit(5) {
			cpu = "4" // in the bounds, 25% off
		}
		p := pod("web-1", cpuMem(cpu, "1Gi"), now.Add(-time.Duration(field(21, 6)%48)*time.Hour))
		if bit(6) {
			p.DeletionTimestamp = &metav1.Time{Time: now}
		}
		if bit(7) {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		}
		in := input(d, p)
		switch field(8, 3) % 5 {
		case 1:
			in.VPA = nil
		case 2:
			in.VPA.Spec.UpdatePolicy.UpdateMode = ptr.To(vpa_types.UpdateModeRecreate)
		case 3:
			in.VPA.Status.Recommendation = nil
		}
		in.AdmissionController = !bit(11)
		in.Enabled = !bit(12)
		in.Budget = surge.Budget{InFlight: int(field(13, 2)), LastMinute: int(field(15, 3))}
		in.Excluded = bit(27)
		var predicted string
		if in.VPA != nil && in.VPA.Status.Recommendation != nil {
			pr, err := surge.Predict(in.VPA, &corev1.Pod{Spec: d.Spec.Template.Spec})
			require.NoError(t, err)
			predicted = pr.Hash
		}
		st := surge.State{Started: now.Add(-time.Duration(startedAgo) * time.Second), CoolDown: time.Duration(coolDownSec) * time.Second}
		switch field(18, 2) {
		case 1:
			st.Phase, st.Prediction = surge.PhaseCompleted, predicted
		case 2:
			st.Phase, st.Prediction = surge.PhaseCompleted, "other"
		case 3:
			st.Phase, st.Prediction, st.Generation = surge.PhaseRolling, predicted, d.Generation
		}
		if bit(28) { // a state from the future: not the function's
			st.Started = now.Add(time.Duration(1+field(29, 8)) * time.Hour)
		}
		if bit(20) {
			withState(st)(d)
		}

		dec := surge.Decide(in)
		if in.Excluded || d.Annotations[names.AnnotationSurgeRollout] != "true" {
			require.Equal(t, surge.None, dec.Action, "a Deployment not selected or not opted in is never written")
		}
		if bit(20) && st.Started.After(now.Add(time.Minute)) {
			require.NotEmpty(t, dec.Warning, "a state from the future is ignored, with a warning")
		}
		if !bit(20) {
			require.Empty(t, dec.Warning, "no state, nothing to warn about")
		}
		if dec.Action == surge.Restart {
			require.True(t, in.Enabled, "restarted with surgeRollout off")
			require.Equal(t, "true", d.Annotations[names.AnnotationSurgeRollout], "restarted without the opt-in")
			require.Nil(t, surge.Check(in.Input), "restarted although a precondition fails")
			require.NotEmpty(t, surge.Selected(in.VPA, in.Pods, in.Now, in.Settings), "restarted although VPA would update no pod")
			require.Less(t, in.Budget.InFlight, in.Limits.MaxInFlight, "over the in-flight budget")
			require.Less(t, in.Budget.LastMinute, in.Limits.MaxPerMinute, "over the per-minute budget")
			if bit(20) && dec.Warning == "" { // a state that is the function's (an ignored one counts for nothing)
				require.NotEqual(t, st.Prediction, dec.Prediction.Hash, "twice for one prediction")
				require.False(t, now.Before(st.Started.Add(st.CoolDown)), "inside the cool-down")
			}
		}
		if dec.Action == surge.Track {
			require.Equal(t, surge.PhaseRolling, dec.State.Phase, "a gap is tracked on a rollout in flight only")
			require.Greater(t, dec.State.Gap, st.Gap, "a gap is written only when it grew")
		}
		if dec.Action != surge.None {
			patch, err := surge.Patch(d, dec)
			require.NoError(t, err)
			var ops []map[string]any
			require.NoError(t, json.Unmarshal(patch, &ops))
			require.Equal(t, "/metadata/resourceVersion", ops[1]["path"], "every write is guarded on the read")
		}
	})
}
