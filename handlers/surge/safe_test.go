package surge_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"

	"function/handlers/surge"
)

// maxSurge and maxUnavailable resolve as the Deployment controller resolves them
// (pkg/controller/deployment/util ResolveFenceposts): surge rounded up, unavailable down, and
// 0/0 made 0/1.
func TestFenceposts(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { return intOrStr(intstr.FromString(s)) }
	num := func(n int) *intstr.IntOrString { return intOrStr(intstr.FromInt32(int32(n))) }
	tests := []struct {
		name                   string
		replicas               int32
		surge, unavail         *intstr.IntOrString
		wantSurge, wantUnavail int32
		wantErr                bool
	}{
		{name: "defaults 25%/25% of 1", replicas: 1, wantSurge: 1, wantUnavail: 0},
		{name: "defaults 25%/25% of 4", replicas: 4, wantSurge: 1, wantUnavail: 1},
		{name: "defaults 25%/25% of 10", replicas: 10, wantSurge: 3, wantUnavail: 2},
		{name: "integers", replicas: 3, surge: num(2), unavail: num(0), wantSurge: 2, wantUnavail: 0},
		{name: "1% of 3 rounds surge up, unavailable down", replicas: 3, surge: pct("1%"), unavail: pct("1%"), wantSurge: 1, wantUnavail: 0},
		{name: "0 and 0 become 0 and 1", replicas: 3, surge: num(0), unavail: num(0), wantSurge: 0, wantUnavail: 1},
		{name: "0% and 0% become 0 and 1", replicas: 1, surge: pct("0%"), unavail: pct("0%"), wantSurge: 0, wantUnavail: 1},
		{name: "100% of 2", replicas: 2, surge: pct("100%"), unavail: pct("100%"), wantSurge: 2, wantUnavail: 2},
		{name: "a bad percentage", replicas: 2, surge: pct("lots"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, u, err := surge.Fenceposts(deployment(tt.replicas, tt.surge, tt.unavail))
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantSurge, s, "maxSurge")
			assert.Equal(t, tt.wantUnavail, u, "maxUnavailable")
		})
	}
}

// Every precondition of a surge rollout, each failing alone.
func TestCheck(t *testing.T) {
	rec := func(opts ...vpaOpt) *vpa_types.VerticalPodAutoscaler {
		return vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"), opts...)
	}
	zero := intOrStr(intstr.FromInt32(0))
	one := intOrStr(intstr.FromInt32(1))
	readyPod := pod("web-1", cpuMem("4", "1Gi"), started)
	tests := []struct {
		name string
		in   surge.Input
		want surge.Condition // "" when safe
		// noStatus: --use-admission-controller-status=false
		noStatus bool
	}{
		{name: "1 replica, maxSurge 1, maxUnavailable 0: safe",
			in: surge.Input{Deployment: deployment(1, one, zero), Pods: []*corev1.Pod{readyPod}, VPA: rec(), AdmissionController: true}},
		{name: "1 replica, the API's 25%/25%: safe (surge 1, unavailable 0)",
			in: surge.Input{Deployment: deployment(1, nil, nil), Pods: []*corev1.Pod{readyPod}, VPA: rec(), AdmissionController: true}},
		{name: "Recreate strategy", in: surge.Input{Deployment: deployment(1, one, zero, func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}), VPA: rec(), AdmissionController: true}, want: surge.CondNotRollingUpdate},
		{name: "maxSurge 0", in: surge.Input{Deployment: deployment(3, zero, one), VPA: rec(), AdmissionController: true}, want: surge.CondNoSurge},
		{name: "maxSurge 0%", in: surge.Input{Deployment: deployment(3, intOrStr(intstr.FromString("0%")), one), VPA: rec(), AdmissionController: true}, want: surge.CondNoSurge},
		{name: "1 replica, maxUnavailable 1", in: surge.Input{Deployment: deployment(1, one, one), VPA: rec(), AdmissionController: true}, want: surge.CondSingleReplicaUnavail},
		{name: "1 replica, maxUnavailable 100%", in: surge.Input{Deployment: deployment(1, one, intOrStr(intstr.FromString("100%"))), VPA: rec(), AdmissionController: true}, want: surge.CondSingleReplicaUnavail},
		{name: "3 replicas, maxUnavailable 1: safe", in: surge.Input{Deployment: deployment(3, one, one), VPA: rec(), AdmissionController: true}},
		{name: "paused", in: surge.Input{Deployment: deployment(1, one, zero, func(d *appsv1.Deployment) { d.Spec.Paused = true }), VPA: rec(), AdmissionController: true},
			want: surge.CondPaused},
		{name: "generation not observed", in: surge.Input{Deployment: deployment(1, one, zero, func(d *appsv1.Deployment) { d.Generation = 4 }), VPA: rec(), AdmissionController: true},
			want: surge.CondRolloutInProgress},
		{name: "an old replica left", in: surge.Input{Deployment: deployment(1, one, zero, func(d *appsv1.Deployment) { d.Status.Replicas = 2 }), VPA: rec(), AdmissionController: true},
			want: surge.CondRolloutInProgress},
		{name: "updated but not available", in: surge.Input{Deployment: deployment(1, one, zero, func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 0 }), VPA: rec(), AdmissionController: true},
			want: surge.CondRolloutInProgress},
		{name: "a pod deleting", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(), AdmissionController: true,
			Pods: []*corev1.Pod{pod("web-1", nil, started, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} })}}, want: surge.CondPodDeleting},
		{name: "a pod unready", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(), AdmissionController: true,
			Pods: []*corev1.Pod{pod("web-1", nil, started, func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })}}, want: surge.CondPodUnready},
		{name: "no VPA", in: surge.Input{Deployment: deployment(1, one, zero), AdmissionController: true}, want: surge.CondNoVPA},
		{name: "VPA Recreate: refused", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(mode(vpa_types.UpdateModeRecreate)), AdmissionController: true}, want: surge.CondVPAEvicts},
		{name: "VPA Auto: refused", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(mode("Auto")), AdmissionController: true}, want: surge.CondVPAEvicts},
		{name: "VPA InPlaceOrRecreate: refused", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(mode(vpa_types.UpdateModeInPlaceOrRecreate)), AdmissionController: true}, want: surge.CondVPAEvicts},
		{name: "VPA updateMode unset (Auto): refused", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(func(v *vpa_types.VerticalPodAutoscaler) { v.Spec.UpdatePolicy = nil }), AdmissionController: true},
			want: surge.CondVPAEvicts},
		{name: "VPA Off", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(mode(vpa_types.UpdateModeOff)), AdmissionController: true}, want: surge.CondVPANotInitial},
		{name: "no recommendation yet", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec(func(v *vpa_types.VerticalPodAutoscaler) { v.Status.Recommendation = nil }), AdmissionController: true},
			want: surge.CondNoRecommendation},
		{name: "admission controller down", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec()}, want: surge.CondAdmissionControllerDown},
		{name: "admission controller down, its status not used", in: surge.Input{Deployment: deployment(1, one, zero), VPA: rec()},
			noStatus: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Settings = surge.DefaultSettings()
			in.Settings.UseAdmissionControllerStatus = !tt.noStatus
			f := surge.Check(in)
			if tt.want == "" {
				assert.Nil(t, f)
				return
			}
			require.NotNil(t, f)
			assert.Equal(t, tt.want, f.Condition, f.Detail)
			assert.NotEmpty(t, f.Detail)
		})
	}
}
