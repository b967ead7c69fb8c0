package drain

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"function/config"
	"function/names"
)

// Need is a set of facts a decision needs from the cluster beyond the pod.
type Need uint8

const (
	// NeedOwner asks for the Deployment (if any) that owns the pod's ReplicaSet.
	NeedOwner Need = 1 << iota
	// NeedReplicas asks for the owner's desired and Ready replicas.
	NeedReplicas
	// NeedEndpoints asks whether an EndpointSlice lists the pod as serving.
	NeedEndpoints
)

// ownerFact names NeedOwner, the one Need that is not a gate's: OwnerOf reads the owner.
const ownerFact = "owner"

// String returns the facts in n, comma-separated, such as owner,replicas: the owner, then each
// gate's Fact in the order of Gates.
func (n Need) String() string {
	var parts []string
	if n&NeedOwner != 0 {
		parts = append(parts, ownerFact)
	}
	for i := range gateTable {
		if n&gateTable[i].Needs != 0 {
			parts = append(parts, gateTable[i].Fact)
		}
	}
	return strings.Join(parts, ",")
}

// Facts are what was read about a pod's owner and endpoints for a decision.
type Facts struct {
	// Owner is the workload that owns the pod, a ReplicaSet resolved to the Deployment that
	// owns it (nil: not read).
	Owner *Owner
	// Replicas are the owner's replicas (nil: not read).
	Replicas *Replicas
	// Serving is how many EndpointSlice endpoints list the pod as serving (nil: not read).
	Serving *int
	// WaitedForReplacement means an earlier look at this drain (in this process) found the
	// replacement gate closed after everything else had opened, so the replacement is what
	// opened last (API times have whole seconds: too coarse to tell within a second).
	WaitedForReplacement bool
	// Unavailable are the facts that could not be read (Errors says why): their gates stay
	// closed, and the deadline still ends the drain.
	Unavailable Need
	Errors      []string
}

// Owner is a pod's workload.
type Owner struct {
	Kind config.Kind `json:"kind"`
	Name string      `json:"name"`
	UID  types.UID   `json:"uid,omitempty"`
}

// Replicas are a workload's desired replicas and how many of its pods are Ready and not
// deleting; ReadyAt is the latest time one of those became Ready.
type Replicas struct {
	Desired, Ready int32
	ReadyAt        time.Time
}

// Gate is one condition a drain waits for.
type Gate struct {
	Name   string `json:"name"`
	Open   bool   `json:"open"`
	Detail string `json:"detail,omitempty"`
}

// gateLookMax bounds the interval between looks at a drain that waits only for its owner or
// its endpoints (a sibling pod's event brings the look forward).
const gateLookMax = 5 * time.Second

// OwnerOf is the pod's workload kind and name: its controller's, with a ReplicaSet that a
// Deployment made counted as that Deployment. DeploymentOf tells that from the pod, without a
// read; any other ReplicaSet's owner is read (NeedOwner when it was not; a ReplicaSet when it
// could not be).
func OwnerOf(pod *corev1.Pod, facts Facts) (config.Kind, string, Need) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return config.KindPod, "", 0
	}
	kind := config.KindOf(ref.Kind)
	if kind != config.KindReplicaSet {
		return kind, ref.Name, 0
	}
	if name, ok := deploymentOf(pod, ref); ok {
		return config.KindDeployment, name, 0
	}
	switch {
	case facts.Owner != nil:
		return facts.Owner.Kind, facts.Owner.Name, 0
	case facts.Unavailable&NeedOwner != 0:
		return config.KindReplicaSet, ref.Name, 0
	}
	return kind, ref.Name, NeedOwner
}

// DeploymentOf is the Deployment whose ReplicaSet controls the pod, by the Deployment
// controller's naming rule: Deployment D names its ReplicaSets D-HASH and labels their pods
// pod-template-hash=HASH (appsv1.DefaultDeploymentUniqueLabelKey), so it needs no read. ok is
// false when the pod's controller is not a ReplicaSet so named: no controller, another kind,
// no hash label, or a ReplicaSet not named NAME-HASH (a bare one, or another controller's).
func DeploymentOf(pod *corev1.Pod) (name string, ok bool) {
	return deploymentOf(pod, metav1.GetControllerOfNoCopy(pod))
}

// deploymentOf is DeploymentOf with the pod's controller reference (nil: none).
func deploymentOf(pod *corev1.Pod, ref *metav1.OwnerReference) (string, bool) {
	if ref == nil || ref.Kind != string(config.KindReplicaSet) {
		return "", false
	}
	hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	n := len(ref.Name) - len(hash) - 1 // the length of NAME in NAME-HASH
	if hash == "" || n <= 0 || ref.Name[n] != '-' || ref.Name[n+1:] != hash {
		return "", false
	}
	return ref.Name[:n], true
}

// GateSpec is everything about one gate that waits on facts from the cluster (the grace period
// and the containers, read from the pod itself, are not in the table): the one place a gate is
// defined, with its workload defaults (config.WorkloadGate, by Name). DecideWith asks for its
// facts and opens it, Patch guards its override, Need.String names its fact, and the waiting
// report (FactGatesClosed), the reason of a decision that reads facts and the plugin follow
// from this entry, so none of them can be forgotten when a gate is added. Its facts are read by
// handlers (one read per Need). TestGateTable says what an entry lacks.
type GateSpec struct {
	// Name is the gate's name as logs, Events, reply events and the plugin show it.
	Name string
	// Doc says in a line what opens the gate.
	Doc string
	// Needs is the fact the gate is decided on: a Need bit of its own, with its Facts field. It
	// is read only once the grace period is over and the containers stopped; a fact that cannot
	// be read keeps the gate closed.
	Needs Need
	// Fact names Needs where a Need is shown (Need.String, in logs): "replicas".
	Fact string
	// Object is what is read for the gate, as the reason of a decision that reads the gates'
	// facts names it ("owner": "reading the owner and endpoints").
	Object string
	// Reads are the gate's facts as the plugin's help names them: "the owner's replicas".
	Reads string
	// Annotation is the per-pod override ("true" or "false") of the owner kind's default
	// (config.Workload.WaitsFor). The release patch guards it at the value read.
	Annotation string
	// Impossible is the warning for an override asking for the gate on a pod whose kind cannot
	// wait for it (config.Kind.CanWaitFor), which is ignored (%s: the kind).
	Impossible string
	// Open is the gate's state on facts; known is false while its facts were not read.
	Open func(Facts) (open bool, detail string, known bool)
}

// gateTable is the table of the gates that wait on facts, in the order a decision lists them.
// A gate is added here, with its Need and its Facts field, and its workload defaults in
// config's table of WorkloadGates; handlers adds the read that supplies the Need.
var gateTable = [...]GateSpec{{
	Name: names.GateReplacement, Needs: NeedReplicas, Fact: "replicas", Object: "owner", Reads: "the owner's replicas",
	Doc:        "Open when the owner is back at its desired number of Ready replicas.",
	Annotation: names.AnnotationWaitForReplacement,
	Impossible: "a %s pod's replacement cannot start while it exists (or it has none)",
	Open: func(f Facts) (bool, string, bool) {
		if r := f.Replicas; r != nil {
			return r.Ready >= r.Desired, fmt.Sprintf("%d/%d Ready", r.Ready, r.Desired), true
		}
		return false, "", false
	},
}, {
	Name: names.GateEndpoints, Needs: NeedEndpoints, Fact: "endpoints", Object: "endpoints", Reads: "the endpoints",
	Doc:        "Open when no EndpointSlice lists the pod as serving.",
	Annotation: names.AnnotationWaitForEndpoints,
	Open: func(f Facts) (bool, string, bool) {
		if n := f.Serving; n != nil {
			return *n == 0, fmt.Sprintf("serving in %d endpoint(s)", *n), true
		}
		return false, "", false
	},
}}

// gateCount is the number of gates in the table.
const gateCount = len(gateTable)

// DecideWith keeps a bit per gate: the table cannot outgrow a uint64.
const _ = uint(64 - gateCount)

// Gates is the table of the gates that wait on facts, in the order a decision lists them. It
// is an array returned by value, so a decision allocates nothing for it (its length follows
// the table's).
func Gates() [gateCount]GateSpec {
	return gateTable
}

// waitsFor says whether the drain waits for the gate: the kind's default, unless the pod's
// override annotation says otherwise (and is possible for the kind).
func (g *GateSpec) waitsFor(pod *corev1.Pod, kind config.Kind, wl config.Workload, warnings *[]string) bool {
	want := wl.WaitsFor(g.Name)
	v, ok := pod.Annotations[g.Annotation]
	if !ok {
		return want
	}
	switch b, err := config.ParseBool(v); {
	case err != nil:
		*warnings = append(*warnings, fmt.Sprintf("invalid %s %s (%v): using %t", g.Annotation, Quote(v), err, want))
	case b && !kind.CanWaitFor(g.Name):
		*warnings = append(*warnings, fmt.Sprintf("%s=true ignored: "+g.Impossible, g.Annotation, kind))
	default:
		want = b
	}
	return want
}

// DetailNotLookedAt is the detail of a gate whose facts are read only once nothing else holds
// the drain, before they were read.
const DetailNotLookedAt = "not looked at yet"

// state is the gate on facts. read says whether its facts were to be read yet (they are read
// once nothing else holds the drain).
func (g *GateSpec) state(facts Facts, read bool) Gate {
	open, detail, known := g.Open(facts)
	s := Gate{Name: g.Name, Open: open, Detail: detail}
	switch {
	case known:
	case facts.Unavailable&g.Needs != 0:
		s.Open, s.Detail = false, "unknown: "+strings.Join(facts.Errors, "; ")
	case !read:
		s.Open, s.Detail = false, DetailNotLookedAt
	default:
		s.Open, s.Detail = false, ""
	}
	return s
}

// needs are the facts the gate still needs: none once they were read or could not be.
func (g *GateSpec) needs(facts Facts) Need {
	if _, _, known := g.Open(facts); known || facts.Unavailable&g.Needs != 0 {
		return 0
	}
	return g.Needs
}

// gateAnnotations are the table's override annotations.
func gateAnnotations() []string {
	keys := make([]string, 0, gateCount)
	for i := range gateTable {
		keys = append(keys, gateTable[i].Annotation)
	}
	return keys
}

// FactGatesClosed names the table's closed gates when only they hold the drain (its grace
// period is over and its containers stopped); nil when a gate outside the table is closed or
// nothing is.
func FactGatesClosed(gates []Gate) []string {
	var closed []string
	for _, g := range gates {
		switch {
		case g.Open:
		case isTableGate(g.Name):
			closed = append(closed, g.Name)
		default:
			return nil
		}
	}
	return closed
}

// isTableGate reports whether name is a gate of the table.
func isTableGate(name string) bool {
	for i := range gateTable {
		if gateTable[i].Name == name {
			return true
		}
	}
	return false
}

// ClosedGates names the closed gates with their details.
func ClosedGates(gates []Gate) string {
	var parts []string
	for _, g := range gates {
		if !g.Open {
			parts = append(parts, g.Name+" ("+g.Detail+")")
		}
	}
	return strings.Join(parts, ", ")
}

// GateNames lists the gates' names.
func GateNames(gates []Gate) string {
	names := make([]string, 0, len(gates))
	for _, g := range gates {
		names = append(names, g.Name)
	}
	return strings.Join(names, ", ")
}

// stoppedAt is when the last container stopped, as far as the pod shows (zero if unknown).
func stoppedAt(pod *corev1.Pod) time.Time {
	var at time.Time
	for _, s := range pod.Status.ContainerStatuses {
		if t := s.State.Terminated; t != nil && t.FinishedAt.After(at) {
			at = t.FinishedAt.Time
		}
	}
	return at
}

// GateStates is "name=open|closed(detail)" for each gate, for logs.
func GateStates(gates []Gate) string {
	parts := make([]string, 0, len(gates))
	for _, g := range gates {
		state := "closed"
		if g.Open {
			state = "open"
		}
		if g.Detail != "" {
			state += "(" + g.Detail + ")"
		}
		parts = append(parts, g.Name+"="+state)
	}
	return strings.Join(parts, " ")
}
