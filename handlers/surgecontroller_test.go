package handlers_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/surge"
	"function/internal/testutil"
	"function/names"
)

func surgeOn(c *config.Config) { c.Surge.Enabled = true }

// countVerbs counts the actions "verb resource" among verbs.
func countVerbs(verbs []string, want string) int {
	n := 0
	for _, v := range verbs {
		if v == want {
			n++
		}
	}
	return n
}

func deploymentEvents(t *testing.T, f *adviceFixture, ns string) []corev1.Event {
	t.Helper()
	events, err := f.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	return events.Items
}

// A write the API server refuses for good (a 403 from the admission policy, a 422 while the
// Deployment is as it was read: e.g. annotations over the size limit) is not a failed guard:
// it is said once (SurgeRolloutFailed, metric outcome failed) and never tried again for that
// prediction, whatever events and sweeps come in the next minute. An error the API server may
// not repeat (a 500, a 429) is retried with the Deployment's backoff.
func TestSurgeWriteRefused(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	tests := []struct {
		name     string
		err      error
		terminal bool
		// mayBeApplied: an answer after which the write may have been made
		mayBeApplied bool
	}{
		{name: "403 from the admission policy", err: apierrors.NewForbidden(gr, "web", errors.New("ValidatingAdmissionPolicy 'vpa-graceful-drain' denied request")), terminal: true},
		{name: "422, the Deployment unchanged: not a guard", err: apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", nil), terminal: true},
		{name: "500: retried with backoff", err: apierrors.NewInternalError(errors.New("etcd is sad")), mayBeApplied: true},
		{name: "429: retried with backoff", err: apierrors.NewTooManyRequests("slow down", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdviceFixture(t, false, surgeOn, surgeObjects("Initial")...)
			m := &surgeMetrics{}
			f.surge.Metrics = m
			f.client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tt.err })
			ctx := context.Background()
			f.reset()
			for range 60 { // a VPA event every second for a minute, and two sweeps
				_, err := f.surge.ForVPA(ctx, "default", "web")
				if tt.terminal {
					require.NoError(t, err)
				}
				f.clock.Step(time.Second)
			}
			for range 2 {
				_, err := f.surge.Sweep(ctx)
				require.NoError(t, err)
			}
			verbs := testutil.Verbs(f.client)
			assert.LessOrEqual(t, countVerbs(verbs, "list deployments"), 2, "no decision lists every Deployment: %v", verbs)
			slots, err := f.surge.Budget.Read(ctx, f.clock.Now(), 15*time.Minute)
			require.NoError(t, err)
			if tt.mayBeApplied {
				// A 500 may come after the write was made: the claim stays, and it blocks a
				// second restart for ClaimGrace (then the Deployment, not rolling, shows it
				// was not written, and the orphaned claim is replaced).
				patches := countVerbs(verbs, "patch deployments")
				assert.GreaterOrEqual(t, patches, 2, "tried again: %v", verbs)
				assert.LessOrEqual(t, patches, 3, "at most once per ClaimGrace: %v", verbs)
				assert.Len(t, slots.InFlight(), 1, "one claim, never two for one Deployment")
			} else {
				assert.Empty(t, slots.InFlight(), "a claim whose restart was refused is given back")
			}
			if !tt.terminal {
				assert.Positive(t, f.surge.Queued(), "queued again, with its backoff")
				return
			}
			assert.Equal(t, 1, countVerbs(verbs, "patch deployments"), "one attempt for the prediction: %v", verbs)
			assert.Equal(t, []string{handlers.OutcomeFailed}, m.outcomes)
			events := deploymentEvents(t, f, "default")
			require.Len(t, events, 1)
			assert.Equal(t, names.EventSurgeRolloutFailed, events[0].Reason)
			assert.Equal(t, corev1.EventTypeWarning, events[0].Type)
			assert.Contains(t, events[0].Message, "not tried again for this prediction")
			assert.Zero(t, f.surge.Queued(), "nothing queued to retry it")
		})
	}
}

// forged is a Deployment in namespace ns that someone else annotated with state: it is not
// the function's (no slot of the budget), whatever it says.
func forged(ns, name string, st string, opts ...deployOpt) runtime.Object {
	d := webDeployment(1, append([]deployOpt{func(d *appsv1.Deployment) {
		d.Namespace, d.Name, d.UID = ns, name, types.UID("uid-"+ns+"-"+name)
		d.Annotations = map[string]string{names.AnnotationSurgeRollout: "true", names.AnnotationSurgeState: st}
	}}, opts...)...)
	return d
}

// Forged states cannot stop or take the budget, and are never written in a namespace the
// configuration excludes; a rollout stuck for ever ends at its deadline.
func TestSurgeForgedStates(t *testing.T) {
	future := `{"phase":"completed","started":"2999-01-01T00:00:00Z"}`
	rolling := `{"phase":"rolling","prediction":"x","started":"` + now.Add(-time.Minute).Format(time.RFC3339) + `","generation":1}`
	objs := append(surgeObjects("Initial"),
		forged("kube-system", "a", future), forged("kube-system", "b", future), forged("kube-system", "c", `{"phase":"evil"}`),
		forged("kube-system", "d", rolling, func(d *appsv1.Deployment) { d.Generation = 1; d.Spec.ProgressDeadlineSeconds = ptr.To(int32(1 << 30)) }),
		forged("kube-system", "e", rolling, func(d *appsv1.Deployment) { d.Generation = 1 }),
		forged("kube-system", "f", future))
	f := newAdviceFixture(t, false, surgeOn, objs...)
	ctx := context.Background()
	f.reset()
	res, err := f.surge.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Decisions["restart"], "the opted-in Deployment restarts: %v", res.Decisions)
	for _, a := range f.client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "get" {
			assert.NotEqual(t, "kube-system", a.GetNamespace(), "a write in the excluded namespace: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	assert.Empty(t, deploymentEvents(t, f, "kube-system"))

	// The rollout never completes (the fake has no Deployment controller, and does not count
	// generations: as the API server does, by hand): at its deadline (surgeRolloutTimeout,
	// 15m) it is aborted and its slot ended.
	d, err := f.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	d.Generation++
	_, err = f.client.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	f.clock.Step(16 * time.Minute)
	res, err = f.surge.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Decisions["abort"], "%v", res.Decisions)
	d, err = f.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	st, err := surge.ReadState(d)
	require.NoError(t, err)
	assert.Equal(t, surge.PhaseAborted, st.Phase)
	assert.Contains(t, st.Reason, "surgeRolloutTimeout")
	slots, err := f.surge.Budget.Read(ctx, f.clock.Now(), 15*time.Minute)
	require.NoError(t, err)
	assert.Empty(t, slots.InFlight())
}

// A state that is not the function's is ignored with one Warning Event per value.
func TestSurgeInvalidStateWarnedOnce(t *testing.T) {
	objs := surgeObjects("Recreate") // skipped: nothing else written
	d := objs[0].(*appsv1.Deployment)
	d.Annotations[names.AnnotationSurgeState] = `{"phase":"` + strings.Repeat("x", 5000) + `"}`
	f := newAdviceFixture(t, false, surgeOn, objs...)
	ctx := context.Background()
	for range 3 {
		_, err := f.surge.Sweep(ctx)
		require.NoError(t, err)
		f.clock.Step(time.Minute)
	}
	var warnings []corev1.Event
	for _, e := range deploymentEvents(t, f, "default") {
		if e.Reason == names.EventSurgeRolloutStateInvalid {
			warnings = append(warnings, e)
		}
	}
	require.Len(t, warnings, 1)
	assert.Equal(t, corev1.EventTypeWarning, warnings[0].Type)
	assert.Less(t, len(warnings[0].Message), 1024, "the value is cut")
	assert.Contains(t, warnings[0].Message, "(5000 bytes)")
}

// Every way out is honoured: with surgeRollout turned off, or while uninstalling, a rollout in
// flight is followed to its end (here: completed), and none starts.
func TestSurgeWaysOut(t *testing.T) {
	for _, tt := range []struct {
		name string
		off  func(*config.Config)
	}{
		{name: "surgeRollout off", off: func(c *config.Config) { c.Surge.Enabled = false }},
		{name: "uninstalling", off: func(c *config.Config) { c.Uninstalling = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			other := webDeployment(1, func(d *appsv1.Deployment) { // opted in too, due a rollout
				d.Name, d.UID = "api", "uid-api"
				d.Annotations = map[string]string{names.AnnotationSurgeRollout: "true"}
			})
			f := newAdviceFixture(t, false, surgeOn, append(surgeObjects("Initial"), other)...)
			ctx := context.Background()
			rep, err := f.surge.ForVPA(ctx, "default", "web")
			require.NoError(t, err)
			require.NotNil(t, rep)
			require.Equal(t, surge.Restart, rep.Decision.Action)

			cfg := f.rec.CurrentConfig()
			tt.off(&cfg)
			f.rec.SetConfig(cfg)
			completeRollout(t, f)
			f.reset()
			res, err := f.surge.Sweep(ctx)
			require.NoError(t, err)
			assert.Equal(t, map[string]int{"complete": 1}, res.Decisions, "only the rollout in flight is evaluated")
			assert.Zero(t, countVerbs(testutil.Verbs(f.client), "list deployments"), "no Deployment listed to start one")
			d, err := f.client.AppsV1().Deployments("default").Get(ctx, "api", metav1.GetOptions{})
			require.NoError(t, err)
			assert.Empty(t, d.Spec.Template.Annotations[names.AnnotationRestartedAt], "none started")
		})
	}
}

// completeRollout plays the Deployment controller for web's rollout: the generation observed,
// the old pod gone, a new pod sized as predicted and Ready.
func completeRollout(t *testing.T, f *adviceFixture) {
	t.Helper()
	ctx := context.Background()
	deployments, pods := f.client.AppsV1().Deployments("default"), f.client.CoreV1().Pods("default")
	d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	st, err := surge.ReadState(d)
	require.NoError(t, err)
	d.Generation = st.Generation
	d.Status.ObservedGeneration = st.Generation
	d.ResourceVersion = "11"
	_, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, pods.Delete(ctx, newPod(deployment).Name, metav1.DeleteOptions{}))
	_, err = pods.Create(ctx, newPod(deployment, func(p *corev1.Pod) {
		p.Name, p.UID = "web-new", "uid-web-new"
		p.Labels["app"] = "web"
		p.Annotations = map[string]string{names.AnnotationPredictedResources: st.Prediction}
		p.Spec.Containers = []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: st.Requests["app"]}}}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}), metav1.CreateOptions{})
	require.NoError(t, err)
}

// A rollout in flight whose every write is refused for good (the admission policy, annotations
// over the size limit) is said once and then evaluated again only with the Deployment's growing
// backoff, not every SurgeFollow for ever.
func TestSurgeRefusedFollowBacksOff(t *testing.T) {
	f := newAdviceFixture(t, false, surgeOn, surgeObjects("Initial")...)
	testutil.GenerateNames(f.client)
	ctx := context.Background()
	rep, err := f.surge.ForVPA(ctx, "default", "web")
	require.NoError(t, err)
	require.NotNil(t, rep)
	require.Equal(t, surge.Restart, rep.Decision.Action)
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	f.client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(gr, "web", errors.New("denied"))
	})
	f.clock.Step(16 * time.Minute) // past surgeRolloutTimeout: a write is due
	f.reset()
	for range 10 {
		_, err := f.surge.Evaluate(ctx, "default", "web")
		require.NoError(t, err)
		f.clock.Step(handlers.SurgeFollow)
	}
	assert.Equal(t, 1, countVerbs(testutil.Verbs(f.client), "patch deployments"), "one attempt")
	assert.Equal(t, 9, f.surge.Requeues("default/web"), "each later evaluation with the backoff")
	failed := 0
	for _, e := range deploymentEvents(t, f, "default") {
		if e.Reason == names.EventSurgeRolloutFailed {
			failed++
		}
	}
	assert.Equal(t, 1, failed, "said once")
}
