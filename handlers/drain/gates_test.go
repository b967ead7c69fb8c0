package drain_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/drain"
	"function/names"
)

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
			action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged},
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
			action: drain.RemoveFinalizer, reason: names.ReasonNotEvicted},
		{name: "preemption is not an eviction", pod: newPod(managed, ours, deployment, deleting, func(p *corev1.Pod) {
			evicted(nowSec)(p)
			p.Status.Conditions[0].Reason = "PreemptionByScheduler"
		}), cfg: def, action: drain.RemoveFinalizer, reason: names.ReasonNotEvicted},
		{name: "eviction held", pod: newPod(managed, ours, deployment, deleting, evictedNow), cfg: def,
			action: drain.StartDrain, reason: "grace period"},
		{name: "holdOn all holds a plain delete", pod: newPod(managed, ours, deployment, deleting), cfg: holdAll,
			action: drain.StartDrain, reason: "grace period"},

		// ---- Deployment: containers, then the replacement ----
		{name: "Deployment: containers stopped after the grace: the owner is read", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, action: drain.Wait, needs: drain.NeedReplicas},
		{name: "Deployment: replacement not Ready: waits, gate visible", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: replicas(3, 2, now.Add(-time.Hour)), action: drain.Wait, reason: "waiting for replacement-ready (2/3 Ready)",
			gates: []drain.Gate{{Name: names.GateGracePeriod, Open: true, Detail: "30s"}, {Name: names.GateContainers, Open: true, Detail: "all containers terminated"},
				{Name: names.GateReplacement, Detail: "2/3 Ready"}}},
		{name: "Deployment: after the kubelet's grace-0 DELETE, still waits for the replacement", pod: newPod(managed, ours, deployment, graceZero, evicted(nowSec.Add(-2*time.Second)), started(nowSec.Add(-2*time.Second)), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: replicas(2, 1, now.Add(-time.Hour)), action: drain.Wait, reason: "waiting for replacement-ready (1/2 Ready)"},
		{name: "Deployment: replacement Ready last: replaced", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: replicas(3, 3, afterGrace.Add(-100*time.Millisecond)), action: drain.RemoveFinalizer, reason: names.ReasonReplaced},
		{name: "Deployment: replacement was Ready before the containers stopped: drained", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now.Add(20*time.Second))),
			cfg: def, at: afterGrace, facts: replicas(3, 3, now.Add(5*time.Second)), action: drain.RemoveFinalizer, reason: names.ReasonDrained},
		{name: "Deployment: found waiting for the replacement before: replaced, whatever the coarse API times say", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: drain.Facts{Replicas: &drain.Replicas{Desired: 3, Ready: 3, ReadyAt: nowSec}, WaitedForReplacement: true},
			action: drain.RemoveFinalizer, reason: names.ReasonReplaced},
		{name: "Deployment: the owner cannot be read: waits until the deadline", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: afterGrace, facts: drain.Facts{Unavailable: drain.NeedReplicas, Errors: []string{"forbidden"}}, action: drain.Wait, reason: "unknown: forbidden"},
		{name: "Deployment: at the deadline, released whatever the owner", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: now.Add(301 * time.Second), action: drain.RemoveFinalizer, reason: names.ReasonTimeout},
		{name: "Deployment: wait-for-replacement=false on the pod", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now),
			ann(names.AnnotationWaitForReplacement, "false")), cfg: def, at: afterGrace, action: drain.RemoveFinalizer, reason: names.ReasonDrained},

		// ---- StatefulSet / DaemonSet: containers only, no grace ----
		{name: "StatefulSet: released as soon as the containers stopped", pod: newPod(managed, ours, ownedBy("StatefulSet", "db"), deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: def, at: inSecond, action: drain.RemoveFinalizer, reason: names.ReasonDrained},
		{name: "StatefulSet: wait-for-replacement=true ignored (it would only hold until the deadline)", pod: newPod(managed, ours, ownedBy("StatefulSet", "db"), deleting, evictedNow, started(nowSec), stoppedAt(now),
			ann(names.AnnotationWaitForReplacement, "true")), cfg: def, at: inSecond, action: drain.RemoveFinalizer, reason: names.ReasonDrained},
		{name: "DaemonSet: containers running: waits for them only", pod: newPod(managed, ours, ownedBy("DaemonSet", "agent"), deleting, evictedNow, started(nowSec)),
			cfg: def, at: inSecond, action: drain.Wait, reason: "containers running",
			gates: []drain.Gate{{Name: names.GateGracePeriod, Open: true, Detail: "0s"}, {Name: names.GateContainers, Detail: "containers running"}}},

		// ---- EndpointSlice gate ----
		{name: "endpoints gate: read once the containers stopped", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: withEndpoints, at: now.Add(time.Second), action: drain.Wait, needs: drain.NeedReplicas | drain.NeedEndpoints},
		{name: "endpoints gate: still serving", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: withEndpoints, at: now.Add(time.Second), facts: drain.Facts{Replicas: &drain.Replicas{Desired: 2, Ready: 2}, Serving: ptr.To(1)},
			action: drain.Wait, reason: "waiting for endpoints-gone (serving in 1 endpoint(s))"},
		{name: "endpoints gate: per-pod opt-out", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now), ann(names.AnnotationWaitForEndpoints, "false")),
			cfg: withEndpoints, at: now.Add(time.Second), facts: drain.Facts{Replicas: &drain.Replicas{Desired: 2, Ready: 2}},
			action: drain.RemoveFinalizer, reason: names.ReasonDrained},
		{name: "endpoints gate: gone", pod: newPod(managed, ours, deployment, deleting, evictedNow, started(nowSec), stoppedAt(now)),
			cfg: withEndpoints, at: now.Add(time.Second), facts: drain.Facts{Replicas: &drain.Replicas{Desired: 2, Ready: 2}, Serving: ptr.To(0)},
			action: drain.RemoveFinalizer, reason: names.ReasonDrained},
		{name: "endpoints gate on a StatefulSet by annotation", pod: newPod(managed, ours, ownedBy("StatefulSet", "db"), deleting, evictedNow, started(nowSec), stoppedAt(now), ann(names.AnnotationWaitForEndpoints, "true")),
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

// Every entry of the gate table is whole, and what derives from it holds for each gate: a
// drain that waits only for it asks for its Needs, stays closed while they cannot be read
// (reported by FactGatesClosed), ends at the deadline, and its release patch guards the
// gate's override annotation. A gate added to the table is checked here without a new row:
// this test says what its entry (or config's table of WorkloadGates) lacks.
func TestGateTable(t *testing.T) {
	specs := drain.Gates()
	require.NotEmpty(t, specs)
	require.LessOrEqual(t, len(specs), 64, "DecideWith keeps a bit per gate")
	var seen drain.Need
	names := map[string]bool{names.GateGracePeriod: true, names.GateContainers: true}
	workload := map[string]config.WorkloadGate{}
	for _, w := range config.WorkloadGates() {
		workload[w.Gate] = w
	}
	for _, g := range specs {
		t.Run(g.Name, func(t *testing.T) {
			require.NotEmpty(t, g.Name, "a gate has a name")
			require.False(t, names[g.Name], "gate names are unique")
			names[g.Name] = true
			require.NotEmpty(t, g.Doc, "a gate has a doc line")
			require.NotZero(t, g.Needs, "a table gate waits on facts")
			require.Zero(t, g.Needs&(g.Needs-1), "a gate's Needs is one Need bit of its own (Need.String names it by the gate's Fact)")
			require.Zero(t, seen&g.Needs, "no two gates share a Need")
			require.NotEmpty(t, g.Fact, "Need.String names the gate's Need")
			assert.Equal(t, g.Fact, g.Needs.String(), "Need.String names the gate's Need by its Fact")
			require.NotEmpty(t, g.Object, "the reason of a decision reading the facts names what is read")
			require.NotEmpty(t, g.Reads, "the plugin's help names the gate's facts")
			require.NotNil(t, g.Open)
			require.True(t, strings.HasPrefix(g.Annotation, "vpagracefuldrain.dev/wait-for-"), g.Annotation)

			w, ok := workload[g.Name]
			require.True(t, ok, "config's table of WorkloadGates has the gate's workload defaults")
			require.NotEmpty(t, w.Field, "workloadDefaults has a field for the gate")
			require.NotNil(t, w.Default, "config's table says which kinds wait for the gate by default")
			for _, k := range config.Kinds() {
				if !k.CanWaitFor(g.Name) {
					require.Contains(t, g.Impossible, "%s", "the warning of an override it cannot have names the kind (%s cannot wait)", k)
					require.NotEmpty(t, w.Impossible, "workloadDefaults says why %s cannot wait", k)
					assert.False(t, w.Default(k.Spec()), "%s cannot wait for the gate by default", k)
				}
			}
			_, _, known := g.Open(drain.Facts{})
			require.False(t, known, "nothing is known before a read")
			seen |= g.Needs

			// A Deployment pod that waits for this gate alone, by annotation.
			opts := []podOpt{managed, ours, deployment, deleting, evicted(nowSec), started(nowSec), stoppedAt(now)}
			for _, other := range specs {
				opts = append(opts, ann(other.Annotation, strconv.FormatBool(other.Name == g.Name)))
			}
			pod := newPod(opts...)
			at := now.Add(31 * time.Second) // grace over
			d := drain.DecideWith(pod, config.Default(), at, drain.Facts{})
			assert.Equal(t, drain.Wait, d.Action)
			assert.Equal(t, g.Needs, d.Needs, "asks for the gate's facts once nothing else holds")

			unreadable := drain.Facts{Unavailable: g.Needs, Errors: []string{"forbidden"}}
			d = drain.DecideWith(pod, config.Default(), at, unreadable)
			assert.Equal(t, drain.Wait, d.Action, d.Reason)
			assert.Equal(t, []string{g.Name}, drain.FactGatesClosed(d.Gates), "the waiting report names it")
			assert.Contains(t, drain.ClosedGates(d.Gates), "unknown: forbidden")

			d = drain.DecideWith(pod, config.Default(), nowSec.Add(301*time.Second), unreadable)
			require.Equal(t, drain.RemoveFinalizer, d.Action, "the deadline ends it")
			patch, err := drain.Patch(pod, d)
			require.NoError(t, err)
			assert.Contains(t, string(patch), `"path":"/metadata/annotations/`+strings.ReplaceAll(g.Annotation, "/", "~1")+`"`,
				"the release guards the gate's override")
		})
	}
	assert.Zero(t, seen&drain.NeedOwner, "the owner is not a gate's fact: OwnerOf reads it")
	for _, w := range config.WorkloadGates() {
		assert.True(t, names[w.Gate], "config's WorkloadGate %s is a gate of drain.Gates", w.Gate)
	}
	assert.Len(t, config.WorkloadGates(), len(specs), "one WorkloadGate per gate")
}

// Need.String names the owner and each gate's fact, in the table's order: as it did before
// the table.
func TestNeedString(t *testing.T) {
	assert.Empty(t, drain.Need(0).String())
	assert.Equal(t, "owner", drain.NeedOwner.String())
	assert.Equal(t, "replicas", drain.NeedReplicas.String())
	assert.Equal(t, "endpoints", drain.NeedEndpoints.String())
	assert.Equal(t, "owner,replicas,endpoints", (drain.NeedOwner | drain.NeedReplicas | drain.NeedEndpoints).String())
	assert.Equal(t, "owner,endpoints", (drain.NeedOwner | drain.NeedEndpoints).String())
}

// A drain that waits for the gates' facts says what it reads, naming each gate's Object.
func TestReadingReason(t *testing.T) {
	cfg, err := config.Parse(map[string]string{config.KeyWorkloadDefaults: `{"Deployment":{"waitForEndpoints":true}}`})
	require.NoError(t, err)
	pod := newPod(managed, ours, deployment, deleting, evicted(nowSec), started(nowSec), stoppedAt(now))
	d := drain.DecideWith(pod, cfg, now.Add(31*time.Second), drain.Facts{})
	require.Equal(t, drain.Wait, d.Action)
	require.NotZero(t, d.Needs)
	assert.Equal(t, "reading the owner and endpoints", d.Reason, "today's gates: the reason as it was")
	for _, g := range drain.Gates() {
		assert.Contains(t, d.Reason, g.Object)
	}
}

// DeploymentOf is the Deployment controller's naming rule: the ReplicaSet NAME-HASH of a pod
// labelled pod-template-hash=HASH is Deployment NAME's.
func TestDeploymentOf(t *testing.T) {
	rs := func(name string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, UID: "uid-rs", Controller: ptr.To(true)}
	}
	tests := []struct {
		name   string
		refs   []metav1.OwnerReference
		hash   *string // the pod-template-hash label (nil: none)
		want   string
		wantOK bool
	}{
		{name: "a Deployment's ReplicaSet", refs: []metav1.OwnerReference{rs("web-7d9f8")}, hash: ptr.To("7d9f8"), want: "web", wantOK: true},
		{name: "a name with dashes", refs: []metav1.OwnerReference{rs("shop-web-api-5c6b7d")}, hash: ptr.To("5c6b7d"), want: "shop-web-api", wantOK: true},
		{name: "a name that repeats the hash", refs: []metav1.OwnerReference{rs("abc-abc")}, hash: ptr.To("abc"), want: "abc", wantOK: true},
		{name: "the controller among other owners", refs: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: "other-7d9f8", UID: "uid-cm"}, rs("web-7d9f8")}, hash: ptr.To("7d9f8"), want: "web", wantOK: true},
		{name: "no owner", hash: ptr.To("7d9f8")},
		{name: "no controller", refs: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8", UID: "uid-rs"}}, hash: ptr.To("7d9f8")},
		{name: "a StatefulSet", refs: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db-7d9f8", UID: "uid-db", Controller: ptr.To(true)}}, hash: ptr.To("7d9f8")},
		{name: "a Deployment as controller (not a ReplicaSet)", refs: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web-7d9f8", UID: "uid-d", Controller: ptr.To(true)}}, hash: ptr.To("7d9f8")},
		{name: "no hash label: a bare ReplicaSet", refs: []metav1.OwnerReference{rs("legacy")}},
		{name: "an empty hash label", refs: []metav1.OwnerReference{rs("web-")}, hash: ptr.To("")},
		{name: "another hash", refs: []metav1.OwnerReference{rs("web-7d9f8")}, hash: ptr.To("5c6b7d")},
		{name: "the hash without its dash", refs: []metav1.OwnerReference{rs("web7d9f8")}, hash: ptr.To("7d9f8")},
		{name: "the hash is the whole name", refs: []metav1.OwnerReference{rs("7d9f8")}, hash: ptr.To("7d9f8")},
		{name: "no name before the dash", refs: []metav1.OwnerReference{rs("-7d9f8")}, hash: ptr.To("7d9f8")},
		{name: "the hash elsewhere in the name", refs: []metav1.OwnerReference{rs("web-7d9f8-x")}, hash: ptr.To("7d9f8")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop", OwnerReferences: tt.refs}}
			if tt.hash != nil {
				pod.Labels = map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: *tt.hash}
			}
			name, ok := drain.DeploymentOf(pod)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, name)
			// OwnerOf follows it: a Deployment without a read, else the controller as named
			// (a ReplicaSet's owner to be read).
			kind, owner, need := drain.OwnerOf(pod, drain.Facts{})
			if ok {
				assert.Equal(t, []any{config.KindDeployment, tt.want, drain.Need(0)}, []any{kind, owner, need})
				return
			}
			ref := metav1.GetControllerOf(pod)
			if ref == nil {
				assert.Equal(t, []any{config.KindPod, ""}, []any{kind, owner})
				return
			}
			assert.Equal(t, ref.Name, owner)
			assert.Equal(t, ref.Kind == "ReplicaSet", need == drain.NeedOwner, "a ReplicaSet not so named: its owner is read")
		})
	}
	name, ok := drain.DeploymentOf(newPod(managed, deployment))
	assert.True(t, ok, "draintest's Deployment pod")
	assert.Equal(t, "web", name)
}

func TestFactGatesClosed(t *testing.T) {
	tests := []struct {
		name  string
		gates []drain.Gate
		want  []string
	}{
		{name: "nothing closed", gates: []drain.Gate{{Name: names.GateGracePeriod, Open: true}, {Name: names.GateReplacement, Open: true}}},
		{name: "grace holds", gates: []drain.Gate{{Name: names.GateGracePeriod}, {Name: names.GateReplacement}}},
		{name: "containers hold", gates: []drain.Gate{{Name: names.GateGracePeriod, Open: true}, {Name: names.GateContainers}, {Name: names.GateEndpoints}}},
		{name: "facts hold", gates: []drain.Gate{{Name: names.GateGracePeriod, Open: true}, {Name: names.GateContainers, Open: true}, {Name: names.GateReplacement}, {Name: names.GateEndpoints}},
			want: []string{names.GateReplacement, names.GateEndpoints}},
		{name: "one of two", gates: []drain.Gate{{Name: names.GateContainers, Open: true}, {Name: names.GateReplacement, Open: true}, {Name: names.GateEndpoints}},
			want: []string{names.GateEndpoints}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, drain.FactGatesClosed(tt.gates))
		})
	}
}
