package surge_test

import (
	"encoding/json"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/surge"
	"function/names"
)

// optedIn is the 1-replica Deployment web, maxSurge 1, maxUnavailable 0, opted in, read from
// the API server, its template asking cpu 10 (outside the VPA's bounds: selected at once).
func optedIn(opts ...deployOpt) *appsv1.Deployment {
	d := deployment(1, intOrStr(intstr.FromInt32(1)), intOrStr(intstr.FromInt32(0)), func(d *appsv1.Deployment) {
		d.UID, d.ResourceVersion = "uid-web", "100"
		d.Annotations = map[string]string{names.AnnotationSurgeRollout: "true"}
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: cpuMem("10", "1Gi")}}}
	})
	for _, o := range opts {
		o(d)
	}
	return d
}

func withState(s surge.State) deployOpt {
	return func(d *appsv1.Deployment) {
		b, err := json.Marshal(s)
		if err != nil {
			panic(err)
		}
		d.Annotations[names.AnnotationSurgeState] = string(b)
	}
}

// input is a decision input on which a restart is due: every precondition holds and VPA's
// updater would update the one pod.
func input(d *appsv1.Deployment, pods ...*corev1.Pod) surge.DecideInput {
	if pods == nil {
		pods = []*corev1.Pod{pod("web-1", cpuMem("10", "1Gi"), started)}
	}
	return surge.DecideInput{
		Input: surge.Input{Deployment: d, Pods: pods, VPA: vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi")),
			AdmissionController: true, Settings: surge.DefaultSettings()},
		Enabled: true, Limits: surge.LimitsOf(config.Default().Surge), Now: now,
	}
}

func TestDecide(t *testing.T) {
	predicted, err := surge.Predict(vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi")),
		&corev1.Pod{Spec: optedIn().Spec.Template.Spec})
	require.NoError(t, err)
	rolling := surge.State{Phase: surge.PhaseRolling, Prediction: predicted.Hash, Requests: predicted.Requests,
		Started: now.Add(-time.Minute), Generation: 4, CoolDown: 30 * time.Minute,
		Before: map[string]string{names.AnnotationRestartedAt: "", names.AnnotationPredictedResources: ""}}
	rolled := func(d *appsv1.Deployment) { // the restart's patch applied, the rollout complete
		d.Generation, d.Status.ObservedGeneration = 4, 4
		d.Spec.Template.Annotations = map[string]string{names.AnnotationPredictedResources: predicted.Hash, names.AnnotationRestartedAt: now.Format(time.RFC3339)}
	}
	// newPod is a pod of the new template that VPA's admission controller matched to its VPA.
	newPod := func(p *corev1.Pod) {
		p.Annotations = map[string]string{names.AnnotationPredictedResources: predicted.Hash, "vpaObservedContainers": "app"}
	}
	unmatched := func(p *corev1.Pod) { delete(p.Annotations, "vpaObservedContainers") }
	sized := pod("web-2", predicted.Requests["app"], now, newPod)
	oldDeleting := pod("web-1", cpuMem("10", "1Gi"), started, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} })
	tests := []struct {
		name   string
		in     surge.DecideInput
		action surge.Action
		reason string // contained
		check  func(t *testing.T, d surge.Decision)
	}{
		{name: "surgeRollout off", in: func() surge.DecideInput { in := input(optedIn()); in.Enabled = false; return in }(), reason: "surgeRollout is off"},
		{name: "not opted in", in: input(optedIn(func(d *appsv1.Deployment) { d.Annotations = nil })), reason: "is not \"true\""},
		{name: "a precondition fails: skipped, once", in: input(optedIn(func(d *appsv1.Deployment) { d.Spec.Paused = true })),
			action: surge.Skip, reason: "paused", check: func(t *testing.T, d surge.Decision) {
				assert.Equal(t, surge.CondPaused, d.State.Skipped)
				require.NotNil(t, d.Failed)
			}},
		{name: "... and not reported again", in: input(optedIn(func(d *appsv1.Deployment) { d.Spec.Paused = true }, withState(surge.State{Skipped: surge.CondPaused}))),
			reason: "skipped"},
		{name: "VPA's updater would update no pod", in: input(optedIn(), pod("web-1", cpuMem("4.8", "1Gi"), started)), reason: "would update no pod"},
		{name: "restart", in: input(optedIn()), action: surge.Restart, check: func(t *testing.T, d surge.Decision) {
			assert.Equal(t, predicted.Hash, d.Prediction.Hash)
			assert.Equal(t, map[string]string{names.AnnotationRestartedAt: now.Format(time.RFC3339), names.AnnotationPredictedResources: predicted.Hash}, d.Template)
			assert.Equal(t, surge.PhaseRolling, d.State.Phase)
			assert.Equal(t, int64(4), d.State.Generation, "the generation the restart makes")
			assert.Equal(t, 30*time.Minute, d.State.CoolDown)
			assert.Equal(t, predicted.Requests, d.State.Requests)
		}},
		{name: "never twice for one prediction", in: input(optedIn(withState(surge.State{Phase: surge.PhaseCompleted, Prediction: predicted.Hash, Started: now.Add(-24 * time.Hour), CoolDown: time.Minute}))),
			reason: "already rolled out"},
		{name: "an aborted prediction is tried again after its cool-down", in: input(optedIn(withState(surge.State{Phase: surge.PhaseAborted, Prediction: predicted.Hash,
			Started: now.Add(-24 * time.Hour), CoolDown: time.Minute, Failures: 1}))),
			action: surge.Restart, check: func(t *testing.T, d surge.Decision) {
				assert.Equal(t, 1, d.State.Failures, "the failures in a row are kept")
			}},
		{name: "after surgeMaxAttempts aborted rollouts in a row: stopped, said once", in: input(optedIn(withState(surge.State{Phase: surge.PhaseAborted,
			Prediction: predicted.Hash, Started: now.Add(-24 * time.Hour), CoolDown: time.Minute, Failures: 2, Reason: "pod web-2 was not sized as predicted"}))),
			action: surge.Skip, reason: "stopped: the last 2 surge rollouts were aborted", check: func(t *testing.T, d surge.Decision) {
				require.NotNil(t, d.Failed)
				assert.Equal(t, surge.CondGaveUp, d.Failed.Condition)
				assert.Equal(t, surge.CondGaveUp, d.State.Skipped)
				assert.Contains(t, d.Reason, names.AnnotationSurgeState, "says how to try again")
			}},
		{name: "... and not said again, for a new prediction either", in: input(optedIn(withState(surge.State{Phase: surge.PhaseAborted, Prediction: "other",
			Started: now.Add(-24 * time.Hour), CoolDown: time.Minute, Failures: 2, Skipped: surge.CondGaveUp}))), reason: "stopped"},
		{name: "inside the cool-down", in: input(optedIn(withState(surge.State{Phase: surge.PhaseCompleted, Prediction: "other", Started: now.Add(-10 * time.Minute), CoolDown: 30 * time.Minute}))),
			reason: "cool-down until"},
		{name: "selected again within 12 h: the cool-down doubles", in: input(optedIn(withState(surge.State{Phase: surge.PhaseCompleted, Prediction: "other", Started: now.Add(-time.Hour), CoolDown: 30 * time.Minute}))),
			action: surge.Restart, check: func(t *testing.T, d surge.Decision) { assert.Equal(t, time.Hour, d.State.CoolDown) }},
		{name: "budget: in flight", in: func() surge.DecideInput { in := input(optedIn()); in.Budget.InFlight = 2; return in }(), reason: "in flight"},
		{name: "budget: per minute", in: func() surge.DecideInput { in := input(optedIn()); in.Budget.LastMinute = 6; return in }(), reason: "last minute"},
		{name: "an unreadable state is ignored, with a warning", in: input(optedIn(func(d *appsv1.Deployment) { d.Annotations[names.AnnotationSurgeState] = "{" })),
			action: surge.Restart, check: func(t *testing.T, d surge.Decision) { assert.Contains(t, d.Warning, "invalid") }},
		{name: "a state started in the future is ignored, with a warning", in: input(optedIn(withState(surge.State{Phase: surge.PhaseCompleted,
			Prediction: "other", Started: now.Add(time.Hour), CoolDown: 30 * time.Minute}))),
			action: surge.Restart, check: func(t *testing.T, d surge.Decision) { assert.Contains(t, d.Warning, "in the future") }},
		{name: "a phase out of the closed set is ignored, with a warning", in: input(optedIn(withState(surge.State{Phase: "paused-forever", Prediction: predicted.Hash}))),
			action: surge.Restart, check: func(t *testing.T, d surge.Decision) { assert.Contains(t, d.Warning, `"paused-forever"`) }},
		{name: "a namespace not selected is never written, not even a rollout in flight", in: func() surge.DecideInput {
			in := input(optedIn(withState(rolling), rolled), sized)
			in.Excluded = true
			return in
		}(), reason: "not selected"},
		{name: "a rollout in flight of a Deployment no longer opted in is not written", in: input(optedIn(withState(rolling), rolled,
			func(d *appsv1.Deployment) { delete(d.Annotations, names.AnnotationSurgeRollout) }), sized), reason: "is not \"true\""},
		{name: "surgeRollout off (or uninstalling): a rollout in flight is still followed to its end", in: func() surge.DecideInput {
			in := input(optedIn(withState(rolling), rolled), sized)
			in.Enabled = false
			return in
		}(), action: surge.Complete},

		{name: "rolling: in progress", in: input(optedIn(withState(rolling), rolled, func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 0 }), sized), reason: "rolling"},
		{name: "rolling: complete and sized", in: input(optedIn(withState(rolling), rolled), sized), action: surge.Complete,
			check: func(t *testing.T, d surge.Decision) { assert.Equal(t, surge.PhaseCompleted, d.State.Phase) }},
		{name: "rolling: complete, not sized", in: input(optedIn(withState(rolling), rolled), pod("web-2", cpuMem("10", "1Gi"), now, newPod)), action: surge.Abort,
			reason: "not sized as predicted"},
		{name: "rolling: complete, the old pod still terminating", in: input(optedIn(withState(rolling), rolled), oldDeleting, sized), action: surge.Complete},
		{name: "rolling: complete, no new pod read yet (and none serving: a gap)", in: input(optedIn(withState(rolling), rolled), oldDeleting),
			action: surge.Track, reason: "no pod of the new template read yet; capacity gap 1",
			check: func(t *testing.T, d surge.Decision) { assert.Equal(t, int32(1), d.State.Gap) }},
		{name: "rolling: a capacity gap is tracked", in: input(optedIn(withState(rolling), rolled, func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 0 }),
			pod("web-1", cpuMem("10", "1Gi"), started, func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })),
			action: surge.Track, reason: "capacity gap 1", check: func(t *testing.T, d surge.Decision) {
				assert.Equal(t, surge.PhaseRolling, d.State.Phase)
				assert.Equal(t, int32(1), d.State.Gap)
				assert.Equal(t, int64(5), d.State.Generation, "the generation its own write makes (an annotation change is one)")
			}},
		{name: "rolling: ... but only when it grew", in: input(optedIn(withState(func() surge.State { s := rolling; s.Gap = 1; return s }()), rolled,
			func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 0 }), oldDeleting), reason: "rolling"},
		{name: "rolling: the gap seen is kept at the end", in: input(optedIn(withState(func() surge.State { s := rolling; s.Gap = 1; return s }()), rolled), sized),
			action: surge.Complete, check: func(t *testing.T, d surge.Decision) { assert.Equal(t, int32(1), d.State.Gap) }},
		{name: "rolling: no progress", in: input(optedIn(withState(rolling), rolled, func(d *appsv1.Deployment) {
			d.Status.UpdatedReplicas = 0
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}
		}), sized), action: surge.Abort, reason: "ProgressDeadlineExceeded", check: func(t *testing.T, d surge.Decision) {
			assert.Equal(t, rolling.Before, d.Template, "the template annotations restored")
			assert.Equal(t, time.Hour, d.State.CoolDown, "backed off")
			assert.Equal(t, surge.PhaseAborted, d.State.Phase)
		}},
		{name: "rolling: a surge pod Pending too long", in: input(optedIn(withState(rolling), rolled, func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 0 }),
			pod("web-1", cpuMem("10", "1Gi"), started), pod("web-2", predicted.Requests["app"], now, newPod, func(p *corev1.Pod) {
				p.Status.Phase, p.CreationTimestamp = corev1.PodPending, metav1.NewTime(now.Add(-6*time.Minute))
			})), action: surge.Abort, reason: "Pending"},
		{name: "rolling: past surgeRolloutTimeout, whatever progressDeadlineSeconds says", in: input(optedIn(withState(func() surge.State {
			s := rolling
			s.Started = now.Add(-16 * time.Minute)
			return s
		}()), rolled, func(d *appsv1.Deployment) {
			d.Status.UpdatedReplicas = 0
			d.Spec.ProgressDeadlineSeconds = ptr.To(int32(1 << 30))
		}), pod("web-1", cpuMem("10", "1Gi"), started)), action: surge.Abort, reason: "not complete within surgeRolloutTimeout 15m0s",
			check: func(t *testing.T, d surge.Decision) { assert.Equal(t, 1, d.State.Failures) }},
		{name: "rolling: the first new pod mis-sized aborts at once, the old pod still serving", in: input(optedIn(withState(rolling), rolled,
			func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 0 }), pod("web-1", cpuMem("10", "1Gi"), started),
			pod("web-2", cpuMem("10", "1Gi"), now, newPod, func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })),
			action: surge.Abort, reason: "not sized as predicted"},
		{name: "rolling: a new pod VPA's admission controller did not match: aborted, to be tried again at once", in: input(optedIn(withState(rolling), rolled,
			func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 0 }), pod("web-1", cpuMem("10", "1Gi"), started),
			pod("web-2", cpuMem("10", "1Gi"), now, newPod, unmatched)), action: surge.Abort, reason: "VPA's admission controller did not size it",
			check: func(t *testing.T, d surge.Decision) {
				assert.True(t, d.State.Unsized)
				assert.Equal(t, 30*time.Minute, d.State.CoolDown, "not backed off")
				assert.Equal(t, 1, d.State.Failures, "it counts as an attempt")
			}},
		{name: "after an abort for a pod VPA did not match: the same prediction again, inside the cool-down", in: input(optedIn(withState(surge.State{Phase: surge.PhaseAborted,
			Prediction: predicted.Hash, Started: now.Add(-time.Minute), CoolDown: 30 * time.Minute, Failures: 1, Unsized: true}))),
			action: surge.Restart, check: func(t *testing.T, d surge.Decision) {
				assert.False(t, d.State.Unsized)
				assert.Equal(t, now.Add(-time.Minute).UTC().Format(time.RFC3339), d.Template[names.AnnotationRestartedAt],
					"the aborted attempt's template again: its ReplicaSet is scaled up, not a new one made")
			}},
		{name: "... but not a third time", in: input(optedIn(withState(surge.State{Phase: surge.PhaseAborted,
			Prediction: predicted.Hash, Started: now.Add(-time.Minute), CoolDown: 30 * time.Minute, Failures: 2, Unsized: true}))),
			action: surge.Skip, reason: "stopped"},
		{name: "rolling: the user changed the Deployment", in: input(optedIn(withState(rolling), rolled, func(d *appsv1.Deployment) { d.Generation = 5 }), sized),
			action: surge.Release, reason: "the user's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := surge.Decide(tt.in)
			assert.Equal(t, tt.action, d.Action, "action %s (reason %q)", d.Action, d.Reason)
			assert.Contains(t, d.Reason, tt.reason)
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

// The patch applies the decision to the Deployment as read, and nothing else.
func TestPatch(t *testing.T) {
	d := optedIn()
	dec := surge.Decide(input(d))
	require.Equal(t, surge.Restart, dec.Action)
	p, err := surge.Patch(d, dec)
	require.NoError(t, err)
	var ops []map[string]any
	require.NoError(t, json.Unmarshal(p, &ops))
	assert.Equal(t, map[string]any{"op": "test", "path": "/metadata/uid", "value": "uid-web"}, ops[0])
	assert.Equal(t, map[string]any{"op": "test", "path": "/metadata/resourceVersion", "value": "100"}, ops[1])

	applied := apply(t, d, p)
	assert.Equal(t, dec.Template, applied.Spec.Template.Annotations)
	st, err := surge.ReadState(applied)
	require.NoError(t, err)
	assert.Equal(t, dec.State.Prediction, st.Prediction)
	assert.Equal(t, "true", applied.Annotations[names.AnnotationSurgeRollout], "the opt-in kept")

	// Abort restores: an annotation absent before is removed again.
	abort := surge.Decision{Action: surge.Abort, State: surge.State{Phase: surge.PhaseAborted},
		Template: map[string]string{names.AnnotationRestartedAt: "", names.AnnotationPredictedResources: ""}}
	p, err = surge.Patch(applied, abort)
	require.NoError(t, err)
	assert.Empty(t, apply(t, applied, p).Spec.Template.Annotations)

	// Another resourceVersion: the guard fails.
	stale := applied.DeepCopy()
	stale.ResourceVersion = "99"
	p, err = surge.Patch(stale, abort)
	require.NoError(t, err)
	_, err = applyErr(applied, p)
	assert.Error(t, err, "a patch decided on another read does not apply")

	_, err = surge.Patch(d, surge.Decision{})
	assert.Error(t, err, "none writes nothing")
	unread := d.DeepCopy()
	unread.ResourceVersion = ""
	_, err = surge.Patch(unread, dec)
	assert.Error(t, err, "only a Deployment read from the API server")
}

func apply(t *testing.T, d *appsv1.Deployment, patch []byte) *appsv1.Deployment {
	t.Helper()
	out, err := applyErr(d, patch)
	require.NoError(t, err)
	return out
}

func applyErr(d *appsv1.Deployment, patch []byte) (*appsv1.Deployment, error) {
	doc, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	out, err := p.Apply(doc)
	if err != nil {
		return nil, err
	}
	var res appsv1.Deployment
	return &res, json.Unmarshal(out, &res)
}
