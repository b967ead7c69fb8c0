package surge_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"

	"function/handlers/surge"
)

// Selected asks VPA's own calculator, with the updater's defaults, on a fixed clock; the rows
// mirror the upstream calculator's tests, decided here by the real processors.
func TestSelectedAsTheUpdaterDecides(t *testing.T) {
	inRange := func(opts ...vpaOpt) *vpa_types.VerticalPodAutoscaler {
		return vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"), opts...)
	}
	young := now.Add(-11 * time.Hour)
	tests := []struct {
		name     string
		vpa      *vpa_types.VerticalPodAutoscaler
		pod      *corev1.Pod
		settings func(*surge.Settings)
		selected bool
	}{
		{name: "young, in range: waits for the lifetime threshold", vpa: inRange(), pod: pod("a", cpuMem("4", "1Gi"), young)},
		{name: "old, in range, changes by 25%: updated", vpa: inRange(), pod: pod("a", cpuMem("4", "1Gi"), started), selected: true},
		{name: "old, in range, changes by 4%: below the 10% threshold", vpa: inRange(), pod: pod("a", cpuMem("4.8", "1Gi"), started)},
		{name: "old, 4% change, threshold lowered to 1%", vpa: inRange(), pod: pod("a", cpuMem("4.8", "1Gi"), started),
			settings: func(s *surge.Settings) { s.PodUpdateThreshold = 0.01 }, selected: true},
		{name: "young, outside the bounds: at once", vpa: inRange(), pod: pod("a", cpuMem("10", "1Gi"), now.Add(-time.Hour)), selected: true},
		{name: "young, quick OOM: at once", vpa: inRange(), pod: pod("a", cpuMem("4", "1Gi"), young, oomKilled(2*time.Minute, 3*time.Minute)), selected: true},
		{name: "young, OOM after a long run: not quick", vpa: inRange(), pod: pod("a", cpuMem("4", "1Gi"), young, oomKilled(time.Hour, 3*time.Minute))},
		{name: "young, quick OOM long ago: stale", vpa: inRange(), pod: pod("a", cpuMem("4", "1Gi"), young, oomKilled(2*time.Minute, 20*time.Minute))},
		{name: "evictionRequirements: a scale-down refused by TargetHigherThanRequests",
			vpa: inRange(func(v *vpa_types.VerticalPodAutoscaler) {
				v.Spec.UpdatePolicy.EvictionRequirements = []*vpa_types.EvictionRequirement{{
					Resources: []corev1.ResourceName{corev1.ResourceCPU}, ChangeRequirement: vpa_types.TargetHigherThanRequests}}
			}), pod: pod("a", cpuMem("10", "1Gi"), started)},
		{name: "evictionRequirements: a scale-up admitted",
			vpa: inRange(func(v *vpa_types.VerticalPodAutoscaler) {
				v.Spec.UpdatePolicy.EvictionRequirements = []*vpa_types.EvictionRequirement{{
					Resources: []corev1.ResourceName{corev1.ResourceCPU}, ChangeRequirement: vpa_types.TargetHigherThanRequests}}
			}), pod: pod("a", cpuMem("0.5", "1Gi"), started), selected: true},
		{name: "container mode Off: its quick OOM does not count",
			vpa: inRange(func(v *vpa_types.VerticalPodAutoscaler) {
				v.Spec.ResourcePolicy = &vpa_types.PodResourcePolicy{ContainerPolicies: []vpa_types.ContainerResourcePolicy{{
					ContainerName: "app", Mode: new(vpa_types.ContainerScalingModeOff)}}}
			}), pod: pod("a", cpuMem("4", "1Gi"), young, oomKilled(2*time.Minute, 3*time.Minute))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := surge.DefaultSettings()
			if tt.settings != nil {
				tt.settings(&s)
			}
			got := surge.Selected(tt.vpa, []*corev1.Pod{tt.pod}, now, s)
			if tt.selected {
				require.Len(t, got, 1)
				assert.Same(t, tt.pod, got[0])
			} else {
				assert.Empty(t, got)
			}
		})
	}
}

func TestSelectedOrdersByPriority(t *testing.T) {
	v := vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"))
	small, large := pod("small", cpuMem("4", "1Gi"), started), pod("large", cpuMem("1.5", "1Gi"), started)
	got := surge.Selected(v, []*corev1.Pod{small, large}, now, surge.DefaultSettings())
	require.Len(t, got, 2)
	assert.Same(t, large, got[0], "the larger change first")
}

func TestPredict(t *testing.T) {
	v := vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"))
	tpl := pod("tpl", cpuMem("4", "1Gi"), started)
	p, err := surge.Predict(v, tpl)
	require.NoError(t, err)
	assert.Equal(t, map[string]corev1.ResourceList{"app": cpuMem("5", "1Gi")}, p.Requests)
	assert.Len(t, p.Hash, 16)

	again, err := surge.Predict(v, tpl)
	require.NoError(t, err)
	assert.Equal(t, p.Hash, again.Hash, "the same prediction, the same hash")

	other, err := surge.Predict(vpa(cpuMem("6", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi")), tpl)
	require.NoError(t, err)
	assert.NotEqual(t, p.Hash, other.Hash, "another recommendation, another hash")

	capped := vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"), func(v *vpa_types.VerticalPodAutoscaler) {
		v.Spec.ResourcePolicy = &vpa_types.PodResourcePolicy{ContainerPolicies: []vpa_types.ContainerResourcePolicy{{
			ContainerName: "app", MaxAllowed: cpuMem("3", "")}}}
	})
	p, err = surge.Predict(capped, tpl)
	require.NoError(t, err)
	assert.Equal(t, cpuMem("3", "1Gi"), p.Requests["app"], "capped to maxAllowed, as the updater caps it")
}

func TestControllingVPA(t *testing.T) {
	older := vpa(nil, nil, nil)
	newer := vpa(nil, nil, nil, func(v *vpa_types.VerticalPodAutoscaler) {
		v.Name = "web-2"
		v.CreationTimestamp.Time = now.Add(-time.Hour)
	})
	other := vpa(nil, nil, nil, func(v *vpa_types.VerticalPodAutoscaler) { v.Spec.TargetRef.Name = "api" })
	assert.Same(t, older, surge.ControllingVPA([]*vpa_types.VerticalPodAutoscaler{newer, other, older}, "default", "web"), "the oldest wins, as VPA matches")
	assert.Nil(t, surge.ControllingVPA([]*vpa_types.VerticalPodAutoscaler{other}, "default", "web"))
	assert.Nil(t, surge.ControllingVPA([]*vpa_types.VerticalPodAutoscaler{older}, "prod", "web"), "another namespace")
	crd := vpa(nil, nil, nil, func(v *vpa_types.VerticalPodAutoscaler) { v.Spec.TargetRef.APIVersion = "example.com/v1" })
	assert.Nil(t, surge.ControllingVPA([]*vpa_types.VerticalPodAutoscaler{crd}, "default", "web"), "a kind Deployment of another group")
	bare := vpa(nil, nil, nil, func(v *vpa_types.VerticalPodAutoscaler) { v.Spec.TargetRef.APIVersion = "" })
	assert.Same(t, bare, surge.ControllingVPA([]*vpa_types.VerticalPodAutoscaler{bare}, "default", "web"), "no API version: apps, as VPA defaults it")
}
