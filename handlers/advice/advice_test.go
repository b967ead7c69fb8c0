package advice_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"function/config"
	"function/handlers/advice"
	"function/handlers/drain"
	"function/handlers/drain/draintest"
)

var (
	gracefulContainer = draintest.GracefulContainer
	ids               = draintest.FindingIDs
)

// gracefulInput is advice input for a Deployment web that defeats nothing.
func gracefulInput() advice.Input {
	return advice.Input{
		Owner:     drain.Owner{Kind: config.KindDeployment, Name: "web", UID: "uid-web"},
		Namespace: "default",
		Replicas:  ptr.To[int32](3),
		Selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{gracefulContainer("app")}}},
		GracePeriod: 30 * time.Second,
		PDB:         ptr.To(true),
	}
}

const webPDBYAML = `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: default
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: web
  unhealthyPodEvictionPolicy: AlwaysAllow
`

func TestAdvise(t *testing.T) {
	tests := []struct {
		name   string
		change func(in *advice.Input)
		want   []string
		check  func(t *testing.T, f []advice.Finding)
	}{
		{name: "graceful: nothing", change: func(*advice.Input) {}},
		{name: "no preStop hook", change: func(in *advice.Input) { in.Template.Spec.Containers[0].Lifecycle = nil },
			want: []string{advice.FindingNoPreStopHook},
			check: func(t *testing.T, f []advice.Finding) {
				assert.Equal(t, "container app has no preStop hook: it gets SIGTERM while Services may still send it traffic", f[0].Message)
				assert.Equal(t, "spec:\n  template:\n    spec:\n      containers:\n      - name: app\n        lifecycle:\n          preStop:\n            sleep:\n              seconds: 5\n", f[0].Fix)
			}},
		{name: "no readiness probe, in two containers, on a port", change: func(in *advice.Input) {
			side := gracefulContainer("side")
			side.ReadinessProbe = nil
			side.Ports = []corev1.ContainerPort{{ContainerPort: 9090}}
			in.Template.Spec.Containers[0].ReadinessProbe = nil
			in.Template.Spec.Containers = append(in.Template.Spec.Containers, side)
		}, want: []string{advice.FindingNoReadinessProbe},
			check: func(t *testing.T, f []advice.Finding) {
				assert.Contains(t, f[0].Message, "containers app, side have no readinessProbe")
				assert.Contains(t, f[0].Fix, "- name: app\n        readinessProbe:\n          httpGet:\n")
				assert.Contains(t, f[0].Fix, "port: 8080\n")
				assert.Contains(t, f[0].Fix, "- name: side\n")
				assert.Contains(t, f[0].Fix, "port: 9090\n")
			}},
		{name: "terminationGracePeriodSeconds shorter than the grace period", change: func(in *advice.Input) {
			in.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](20)
		}, want: []string{advice.FindingShortTermination},
			check: func(t *testing.T, f []advice.Finding) {
				assert.Equal(t, "terminationGracePeriodSeconds 20 is shorter than the drain's grace period 30s: the kubelet kills the containers after 20s", f[0].Message)
				assert.Equal(t, "spec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: 30\n", f[0].Fix)
			}},
		{name: "default termination (30 s) shorter than a 45 s grace", change: func(in *advice.Input) { in.GracePeriod = 45 * time.Second },
			want: []string{advice.FindingShortTermination}},
		{name: "termination equal to the grace period: fine", change: func(in *advice.Input) {
			in.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
		}},
		{name: "a StatefulSet's grace period 0: fine", change: func(in *advice.Input) {
			in.Owner.Kind, in.GracePeriod, in.Template.Spec.TerminationGracePeriodSeconds = config.KindStatefulSet, 0, ptr.To[int64](0)
		}},
		{name: "single replica (no PDB finding besides)", change: func(in *advice.Input) { in.Replicas, in.PDB = ptr.To[int32](1), ptr.To(false) },
			want: []string{advice.FindingSingleReplica},
			check: func(t *testing.T, f []advice.Finding) {
				assert.Equal(t, "Deployment web has 1 replica: each eviction is downtime until the replacement is Ready; or let the function update it by surge rollouts "+
					`(VPA in updateMode Initial, surgeRollout on, the Deployment annotated vpagracefuldrain.dev/surge-rollout: "true"): the new pod is Ready before the old one goes`, f[0].Message)
				assert.Equal(t, "spec:\n  replicas: 2\n---\n"+webPDBYAML, f[0].Fix)
			}},
		{name: "single-replica StatefulSet: no surge rollouts (it cannot surge)", change: func(in *advice.Input) {
			in.Owner.Kind, in.Replicas = config.KindStatefulSet, ptr.To[int32](1)
		}, want: []string{advice.FindingSingleReplica}, check: func(t *testing.T, f []advice.Finding) {
			assert.Equal(t, "StatefulSet web has 1 replica: each eviction is downtime until the replacement is Ready", f[0].Message)
		}},
		{name: "no PDB selects the pods", change: func(in *advice.Input) { in.PDB = ptr.To(false) },
			want: []string{advice.FindingNoPDB},
			check: func(t *testing.T, f []advice.Finding) {
				assert.Equal(t, "no PodDisruptionBudget selects the pods of Deployment web: the VPA updater may evict the next pod before the replacement is Ready", f[0].Message)
				assert.Equal(t, webPDBYAML, f[0].Fix)
			}},
		{name: "PDB unknown (could not list): no finding", change: func(in *advice.Input) { in.PDB = nil }},
		{name: "DaemonSet: replicas do not apply", change: func(in *advice.Input) {
			in.Owner.Kind, in.Replicas, in.PDB = config.KindDaemonSet, nil, ptr.To(false)
		}},
		{name: "scaled to 0: nothing to evict", change: func(in *advice.Input) { in.Replicas, in.PDB = ptr.To[int32](0), ptr.To(false) }},
		{name: "VPA Recreate on an in-place cluster", change: func(in *advice.Input) {
			in.VPA, in.VPAUpdateMode, in.InPlaceResize = "web-vpa", "Recreate", true
		}, want: []string{advice.FindingUseInPlaceOrRecreate},
			check: func(t *testing.T, f []advice.Finding) {
				assert.True(t, strings.HasPrefix(f[0].Message, "VerticalPodAutoscaler web-vpa of Deployment web has updateMode Recreate, which evicts a pod to resize it; this cluster resizes pods in place; or let the function update it by surge rollouts"), f[0].Message)
				assert.Equal(t, "spec:\n  updatePolicy:\n    updateMode: InPlaceOrRecreate\n", f[0].Fix)
			}},
		{name: "VPA Auto", change: func(in *advice.Input) { in.VPA, in.VPAUpdateMode, in.InPlaceResize = "v", "Auto", true },
			want: []string{advice.FindingUseInPlaceOrRecreate}},
		{name: "VPA without updateMode (VPA's default recreates)", change: func(in *advice.Input) { in.VPA, in.InPlaceResize = "v", true },
			want:  []string{advice.FindingUseInPlaceOrRecreate},
			check: func(t *testing.T, f []advice.Finding) { assert.Contains(t, f[0].Message, "updateMode unset (Auto)") }},
		{name: "VPA Recreate, no in-place resize", change: func(in *advice.Input) { in.VPA, in.VPAUpdateMode = "v", "Recreate" }},
		{name: "VPA InPlaceOrRecreate already", change: func(in *advice.Input) {
			in.VPA, in.VPAUpdateMode, in.InPlaceResize = "v", "InPlaceOrRecreate", true
		}},
		{name: "VPA Off", change: func(in *advice.Input) { in.VPA, in.VPAUpdateMode, in.InPlaceResize = "v", "Off", true }},
		{name: "no VPA", change: func(in *advice.Input) { in.InPlaceResize = true }},
		{name: "everything, in order", change: func(in *advice.Input) {
			in.Template.Spec.Containers = []corev1.Container{{Name: "app"}}
			in.GracePeriod, in.Replicas = time.Minute, ptr.To[int32](1)
			in.VPA, in.InPlaceResize = "v", true
		}, want: []string{advice.FindingNoPreStopHook, advice.FindingNoReadinessProbe, advice.FindingShortTermination,
			advice.FindingSingleReplica, advice.FindingUseInPlaceOrRecreate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := gracefulInput()
			tt.change(&in)
			got := advice.Advise(in)
			assert.Equal(t, append([]string{}, tt.want...), ids(got))
			for _, f := range got {
				assert.NotEmpty(t, f.Message)
				assertFixParses(t, f)
			}
			if tt.check != nil && len(got) > 0 {
				tt.check(t, got)
			}
		})
	}
}

// assertFixParses: each fix is YAML of the object it changes, strictly.
func assertFixParses(t *testing.T, f advice.Finding) {
	t.Helper()
	for _, doc := range strings.Split(f.Fix, "\n---\n") {
		var meta struct{ Kind string }
		require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), "%s: %s", f.ID, doc)
		var into any
		switch {
		case meta.Kind == "PodDisruptionBudget":
			into = &policyv1.PodDisruptionBudget{}
		case f.ID == advice.FindingUseInPlaceOrRecreate:
			into = &map[string]any{}
		default:
			into = &appsv1.Deployment{}
		}
		assert.NoError(t, yaml.UnmarshalStrict([]byte(doc), into), "%s: %s", f.ID, doc)
	}
}
