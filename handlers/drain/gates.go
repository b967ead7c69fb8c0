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

// String returns the facts in n, comma-separated, such as owner,replicas.
func (n Need) String() string {
	var parts []string
	for _, x := range []struct {
		bit  Need
		name string
	}{{NeedOwner, "owner"}, {NeedReplicas, "replicas"}, {NeedEndpoints, "endpoints"}} {
		if n&x.bit != 0 {
			parts = append(parts, x.name)
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

// Gate names, as logs, Events and reply events show them.
const (
	GateGracePeriod = "grace-period"
	GateContainers  = "containers-stopped"
	GateReplacement = "replacement-ready"
	GateEndpoints   = "endpoints-gone"
)

// Gate is one condition a drain waits for.
type Gate struct {
	Name   string `json:"name"`
	Open   bool   `json:"open"`
	Detail string `json:"detail,omitempty"`
}

// Per-pod overrides of the owner kind's gates ("true" or "false").
const (
	AnnotationWaitForReplacement = "vpagracefuldrain.dev/wait-for-replacement"
	AnnotationWaitForEndpoints   = "vpagracefuldrain.dev/wait-for-endpoints"
)

// Removal reasons of workload-aware drains.
const (
	// ReasonNotEvicted means a plain delete, not an eviction, with holdOn: evictions.
	ReasonNotEvicted = "not-evicted"
	// ReasonReplaced means the owner was back at its desired Ready replicas last, after the
	// containers stopped: the drain lasted the capacity gap the eviction caused.
	ReasonReplaced = "replaced"
)

// gateLookMax bounds the interval between looks at a drain that waits only for its owner or
// its endpoints (a sibling pod's event brings the look forward).
const gateLookMax = 5 * time.Second

// OwnerOf is the pod's workload kind and name: its controller's, with a ReplicaSet that a
// Deployment made counted as that Deployment. The Deployment controller names its ReplicaSets
// NAME-HASH and labels their pods pod-template-hash=HASH, so that needs no read; any other
// ReplicaSet's owner is read (NeedOwner when it was not; a ReplicaSet when it could not be).
func OwnerOf(pod *corev1.Pod, facts Facts) (config.Kind, string, Need) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return config.KindPod, "", 0
	}
	kind := config.KindOf(ref.Kind)
	if kind != config.KindReplicaSet {
		return kind, ref.Name, 0
	}
	if hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hash != "" {
		if name, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && name != "" {
			return config.KindDeployment, name, 0
		}
	}
	switch {
	case facts.Owner != nil:
		return facts.Owner.Kind, facts.Owner.Name, 0
	case facts.Unavailable&NeedOwner != 0:
		return config.KindReplicaSet, ref.Name, 0
	}
	return kind, ref.Name, NeedOwner
}

// gateOverrides applies the pod's wait-for-* annotations to the kind's gates. A replacement
// cannot be waited for where none can start before the old pod is gone.
func gateOverrides(pod *corev1.Pod, kind config.Kind, wl config.Workload, warnings *[]string) (replacement, endpoints bool) {
	replacement, endpoints = wl.WaitForReplacement, wl.WaitForEndpoints
	if v, ok := pod.Annotations[AnnotationWaitForReplacement]; ok {
		switch b, err := config.ParseBool(v); {
		case err != nil:
			*warnings = append(*warnings, fmt.Sprintf("invalid %s %q (%v): using %t", AnnotationWaitForReplacement, v, err, replacement))
		case b && !kind.Replaceable():
			*warnings = append(*warnings, fmt.Sprintf("%s=true ignored: a %s pod's replacement cannot start while it exists (or it has none)", AnnotationWaitForReplacement, kind))
		default:
			replacement = b
		}
	}
	if v, ok := pod.Annotations[AnnotationWaitForEndpoints]; ok {
		if b, err := config.ParseBool(v); err == nil {
			endpoints = b
		} else {
			*warnings = append(*warnings, fmt.Sprintf("invalid %s %q (%v): using %t", AnnotationWaitForEndpoints, v, err, endpoints))
		}
	}
	return replacement, endpoints
}

// DetailNotLookedAt is the detail of a gate whose facts are read only once nothing else holds
// the drain, before they were read.
const DetailNotLookedAt = "not looked at yet"

// replacementGate is open when the owner is back at its desired number of Ready replicas.
// read says whether the facts were to be read yet (they are read once nothing else holds).
func replacementGate(facts Facts, read bool) Gate {
	g := Gate{Name: GateReplacement}
	switch r := facts.Replicas; {
	case r != nil:
		g.Open = r.Ready >= r.Desired
		g.Detail = fmt.Sprintf("%d/%d Ready", r.Ready, r.Desired)
	case facts.Unavailable&NeedReplicas != 0:
		g.Detail = "unknown: " + strings.Join(facts.Errors, "; ")
	case !read:
		g.Detail = DetailNotLookedAt
	}
	return g
}

// endpointsGate is open when no EndpointSlice lists the pod as serving.
func endpointsGate(facts Facts, read bool) Gate {
	g := Gate{Name: GateEndpoints}
	switch n := facts.Serving; {
	case n != nil:
		g.Open = *n == 0
		g.Detail = fmt.Sprintf("serving in %d endpoint(s)", *n)
	case facts.Unavailable&NeedEndpoints != 0:
		g.Detail = "unknown: " + strings.Join(facts.Errors, "; ")
	case !read:
		g.Detail = DetailNotLookedAt
	}
	return g
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
