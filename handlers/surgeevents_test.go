package handlers_test

import (
	"context"
	"fmt"
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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/drain/draintest"
	"function/handlers/surge"
	"function/internal/testutil"
	"function/names"
)

// surgeObjects are an opted-in 1-replica Deployment web (maxSurge 1, maxUnavailable 0, its
// last rollout complete), its one Ready pod asking cpu 10, a VPA in mode Initial recommending
// cpu 5 (outside the pod's bounds: VPA's updater would update it at once) and a fresh status
// Lease of VPA's admission controller.
func surgeObjects(vpaMode string) []runtime.Object {
	requests := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	d := webDeployment(1, func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{names.AnnotationSurgeRollout: "true"}
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
type surgeMetrics struct {
	outcomes []string
	gaps     []int
}

func (m *surgeMetrics) Decision(context.Context, string, string)                   {}
func (m *surgeMetrics) Drain(context.Context, string, string, float64)             {}
func (m *surgeMetrics) CapacityGap(context.Context, string, string, float64)       {}
func (m *surgeMetrics) Sweep(context.Context, int, int, int, time.Duration, error) {}
func (m *surgeMetrics) SurgeRollout(_ context.Context, outcome string, _ float64, gap int) {
	m.outcomes = append(m.outcomes, outcome)
	m.gaps = append(m.gaps, gap)
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
			wantVerbs: []string{"list deployments", "list pods", "list limitranges", "get leases", "patch deployments", "create events"}, event: "SurgeRolloutStarted", outcome: "started"},
		{name: "dry-run reads and decides, writes nothing", dryRun: true, cfg: enabled, vpaMode: "Initial", action: surge.Restart,
			wantVerbs: []string{"list deployments", "list pods", "list limitranges", "get leases"}},
		{name: "a VPA that evicts: skipped, said once", cfg: enabled, vpaMode: "Recreate", action: surge.Skip,
			wantVerbs: []string{"list deployments", "list pods", "list limitranges", "get leases", "patch deployments", "create events"}, event: "SurgeRolloutSkipped", outcome: "skipped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, tt.dryRun, tt.cfg, surgeObjects(tt.vpaMode)...)
			f.client.ClearActions()
			m := &surgeMetrics{}
			f.surge.Metrics = m
			res, err := f.surge.Sweep(context.Background())
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
				assert.Empty(t, d.Spec.Template.Annotations[names.AnnotationRestartedAt], "nothing written")
			case tt.action == surge.Restart:
				assert.NotEmpty(t, d.Spec.Template.Annotations[names.AnnotationRestartedAt])
				assert.Equal(t, surge.PhaseRolling, st.Phase)
			case tt.action == surge.Skip:
				assert.Equal(t, surge.CondVPAEvicts, st.Skipped)
				f.client.ClearActions()
				_, err := f.surge.Sweep(context.Background())
				require.NoError(t, err)
				assert.Equal(t, []string{"list deployments", "list pods", "list limitranges", "get leases"}, testutil.Verbs(f.client), "the same condition is not said again")
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

// Events ask for an evaluation (a VPA's: of the Deployment it targets; a pod's: of its
// Deployment); the event's data is never used, every write is decided on what was read, and a
// repeated event costs nothing within its bound.
func TestSurgeEvents(t *testing.T) {
	enabled := func(c *config.Config) { c.Surge.Enabled = true }
	restartVerbs := []string{"get deployments", "list pods", "list limitranges", "get leases", "patch deployments", "create events"}
	twoInFlight := func(f *adviceFixture) { // the budget holds two rollouts in flight
		for _, name := range []string{"a", "b"} {
			why, err := f.surge.Budget.Claim(context.Background(), "default/"+name, types.UID("uid-"+name), now.Add(-10*time.Minute),
				surge.LimitsOf(config.Default().Surge))
			require.NoError(t, err)
			require.Empty(t, why)
		}
	}
	podOfWeb := func() *corev1.Pod { return newPod(deployment) }
	tests := []struct {
		name      string
		cfg       func(*config.Config)
		prepare   func(*adviceFixture)
		event     func(context.Context, *handlers.SurgeController) (*handlers.SurgeReport, error)
		action    surge.Action // of the report; None: no report
		wantVerbs []string
		wantVPA   []string // the dynamic client's
	}{
		{name: "VPA event, surge rollouts off: nothing read", event: vpaEvent("web"), wantVerbs: []string{}, wantVPA: []string{}},
		{name: "VPA event: the Deployment it targets restarted", cfg: enabled, event: vpaEvent("web"), action: surge.Restart,
			wantVerbs: restartVerbs, wantVPA: []string{"list verticalpodautoscalers"}},
		// The bound is set before the read: concurrent or repeated events of one name cost one
		// read a second (the map of names is bounded, and holds no object's data).
		{name: "VPA event of a VPA that does not exist: its namespace's VPAs read, nothing else", cfg: enabled, event: vpaEvent("forged"),
			wantVerbs: []string{}, wantVPA: []string{"list verticalpodautoscalers"}},
		{name: "VPA event in a namespace not selected: nothing read", cfg: func(c *config.Config) { enabled(c); c.Namespaces.Exclude = []string{"default"} },
			event: vpaEvent("web"), wantVerbs: []string{}, wantVPA: []string{}},
		{name: "VPA event, over the budget: no Deployment listed, no write", cfg: enabled, prepare: twoInFlight,
			event: vpaEvent("web"), wantVerbs: []string{"get deployments", "list pods", "list limitranges", "get leases"}, wantVPA: []string{"list verticalpodautoscalers"}},
		{name: "pod event of the Deployment's pod: restarted", cfg: enabled, event: podEvent(podOfWeb()), action: surge.Restart,
			wantVerbs: restartVerbs, wantVPA: []string{"list verticalpodautoscalers"}},
		{name: "pod event of a pod of no Deployment: nothing read", cfg: enabled, event: podEvent(newPod()), wantVerbs: []string{}, wantVPA: []string{}},
		{name: "pod event whose owner no Deployment can have (a path in its name): nothing read, nothing queued", cfg: enabled,
			event: podEvent(newPod(draintest.OwnedBy("Deployment", "../web"))), wantVerbs: []string{}, wantVPA: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, tt.cfg, surgeObjects("Initial")...)
			if tt.prepare != nil {
				tt.prepare(f)
			}
			f.reset()
			ctx := context.Background()
			rep, err := tt.event(ctx, f.surge)
			require.NoError(t, err)
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
			assert.Equal(t, tt.wantVPA, testutil.Verbs(f.dyn))
			if tt.action == surge.None {
				assert.Nil(t, rep)
			} else {
				require.NotNil(t, rep)
				assert.Equal(t, tt.action, rep.Decision.Action)
				assert.Equal(t, "web", rep.Name)
				assert.Equal(t, types.UID("uid-web"), rep.UID)
			}
			if tt.action == surge.None {
				assert.Zero(t, f.surge.Queued(), "nothing queued to retry")
			}
			f.reset()
			_, err = tt.event(ctx, f.surge)
			require.NoError(t, err)
			assert.Empty(t, testutil.Verbs(f.client), "the same event again within its bound reads no more")
			assert.Empty(t, testutil.Verbs(f.dyn))
		})
	}
}

func vpaEvent(name string) func(context.Context, *handlers.SurgeController) (*handlers.SurgeReport, error) {
	return func(ctx context.Context, c *handlers.SurgeController) (*handlers.SurgeReport, error) {
		return c.ForVPA(ctx, "default", name)
	}
}

func podEvent(p *corev1.Pod) func(context.Context, *handlers.SurgeController) (*handlers.SurgeReport, error) {
	return func(ctx context.Context, c *handlers.SurgeController) (*handlers.SurgeReport, error) {
		return c.ForPod(ctx, p)
	}
}

// A rollout in flight is followed on its pods' events: the capacity gap is tracked in the
// state when it grows, and reported with the completion (the metric and the Event).
func TestSurgeEventsFollowTheRollout(t *testing.T) {
	f := newAdviceFixture(t, false, func(c *config.Config) { c.Surge.Enabled = true }, surgeObjects("Initial")...)
	testutil.GenerateNames(f.client)
	ctx := context.Background()
	m := &surgeMetrics{}
	f.surge.Metrics = m
	rep, err := f.surge.ForPod(ctx, newPod(deployment))
	require.NoError(t, err)
	require.NotNil(t, rep)
	require.Equal(t, surge.Restart, rep.Decision.Action)

	// The rollout goes on (the fake does not count generations: as the API server does), and
	// the old pod is not Ready: one replica short.
	d, err := f.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	d.Generation++
	_, err = f.client.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	pods := f.client.CoreV1().Pods("default")
	old, err := pods.Get(ctx, newPod(deployment).Name, metav1.GetOptions{})
	require.NoError(t, err)
	old.Status.Conditions[0].Status = corev1.ConditionFalse
	_, err = pods.UpdateStatus(ctx, old, metav1.UpdateOptions{})
	require.NoError(t, err)
	f.clock.Step(handlers.SurgeEvalRolling)
	rep, err = f.surge.ForPod(ctx, old)
	require.NoError(t, err)
	require.NotNil(t, rep)
	assert.Equal(t, surge.Track, rep.Decision.Action)
	assert.Equal(t, int32(1), rep.Decision.State.Gap)

	// Within SurgeEvalRolling: not evaluated again.
	rep, err = f.surge.ForPod(ctx, old)
	require.NoError(t, err)
	assert.Nil(t, rep)

	// The rollout completes: a new pod, sized as predicted, Ready; the old one gone.
	d, err = f.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	d.Generation++ // the Track's annotation write is a new generation to the API server
	d.Status.ObservedGeneration = d.Generation
	_, err = f.client.AppsV1().Deployments("default").UpdateStatus(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	st, err := surge.ReadState(d)
	require.NoError(t, err)
	fresh := newPod(deployment, func(p *corev1.Pod) {
		p.Name, p.UID = "web-new", "uid-web-new"
		p.Labels["app"] = "web"
		p.Annotations = map[string]string{names.AnnotationPredictedResources: st.Prediction}
		p.Spec.Containers = []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: st.Requests["app"]}}}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	})
	_, err = pods.Create(ctx, fresh, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, pods.Delete(ctx, old.Name, metav1.DeleteOptions{}))
	f.clock.Step(handlers.SurgeEvalRolling)
	rep, err = f.surge.ForPod(ctx, fresh)
	require.NoError(t, err)
	require.NotNil(t, rep)
	assert.Equal(t, surge.Complete, rep.Decision.Action, rep.Decision.Reason)
	assert.Equal(t, []string{"started", "completed"}, m.outcomes)
	assert.Equal(t, 1, m.gaps[1], "the completion reports the gap seen")
	events, err := f.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var messages []string
	for _, e := range events.Items {
		messages = append(messages, e.Reason+": "+e.Message)
	}
	assert.ElementsMatch(t, []string{"SurgeRolloutStarted: VPA's updater would update 1 pod(s); prediction " + st.Prediction,
		"SurgeRolloutCompleted: the new pods are Available with the predicted requests (capacity gap 1)"}, messages)
}

// The replica that started a rollout follows it (SurgeFollow) without waiting for an event or
// a sweep: evaluated again once the clock passes SurgeFollow.
func TestSurgeFollowsTheRolloutItStarted(t *testing.T) {
	f := newAdviceFixture(t, false, func(c *config.Config) { c.Surge.Enabled = true }, surgeObjects("Initial")...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.surge.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	rep, err := f.surge.ForPod(ctx, newPod(deployment))
	require.NoError(t, err)
	require.NotNil(t, rep)
	require.Equal(t, surge.Restart, rep.Decision.Action)

	f.reset()
	require.Eventually(t, func() bool { return f.clock.HasWaiters() }, 5*time.Second, time.Millisecond, "the follow-up is scheduled")
	f.clock.Step(handlers.SurgeFollow)
	require.Eventually(t, func() bool { return len(testutil.Verbs(f.client)) >= 4 }, 5*time.Second, time.Millisecond, "evaluated again")
	assert.Equal(t, []string{"get deployments", "list pods", "list limitranges", "get leases"}, testutil.Verbs(f.client)[:4])
}

// The rollouts one replica follows are bounded (the delaying queue's own Len counts only
// those due): past MaxFollowed a new one is not queued, one already queued is not counted twice.
func TestSurgeFollowedIsBounded(t *testing.T) {
	f := newAdviceFixture(t, false, func(c *config.Config) { c.Surge.Enabled = true })
	for i := range handlers.MaxFollowed + 10 {
		f.surge.FollowUp("default", fmt.Sprintf("web-%d", i))
	}
	assert.Equal(t, handlers.MaxFollowed, f.surge.Queued())
	f.surge.FollowUp("default", "web-0")
	assert.Equal(t, handlers.MaxFollowed, f.surge.Queued(), "a rollout queued already is the same entry")
}
