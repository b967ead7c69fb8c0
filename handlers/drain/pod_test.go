package drain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers/drain"
)

// A pod is Ready when its (first) Ready condition is True; since when is that condition's last
// transition, reported as it is whatever the status.
func TestReadySince(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cond := func(typ corev1.PodConditionType, status corev1.ConditionStatus, at time.Time) corev1.PodCondition {
		return corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: metav1.Time{Time: at}}
	}
	tests := []struct {
		name       string
		conditions []corev1.PodCondition
		wantAt     time.Time
		wantReady  bool
	}{
		{name: "no conditions: not Ready"},
		{name: "Ready True", conditions: []corev1.PodCondition{cond(corev1.PodReady, corev1.ConditionTrue, at)}, wantAt: at, wantReady: true},
		{name: "Ready False: not Ready, since its transition", conditions: []corev1.PodCondition{cond(corev1.PodReady, corev1.ConditionFalse, at)},
			wantAt: at},
		{name: "Ready Unknown: not Ready", conditions: []corev1.PodCondition{cond(corev1.PodReady, corev1.ConditionUnknown, at)}, wantAt: at},
		{name: "only other conditions True: not Ready", conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, corev1.ConditionTrue, at), cond(corev1.ContainersReady, corev1.ConditionTrue, at)}},
		{name: "Ready among others", conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, corev1.ConditionTrue, at.Add(-time.Hour)), cond(corev1.PodReady, corev1.ConditionTrue, at)},
			wantAt: at, wantReady: true},
		{name: "the first Ready condition counts (False, then True)", conditions: []corev1.PodCondition{
			cond(corev1.PodReady, corev1.ConditionFalse, at), cond(corev1.PodReady, corev1.ConditionTrue, at.Add(time.Hour))}, wantAt: at},
		{name: "the first Ready condition counts (True, then False)", conditions: []corev1.PodCondition{
			cond(corev1.PodReady, corev1.ConditionTrue, at), cond(corev1.PodReady, corev1.ConditionFalse, at.Add(time.Hour))},
			wantAt: at, wantReady: true},
		{name: "Ready without a transition time", conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			wantReady: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{Status: corev1.PodStatus{Conditions: tt.conditions}}
			gotAt, gotReady := drain.ReadySince(p)
			assert.Equal(t, tt.wantReady, gotReady, "ready")
			assert.True(t, tt.wantAt.Equal(gotAt), "since: got %s, want %s", gotAt, tt.wantAt)
			assert.Equal(t, tt.wantReady, drain.Ready(p), "Ready agrees with ReadySince")
		})
	}
}
