package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/surge"
	"function/internal/testutil"
)

// surgeObjects are an opted-in 1-replica Deployment web (maxSurge 1, maxUnavailable 0, its
// last rollout complete), its one Ready pod asking cpu 10, a VPA in mode Initial recommending
// cpu 5 (outside the pod's bounds: VPA's updater would update it at once) and a fresh status
// Lease of VPA's admission controller.
func surgeObjects(vpaMode string) []runtime.Object {
	requests := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	d := webDeployment(1, func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{surge.AnnotationSurgeRollout: "true"}
		d.Generation, d.ResourceVersion = 2, "10"
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}}
		d.Spec.Template.Spec.Containers[0].Resources.Requests = requests
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	})
	p := newPod(deployment, func(p *corev1.Pod) {
		p.Labels["app"] = "web"
		p.Spec.Containers = []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: requests}}}
		p.Status.Phase = corev1.PodRunning
		p.Status.StartTime = &metav1.Time{Time: now.Add(-time.Hour)}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	})
	rec := map[string]any{"cpu": "5", "memory": "1Gi"}
	v := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
		"metadata": map[string]any{"name": "web", "namespace": "default"},
		"spec": map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
			"updatePolicy": map[string]any{"updateMode": vpaMode}},
		"status": map[string]any{"recommendation": map[string]any{"containerRecommendations": []any{map[string]any{
			"containerName": "app", "target": rec, "lowerBound": map[string]any{"cpu": "1", "memory": "512Mi"}, "upperBound": map[string]any{"cpu": "6", "memory": "2Gi"}}}}},
	}}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "vpa-admission-controller", Namespace: "kube-system", CreationTimestamp: metav1.Now()},
		Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	return []runtime.Object{d, p, v, lease}
}

// surgeMetrics records the surge outcomes reported.
type surgeMetrics struct{ outcomes []string }

func (m *surgeMetrics) Decision(context.Context, string, string)                   {}
func (m *surgeMetrics) Drain(context.Context, string, string, float64)             {}
func (m *surgeMetrics) CapacityGap(context.Context, string, string, float64)       {}
func (m *surgeMetrics) Sweep(context.Context, int, int, int, time.Duration, error) {}
func (m *surgeMetrics) SurgeRollout(_ context.Context, outcome string, seconds float64) {
	m.outcomes = append(m.outcomes, outcome)
}

func TestSurgeSweep(t *testing.T) {
	enabled := func(c *config.Config) { c.Surge.Enabled = true }
	tests := []struct {
		name      string
		dryRun    bool
		cfg       func(*config.Config)
		vpaMode   string
		action    surge.Action
		wantVerbs []string
		event     string
		outcome   string // the metric's, when a write was made
	}{
		{name: "off: nothing read", vpaMode: "Initial", wantVerbs: []string{}},
		{name: "a restart: one guarded patch of the Deployment", cfg: enabled, vpaMode: "Initial", action: surge.Restart,
			wantVerbs: []string{"list deployments", "list pods", "get leases", "patch deployments", "create events"}, event: "SurgeRolloutStarted", outcome: "started"},
		{name: "dry-run reads and decides, writes nothing", dryRun: true, cfg: enabled, vpaMode: "Initial", action: surge.Restart,
			wantVerbs: []string{"list deployments", "list pods", "get leases"}},
		{name: "a VPA that evicts: skipped, said once", cfg: enabled, vpaMode: "Recreate", action: surge.Skip,
			wantVerbs: []string{"list deployments", "list pods", "get leases", "patch deployments", "create events"}, event: "SurgeRolloutSkipped", outcome: "skipped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, tt.dryRun, tt.cfg, surgeObjects(tt.vpaMode)...)
			f.client.ClearActions()
			m := &surgeMetrics{}
			f.rec.Metrics = m
			res, err := f.rec.SurgeSweep(context.Background())
			require.NoError(t, err)
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
			if tt.outcome != "" {
				assert.Equal(t, []string{tt.outcome}, m.outcomes)
			} else {
				assert.Empty(t, m.outcomes, "nothing written, nothing counted")
			}
			if tt.action != surge.None {
				assert.Equal(t, 1, res.Decisions[tt.action.String()], "decisions %v", res.Decisions)
			}
			d, err := f.client.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
			require.NoError(t, err)
			st, err := surge.ReadState(d)
			require.NoError(t, err)
			switch {
			case tt.dryRun || tt.action == surge.None:
				assert.Empty(t, d.Spec.Template.Annotations[surge.AnnotationRestartedAt], "nothing written")
			case tt.action == surge.Restart:
				assert.NotEmpty(t, d.Spec.Template.Annotations[surge.AnnotationRestartedAt])
				assert.Equal(t, surge.PhaseRolling, st.Phase)
			case tt.action == surge.Skip:
				assert.Equal(t, surge.CondVPAEvicts, st.Skipped)
				f.client.ClearActions()
				_, err := f.rec.SurgeSweep(context.Background())
				require.NoError(t, err)
				assert.Equal(t, []string{"list deployments", "list pods", "get leases"}, testutil.Verbs(f.client), "the same condition is not said again")
			}
			if tt.event != "" {
				events, err := f.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
				require.NoError(t, err)
				require.Len(t, events.Items, 1)
				assert.Equal(t, tt.event, events.Items[0].Reason)
				assert.Equal(t, "Deployment", events.Items[0].InvolvedObject.Kind)
			}
		})
	}
}
