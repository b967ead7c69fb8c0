package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
)

// The reconciler reads the owner's replicas from its pods, not its status (which lags), counts
// only the pods of its own ReplicaSets (not another Deployment's that its selector matches),
// and a Ready replacement's event releases the waiting pod at once.
func TestReconcileWaitsForTheReplacement(t *testing.T) {
	ctx := context.Background()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	readyCond := func(at time.Time) podOpt {
		return func(p *corev1.Pod) {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)})
		}
	}
	label := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} }
	sibling := newPod(label, deployment, readyCond(now.Add(-time.Hour)), func(p *corev1.Pod) { p.Name, p.UID = "web-2", "uid-2" })
	replacement := newPod(label, deployment, func(p *corev1.Pod) { p.Name, p.UID = "web-3", "uid-3" })
	evictee := newPod(label, managed, ours, deployment, deleting, evicted(nowSec.Add(-time.Second)), started(nowSec.Add(-time.Second)), stoppedAt(now))
	// A canary Deployment whose selector overlaps web's: its Ready pod is not web's replacement.
	canary := newPod(label, ownedBy("Deployment", "web-canary"), readyCond(now.Add(-time.Minute)), func(p *corev1.Pod) { p.Name, p.UID = "web-canary-1", "uid-c1" })

	f := newFixture(t, false, dep, sibling, replacement, evictee, canary)
	cfg := config.Default()
	cfg.GracePeriod, cfg.SweepInterval = 0, 0
	f.rec.SetConfig(cfg)
	out, err := f.rec.ReconcileLive(ctx, evictee) // as a re-check or a sweep reads it
	require.NoError(t, err)
	assert.Equal(t, drain.Wait, out.Decision.Action, out.Decision.Reason)
	assert.Contains(t, out.Decision.Reason, "1/2 Ready")
	assert.Equal(t, []string{"get deployments", "list pods", "create events"}, testutil.Verbs(f.client),
		"one read of the owner, one list of its pods; a DrainWaiting Event")
	require.Len(t, events(f.client), 1)
	assert.Equal(t, names.EventDrainWaiting, events(f.client)[0].Reason)
	assert.Contains(t, events(f.client)[0].Message, "replacement-ready (1/2 Ready)")

	// The replacement becomes Ready: its own event brings the waiting pod's look forward
	// (the fake clock never moves: only the nudge can make the re-check due).
	readyCond(now.Add(time.Second))(replacement) // after the containers stopped (at now)
	_, err = f.client.CoreV1().Pods("default").UpdateStatus(ctx, replacement, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = f.rec.Reconcile(ctx, replacement)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return len(livePod(t, f.client, evictee.Name).Finalizers) == 0
	}, waitFor, tick, "released once the replacement is Ready")
	require.Eventually(t, func() bool { // the Event follows the patch
		last := events(f.client)[len(events(f.client))-1]
		return last.Reason == names.EventDrainCompleted && strings.Contains(last.Message, "Replacement Ready")
	}, waitFor, tick, "a DrainCompleted Event, reason replaced")
}

func TestCountServingEndpoints(t *testing.T) {
	// Evicted a second ago: a grace period of 0 is over.
	pod := newPod(managed, ours, deployment, deleting, evicted(nowSec.Add(-time.Second)), started(nowSec.Add(-time.Second)), stoppedAt(now))
	slice := func(name string, conds ...discoveryv1.EndpointConditions) runtime.Object {
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, AddressType: discoveryv1.AddressTypeIPv4}
		for _, c := range conds {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: c,
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod.Name, UID: pod.UID}})
		}
		return s
	}
	tests := []struct {
		name   string
		slices []runtime.Object
		want   drain.Action
	}{
		{"no slice lists the pod", nil, drain.RemoveFinalizer},
		{"terminating but still serving", []runtime.Object{slice("a", discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)})}, drain.Wait},
		{"terminating, not serving", []runtime.Object{slice("a", discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)})}, drain.RemoveFinalizer},
		{"serving unreported, ready", []runtime.Object{slice("a", discoveryv1.EndpointConditions{Ready: ptr.To(true)})}, drain.Wait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false, append(tt.slices, pod.DeepCopy())...)
			cfg, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: `{"Deployment":{"waitForEndpoints":true,"waitForReplacement":false,"gracePeriodSeconds":0}}`})
			require.NoError(t, err)
			cfg.SweepInterval = 0
			f.rec.SetConfig(cfg)
			out, err := f.rec.Reconcile(context.Background(), pod)
			require.NoError(t, err)
			assert.Equal(t, tt.want, out.Decision.Action, out.Decision.Reason)
		})
	}
}

// Every fact a gate of drain.Gates needs, and the owner, has exactly one read in gather.
func TestEveryGateNeedIsRead(t *testing.T) {
	want := []drain.Need{drain.NeedOwner}
	for _, g := range drain.Gates() {
		want = append(want, g.Needs)
	}
	assert.ElementsMatch(t, want, handlers.FactReadNeeds())
}
