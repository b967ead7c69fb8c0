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
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/drain"
	"function/internal/testutil"
)

// ownedBy makes the pod a controller-owned pod: kind "Deployment" means the ReplicaSet
// web-7d9f8 its Deployment web made (pod-template-hash label), "" a bare pod.
func ownedBy(kind, name string) podOpt {
	return func(p *corev1.Pod) {
		ref := metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(true)}
		if kind == "Deployment" {
			ref.Kind, ref.Name, ref.UID = "ReplicaSet", name+"-7d9f8", "uid-rs-"+types.UID(name)
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels["pod-template-hash"] = "7d9f8"
		}
		p.OwnerReferences = []metav1.OwnerReference{ref}
	}
}

var deployment = ownedBy("Deployment", "web")

// stoppedAt reports every container terminated at t.
func stoppedAt(t time.Time) podOpt {
	return statuses(corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(t)}}})
}

func replicas(desired, ready int32, readyAt time.Time) drain.Facts {
	return drain.Facts{Replicas: &drain.Replicas{Desired: desired, Ready: ready, ReadyAt: readyAt}}
}

func TestDecideWorkloads(t *testing.T) {
	def := config.Default() // grace 30 s, timeout 300 s, holdOn evictions
	holdAll := config.Default()
	holdAll.HoldOn = config.HoldAll
	withEndpoints, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: `{"Deployment":{"waitForEndpoints":true,"gracePeriodSeconds":0}}`})
	require.NoError(t, err)
	podsManaged, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: `{"Pod":{"manage":true},"Job":{"manage":true}}`})
	require.NoError(t, err)

	evictedNow := evicted(nowSec)
	afterGrace := now.Add(31 * time.Second)
	// The next second: an eviction at nowSec may have happened as late as nowSec + 1 s, so a
	// grace period of 0 is over only then.
	inSecond := nowSec.Add(time.Second)
	tests := []struct {
		name   string
		pod    *corev1.Pod
		cfg    config.Config
		at     time.Time
		facts  drain.Facts
		action drain.Action
		reason string // exact for RemoveFinalizer, contained otherwise
		kind   config.Kind
		needs  drain.Need
		gates  []drain.Gate // when set, exactly these
	}{
		// ---- which pods are managed ----
		{name: "Deployment pod: managed without a read", pod: newPod(managed, deployment), cfg: def,
			action: drain.AddFinalizer, reason: "owner kind Deployment", kind: config.KindDeployment},
		{name: "StatefulSet pod managed", pod: newPod(managed, ownedBy("StatefulSet", "db")), cfg: def,
			action: drain.AddFinalizer, kind: config.KindStatefulSet},
		{name: "DaemonSet pod managed", pod: newPod(managed, ownedBy("DaemonSet", "agent")), cfg: def,
			action: drain.AddFinalizer, kind: config.KindDaemonSet},
		{name: "bare pod not managed by default", pod: newPod(managed), cfg: def,
			action: drain.None, reason: "owner kind Pod is not managed (workloadDefaults)", kind: config.KindPod},
		{name: "Job pod not managed by default", pod: newPod(managed, ownedBy("Job", "nightly")), cfg: def,
			action: drain.None, reason: "owner kind Job is not managed", kind: config.KindJob},
		{name: "bare and Job pods managed when configured", pod: newPod(managed, ownedBy("Job", "nightly")), cfg: podsManaged,
			action: drain.AddFinalizer, kind: config.KindJob},
		{name: "a held Job pod is released once Jobs are not managed", pod: newPod(managed, ours, ownedBy("Job", "nightly")), cfg: def,
			action: drain.RemoveFinalizer, reason: drain.ReasonUnmanaged},
		{name: "a ReplicaSet without pod-template-hash: its owner is read", pod: newPod(managed, ownedBy("ReplicaSet", "legacy")), cfg: def,
			action: drain.None, needs: drain.NeedOwner},
		{name: "... and it is a bare ReplicaSet", pod: newPod(managed, ownedBy("ReplicaSet", "legacy")), cfg: def,
			facts:  drain.Facts{Owner: &drain.Owner{Kind: config.KindReplicaSet, Name: "legacy"}},
			action: drain.AddFinalizer, kind: config.KindReplicaSet},
		{name: "... unreadable owner: managed as a ReplicaSet", pod: newPod(managed, ownedBy("ReplicaSet", "legacy")), cfg: def,
			facts:  drain.Facts{Unavailable: drain.NeedOwner, Errors: []string{"forbidden"}},
			action: drain.AddFinalizer, kind: config.KindReplicaSet},
		{name: "other controllers managed", pod: newPod(managed, ownedBy("Rollout", "canary")), cfg: def,
			action: drain.AddFinalizer, kind: config.KindOther},

		// ---- evictions only ----
		{name: "plain delete released at once", pod: newPod(managed, ours, deployment, deleting), cfg: def,
			action: drain.RemoveFinalizer, reason: drain.ReasonNotEvicted},
		{name: "preemption is not an eviction", pod: newPod(managed, ours, deployment, deleting, func(p *corev1.Pod) {
			evicted(nowSec)(p)
			p.Status.Conditions[0].Reason = "PreemptionByScheduler"
		}), cfg: def, action: drain.RemoveFinalizer, reason: drain.ReasonNotEvicted},
		{name: "eviction held", pod: newPod(managed, ours, deployment, deleting, evictedNow), cfg: def,
			action: drain.StartDrain, reason: "grace period"},
		{name: "holdOn all holds a plain delete", pod: newPod(managed, ours, deployment, deleting), cfg: holdAll,
			action: drain.StartDrain, reason: "grace period"},

		// ---- Deployment: containers, then the replacement ----
		{name: "Deployment: containers stopped after the grace: the owner is read", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, action: drain.Wait, needs: drain.NeedReplicas},
		{name: "Deployment: replacement not Ready: waits, gate visible", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: replicas(3, 2, now.Add(-time.Hour)), action: drain.Wait, reason: "waiting for replacement-ready (2/3 Ready)",
			gates: []drain.Gate{{Name: drain.GateGracePeriod, Open: true, Detail: "30s"}, {Name: drain.GateContainers, Open: true, Detail: "all containers terminated"},
				{Name: drain.GateReplacement, Detail: "2/3 Ready"}}},
		{name: "Deployment: after the kubelet's grace-0 DELETE, still waits for the replacement", pod: newPod(managed, ours, deployment, graceZero, evicted(nowSec.Add(-2*time.Second)), started(nowSec.Add(-2*time.Second)), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: replicas(2, 1, now.Add(-time.Hour)), action: drain.Wait, reason: "waiting for replacement-ready (1/2 Ready)"},
		{name: "Deployment: replacement Ready last: replaced", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: replicas(3, 3, afterGrace.Add(-100*time.Millisecond)), action: drain.RemoveFinalizer, reason: drain.ReasonReplaced},
		{name: "Deployment: replacement was Ready before the containers stopped: drained", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now.Add(20*time.Second))),
			cfg: def, at: afterGrace, facts: replicas(3, 3, now.Add(5*time.Second)), action: drain.RemoveFinalizer, reason: drain.ReasonDrained},
		{name: "Deployment: found waiting for the replacement before: replaced, whatever the coarse API times say", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: drain.Facts{Replicas: &drain.Replicas{Desired: 3, Ready: 3, ReadyAt: nowSec}, WaitedForReplacement: true},
			action: drain.RemoveFinalizer, reason: drain.ReasonReplaced},
		{name: "Deployment: the owner cannot be read: waits until the deadline", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: drain.Facts{Unavailable: drain.NeedReplicas, Errors: []string{"forbidden"}}, action: drain.Wait, reason: "unknown: forbidden"},
		{name: "Deployment: at the deadline, released whatever the owner", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: now.Add(301 * time.Second), action: drain.RemoveFinalizer, reason: drain.ReasonTimeout},
		{name: "Deployment: wait-for-replacement=false on the pod", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now),
			ann(drain.AnnotationWaitForReplacement, "false")), cfg: def, at: afterGrace, action: drain.RemoveFinalizer, reason: drain.ReasonDrained},

		// ---- StatefulSet / DaemonSet: containers only, no grace ----
		{name: "StatefulSet: released as soon as the containers stopped", pod: newPod(managed, ours, ownedBy("StatefulSet", "db"), deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: inSecond, action: drain.RemoveFinalizer, reason: drain.ReasonDrained},
		{name: "StatefulSet: wait-for-replacement=true ignored (it would only hold until the deadline)", pod: newPod(managed, ours, ownedBy("StatefulSet", "db"), deleting, evictedNow, started(nowSec), stoppedAt(now),
			ann(drain.AnnotationWaitForReplacement, "true")), cfg: def, at: inSecond, action: drain.RemoveFinalizer, reason: drain.ReasonDrained},
		{name: "DaemonSet: containers running: waits for them only", pod: newPod(managed, ours, ownedBy("DaemonSet", "agent"), deleting, evictedNow, started(nowSec)),
			cfg: def, at: inSecond, action: drain.Wait, reason: "containers running",
			gates: []drain.Gate{{Name: drain.GateGracePeriod, Open: true, Detail: "0s"}, {Name: drain.GateContainers, Detail: "containers running"}}},

		// ---- EndpointSlice gate ----
		{name: "endpoints gate: read once the containers stopped", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: withEndpoints, at: now.Add(time.Second), action: drain.Wait, needs: drain.NeedReplicas | drain.NeedEndpoints},
		{name: "endpoints gate: still serving", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: withEndpoints, at: now.Add(time.Second), facts: drain.Facts{Replicas: &drain.Replicas{Desired: 2, Ready: 2}, Serving: ptr.To(1)},
			action: drain.Wait, reason: "waiting for endpoints-gone (serving in 1 endpoint(s))"},
		{name: "endpoints gate: per-pod opt-out", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now), ann(drain.AnnotationWaitForEndpoints, "false")),
			cfg: withEndpoints, at: now.Add(time.Second), facts: drain.Facts{Replicas: &drain.Replicas{Desired: 2, Ready: 2}},
			action: drain.RemoveFinalizer, reason: drain.ReasonDrained},
		{name: "endpoints gate: gone", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: withEndpoints, at: now.Add(time.Second), facts: drain.Facts{Replicas: &drain.Replicas{Desired: 2, Ready: 2}, Serving: ptr.To(0)},
			action: drain.RemoveFinalizer, reason: drain.ReasonDrained},
		{name: "endpoints gate on a StatefulSet by annotation", pod: newPod(managed, ours, ownedBy("StatefulSet", "db"), deleting, evictedNow, started(nowSec), stoppedAt(now), ann(drain.AnnotationWaitForEndpoints, "true")),
			cfg: def, at: inSecond, action: drain.Wait, needs: drain.NeedEndpoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.at
			if at.IsZero() {
				at = now
			}
			d := drain.DecideWith(tt.pod, tt.cfg, at, tt.facts)
			assert.Equal(t, tt.action, d.Action, "action (reason %q)", d.Reason)
			if tt.action == drain.RemoveFinalizer {
				assert.Equal(t, tt.reason, d.Reason)
			} else {
				assert.Contains(t, d.Reason, tt.reason)
			}
			assert.Equal(t, tt.needs, d.Needs, "needs")
			if tt.kind != "" {
				assert.Equal(t, tt.kind, d.Kind)
			}
			if tt.gates != nil {
				assert.Equal(t, tt.gates, d.Gates)
			}
			if (d.Action == drain.Wait || d.Action == drain.StartDrain) && d.Needs == 0 {
				assert.False(t, d.RecheckAt.IsZero(), "a waiting drain is looked at again")
				assert.False(t, d.RecheckAt.After(d.Deadline), "never later than the deadline")
			}
		})
	}
}

// Whatever the owner and the facts say, every held pod is released by its deadline.
func TestWorkloadDrainsEndByTheDeadline(t *testing.T) {
	kinds := []podOpt{deployment, ownedBy("StatefulSet", "db"), ownedBy("DaemonSet", "agent"), ownedBy("ReplicaSet", "legacy"), ownedBy("Rollout", "x")}
	factSets := []drain.Facts{{}, replicas(3, 0, time.Time{}), {Unavailable: drain.NeedOwner | drain.NeedReplicas | drain.NeedEndpoints}, {Serving: ptr.To(5)}}
	cfg, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: `{"Deployment":{"waitForEndpoints":true},"StatefulSet":{"waitForEndpoints":true}}`})
	require.NoError(t, err)
	for _, kind := range kinds {
		for _, facts := range factSets {
			pod := newPod(managed, ours, kind, deleting, evicted(nowSec), started(nowSec))
			deadline := nowSec.Add(301 * time.Second) // the latest moment of the eviction's second + 300 s
			d := drain.DecideWith(pod, cfg, deadline, facts)
			for d.Needs != 0 { // as the reconciler does, when the reads fail
				facts.Unavailable |= d.Needs
				d = drain.DecideWith(pod, cfg, deadline, facts)
			}
			assert.Equal(t, drain.RemoveFinalizer, d.Action, "%s with %+v: %q", pod.OwnerReferences[0].Kind, facts, d.Reason)
		}
	}
}

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
	assert.Equal(t, handlers.EventDrainWaiting, events(f.client)[0].Reason)
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
		return last.Reason == handlers.EventDrainCompleted && strings.Contains(last.Message, "Replacement Ready")
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

// An event older than this process's own last write to the pod (a burst of update events at
// pod start, a redelivery) costs no write and no read.
func TestStaleEventCostsNothing(t *testing.T) {
	pod := newPod(managed, deployment, func(p *corev1.Pod) { p.ResourceVersion = "1000" })
	f := newFixture(t, false, pod)
	f.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		written := pod.DeepCopy()
		written.ResourceVersion, written.Finalizers = "1003", []string{drain.Finalizer}
		return true, written, nil
	})
	out, err := f.rec.Reconcile(context.Background(), pod)
	require.NoError(t, err)
	require.Equal(t, drain.AddFinalizer, out.Decision.Action)
	require.Equal(t, []string{"get pods", "patch pods", "get deployments"}, testutil.Verbs(f.client), "the write, and advice's read of the owner")

	tests := []struct {
		rv        string
		stale     bool
		wantVerbs []string
	}{
		{"1001", true, []string{}},  // the scheduler's update, before our write: skipped
		{"1002", true, []string{}},  // the kubelet's: skipped
		{"999", true, []string{}},   // older still
		{"1003", false, []string{}}, // our write's own echo: decided, nothing to do
		{"not-a-number", false, []string{"get pods", "patch pods", "get deployments"}}, // not comparable: decided as usual
	}
	for _, tt := range tests {
		t.Run(tt.rv, func(t *testing.T) {
			f.client.ClearActions()
			old := pod.DeepCopy()
			old.ResourceVersion = tt.rv
			if tt.rv == "1003" {
				old.Finalizers = []string{drain.Finalizer}
			}
			out, err := f.rec.Reconcile(context.Background(), old)
			require.NoError(t, err)
			assert.Equal(t, tt.stale, strings.Contains(out.Decision.Reason, "stale"), "reason %q", out.Decision.Reason)
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
		})
	}
}
