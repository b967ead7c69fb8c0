package handlers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/drain"
)

// gapMetrics records the capacity gaps the Reconciler reports (the other metrics are dropped).
type gapMetrics struct {
	mu   sync.Mutex
	gaps []float64
}

func (m *gapMetrics) Decision(context.Context, string, string)                   {}
func (m *gapMetrics) Drain(context.Context, string, string, float64)             {}
func (m *gapMetrics) Sweep(context.Context, int, int, int, time.Duration, error) {}
func (m *gapMetrics) SurgeRollout(context.Context, string, float64, int)         {}
func (m *gapMetrics) CapacityGap(_ context.Context, kind, ns string, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if kind == string(config.KindDeployment) && ns == "default" {
		m.gaps = append(m.gaps, seconds)
	}
}

func (m *gapMetrics) recorded() []float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]float64(nil), m.gaps...)
}

// readyAt marks the pod Ready since t.
func readyAt(t time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t)})
	}
}

// The capacity gap of an eviction is the seconds from the eviction (its whole second, as the
// API shows it) until the owner is back at its desired Ready replicas: measured at the release
// when the release saw that already (the replacement gate), else when a Ready sibling's event
// shows it; never for a pod that was not evicted.
func TestCapacityGap(t *testing.T) {
	evictedSec := nowSec.Add(-3 * time.Second)
	label := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} }
	named := func(name string) podOpt {
		return func(p *corev1.Pod) { p.Name, p.UID = name, k8stypes.UID("uid-"+name) }
	}
	tests := []struct {
		name        string
		evictee     podOpt // besides managed, ours, deleting, stopped
		siblingWait bool   // the replacement gate on (the default for Deployments)
		replacement podOpt // the replacement as listed at the release
		later       podOpt // the replacement's later event (nil: none)
		want        []float64
	}{
		{name: "back at the release: measured then", evictee: evicted(evictedSec), siblingWait: true,
			replacement: readyAt(nowSec.Add(-time.Second)), want: []float64{2}},
		{name: "not back at the release: measured at the replacement's Ready event", evictee: evicted(evictedSec),
			replacement: func(*corev1.Pod) {}, later: readyAt(nowSec.Add(5 * time.Second)), want: []float64{8}},
		{name: "a plain delete is no eviction: nothing", evictee: func(*corev1.Pod) {},
			replacement: readyAt(nowSec), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web"},
				Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
			sibling := newPod(label, deployment, readyAt(now.Add(-time.Hour)), named("web-2"))
			replacement := newPod(label, deployment, tt.replacement, named("web-3"))
			evictee := newPod(label, managed, ours, deployment, deletedAt(evictedSec, 30), tt.evictee, started(evictedSec), stoppedAt(now))
			f := newFixture(t, false, dep, sibling, replacement, evictee)
			cfg := config.Default()
			cfg.GracePeriod, cfg.SweepInterval, cfg.HoldOn = 0, 0, config.HoldAll
			cfg.Workloads = map[config.Kind]config.WorkloadOverride{config.KindDeployment: {WaitForReplacement: ptr.To(tt.siblingWait)}}
			f.rec.SetConfig(cfg)
			m := &gapMetrics{}
			f.rec.Metrics = m

			out, err := f.rec.ReconcileLive(context.Background(), evictee)
			require.NoError(t, err)
			require.Equal(t, drain.RemoveFinalizer, out.Decision.Action, out.Decision.Reason)
			if tt.later != nil {
				assert.Empty(t, m.recorded(), "the owner was not back at the release")
				tt.later(replacement)
				_, err := f.client.CoreV1().Pods("default").UpdateStatus(context.Background(), replacement, metav1.UpdateOptions{})
				require.NoError(t, err)
				_, err = f.rec.Reconcile(context.Background(), replacement)
				require.NoError(t, err)
			}
			assert.Equal(t, tt.want, m.recorded())
		})
	}
}
