package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"function/names"
)

// Kind is the kind of workload that owns a pod, as workloadDefaults names it: the kind of the
// pod's controller, with a ReplicaSet owned by a Deployment counted as the Deployment.
type Kind string

// The kinds workloadDefaults knows.
const (
	KindDeployment  Kind = "Deployment"
	KindReplicaSet  Kind = "ReplicaSet" // a ReplicaSet no Deployment owns
	KindStatefulSet Kind = "StatefulSet"
	KindDaemonSet   Kind = "DaemonSet"
	KindJob         Kind = "Job" // also the Jobs of a CronJob
	KindPod         Kind = "Pod" // a pod without a controller
	KindOther       Kind = "Other"
)

// KindSpec is everything the function knows about one owner kind. kindSpecs is the one table
// of kinds: Kinds, KindOf, Replaceable and the built-in Workload defaults derive from it, and
// handlers follows it (a reader for each Read kind, pacing for each Paced kind, the capacity
// gap for each GapMeasured kind), with tests that check they agree.
type KindSpec struct {
	Kind Kind
	// Controller: a controller ownerReference of this kind maps to it (Pod and Other are not
	// ownerReference kinds).
	Controller bool
	// Manage: its pods get the finalizer by default (when they opt in by annotation).
	Manage bool
	// Grace: its drains last at least gracePeriodSeconds by default (a StatefulSet's or
	// DaemonSet's replacement waits for the old pod: a grace period only delays it).
	Grace bool
	// Replaceable: a replacement pod can start while the evicted pod still exists (a
	// ReplicaSet stops counting a pod once it is deleting), so its drains wait for the
	// replacement by default and may by annotation. A StatefulSet or DaemonSet replacement
	// has the old pod's identity and waits until the old object is gone.
	Replaceable bool
	// Replicated: it has spec.replicas (the replacement's count; advice's replica findings).
	Replicated bool
	// Read: handlers reads it (advice, pacing, the replacement count), with its one generic
	// reader, at the API below: an object of the resource with spec.selector and
	// spec.template, and spec.replicas when Replicated (a custom resource too). Its
	// ClusterRole needs get on it (config/rbac.yaml).
	Read bool
	// Group, Version and Resource are the kind's API (Read kinds): apps, v1, deployments.
	Group, Version, Resource string
	// Paced: pacing creates its PodDisruptionBudget (ensurePodDisruptionBudget).
	Paced bool
	// GapMeasured: the capacity gap of its evictions is measured.
	GapMeasured bool
}

// kindSpecs is the table of kinds, in the order they are documented. It is an array returned by
// value, so a lookup allocates nothing (a kind added here grows the array's length too).
func kindSpecs() [7]KindSpec {
	return [...]KindSpec{
		{Kind: KindDeployment, Controller: true, Manage: true, Grace: true, Replaceable: true, Replicated: true, Read: true, Paced: true, GapMeasured: true,
			Group: "apps", Version: "v1", Resource: "deployments"},
		{Kind: KindReplicaSet, Controller: true, Manage: true, Grace: true, Replaceable: true, Replicated: true, Read: true,
			Group: "apps", Version: "v1", Resource: "replicasets"},
		{Kind: KindStatefulSet, Controller: true, Manage: true, Replicated: true, Read: true, Paced: true, GapMeasured: true,
			Group: "apps", Version: "v1", Resource: "statefulsets"},
		{Kind: KindDaemonSet, Controller: true, Manage: true, Read: true, Group: "apps", Version: "v1", Resource: "daemonsets"},
		{Kind: KindJob, Controller: true, Grace: true},
		{Kind: KindPod, Grace: true},
		{Kind: KindOther, Manage: true, Grace: true},
	}
}

// APIVersion is the kind's group/version, as an ownerReference writes it ("apps/v1"; "v1" for
// the core group), "" for a kind that is not Read.
func (s KindSpec) APIVersion() string {
	if s.Group == "" {
		return s.Version
	}
	return s.Group + "/" + s.Version
}

// InGroup reports whether apiVersion (an ownerReference's, a targetRef's) is of the kind's API
// group, for a kind that is Read.
func (s KindSpec) InGroup(apiVersion string) bool {
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		group = "" // the core group: "v1"
	}
	return s.Read && group == s.Group
}

// Kinds lists the kinds workloadDefaults accepts, in the order they are documented.
func Kinds() []Kind {
	specs := kindSpecs()
	kinds := make([]Kind, len(specs))
	for i, s := range specs {
		kinds[i] = s.Kind
	}
	return kinds
}

// Spec is the kind's entry in the table of kinds (Other's for a kind not in it).
func (k Kind) Spec() KindSpec {
	for _, s := range kindSpecs() {
		if s.Kind == k {
			return s
		}
	}
	return KindOther.Spec()
}

// KindOf maps a controller ownerReference kind ("" for none) to its Kind.
func KindOf(controllerKind string) Kind {
	if controllerKind == "" {
		return KindPod
	}
	if s := Kind(controllerKind).Spec(); s.Controller {
		return s.Kind
	}
	return KindOther
}

// Replaceable reports whether a kind's replacement pod can start while the evicted pod still
// exists (see KindSpec.Replaceable): waiting for it elsewhere would only hold until the deadline.
func (k Kind) Replaceable() bool { return k.Spec().Replaceable }

// Workload is what a drain of a pod of one kind waits for.
type Workload struct {
	// Manage means pods of this kind get the finalizer (when they opt in by annotation).
	Manage bool
	// GracePeriod is the minimum time a drain lasts after it started.
	GracePeriod time.Duration
	// waits has bit i set when the drain waits for workloadGates[i] (see WaitsFor).
	waits uint64
}

// WaitsFor reports whether the drain waits for the gate named gate (a WorkloadGate's Gate):
// the owner must be back at its desired number of Ready replicas (replacement-ready), no
// EndpointSlice may list the pod as serving (endpoints-gone).
func (w Workload) WaitsFor(gate string) bool {
	i := workloadGateIndex(gate)
	return i >= 0 && w.waits&(1<<i) != 0
}

// WorkloadOverride is one kind's entry in the workloadDefaults JSON; unset fields keep the
// built-in default. Each gate of workloadGates has its field here (its Field is the JSON name).
type WorkloadOverride struct {
	Manage             *bool `json:"manage,omitempty"`
	GracePeriodSeconds *int  `json:"gracePeriodSeconds,omitempty"`
	WaitForReplacement *bool `json:"waitForReplacement,omitempty"`
	WaitForEndpoints   *bool `json:"waitForEndpoints,omitempty"`
}

// WorkloadGate is what workloadDefaults says about one drain gate that waits on facts from
// the cluster (package drain's table of gates, whose entry of the same name is the rest of the
// gate): which kinds wait for it by default, which can wait for it at all, and its field.
type WorkloadGate struct {
	// Gate is the gate's name (package names' Gate* constants; drain's tests check that every
	// gate of its table has an entry here and every entry is a gate there).
	Gate string
	// Field is the gate's field in a workloadDefaults entry (WorkloadOverride).
	Field string
	// Default says whether a kind's drains wait for the gate when workloadDefaults says nothing.
	Default func(KindSpec) bool
	// Possible says whether a kind's drains can wait for it at all (nil: every kind's); Impossible
	// is why not, in the error of a workloadDefaults entry that asks for it.
	Possible   func(Kind) bool
	Impossible string
	// override is the gate's field of an entry (nil: unset).
	override func(WorkloadOverride) *bool
}

// workloadGates is the table of the gates' workload defaults, in drain's order. A gate is one
// entry here and a field of WorkloadOverride.
var workloadGates = [...]WorkloadGate{{
	Gate: names.GateReplacement, Field: "waitForReplacement",
	// A replacement that can start while the evicted pod exists is waited for by default.
	Default:  func(s KindSpec) bool { return s.Replaceable },
	Possible: Kind.Replaceable,
	Impossible: "only Deployment and ReplicaSet pods can wait for a replacement " +
		"(a StatefulSet or DaemonSet replacement waits for the old pod to be gone; other kinds have none to wait for)",
	override: func(o WorkloadOverride) *bool { return o.WaitForReplacement },
}, {
	Gate: names.GateEndpoints, Field: "waitForEndpoints",
	// Opt-in: a pod that stopped serving is normally gone from its EndpointSlices already.
	Default:  func(KindSpec) bool { return false },
	override: func(o WorkloadOverride) *bool { return o.WaitForEndpoints },
}}

// Workload keeps a bit per gate: the table cannot outgrow a uint64.
const _ = uint(64 - len(workloadGates))

// WorkloadGates returns the table of the gates' workload defaults.
func WorkloadGates() []WorkloadGate {
	return append([]WorkloadGate(nil), workloadGates[:]...)
}

func workloadGateIndex(gate string) int {
	for i := range workloadGates {
		if workloadGates[i].Gate == gate {
			return i
		}
	}
	return -1
}

// CanWaitFor reports whether pods of kind k can wait for the gate (WorkloadGate.Possible);
// false for a gate not in the table.
func (k Kind) CanWaitFor(gate string) bool {
	i := workloadGateIndex(gate)
	return i >= 0 && (workloadGates[i].Possible == nil || workloadGates[i].Possible(k))
}

// Workload is the policy in force for pods of kind k: the built-in default for the kind,
// overridden by workloadDefaults.
//
// Built-in defaults: Deployment and ReplicaSet pods wait for their replacement to be Ready,
// after gracePeriodSeconds; StatefulSet and DaemonSet pods only for their containers to stop
// (no grace period: their replacement waits for the old object); Job pods and pods without
// an owner are not managed; pods of other controllers wait for gracePeriodSeconds and their
// containers.
func (c Config) Workload(k Kind) Workload {
	spec := k.Spec()
	w := Workload{Manage: spec.Manage}
	if spec.Grace {
		w.GracePeriod = c.GracePeriod
	}
	for i := range workloadGates {
		if workloadGates[i].Default(spec) {
			w.waits |= 1 << i
		}
	}
	o, ok := c.Workloads[k]
	if !ok {
		return w
	}
	if o.Manage != nil {
		w.Manage = *o.Manage
	}
	if o.GracePeriodSeconds != nil {
		w.GracePeriod = time.Duration(*o.GracePeriodSeconds) * time.Second
	}
	for i := range workloadGates {
		switch b := workloadGates[i].override(o); {
		case b == nil:
		case *b:
			w.waits |= 1 << i
		default:
			w.waits &^= 1 << i
		}
	}
	return w
}

// parseWorkloads parses the workloadDefaults JSON object (kind -> override) strictly.
func parseWorkloads(v string) (map[Kind]WorkloadOverride, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return nil, fmt.Errorf(`not a JSON object like {"StatefulSet":{"gracePeriodSeconds":10}}: %w`, err)
	}
	known := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		known = append(known, string(k))
	}
	out := make(map[Kind]WorkloadOverride, len(raw))
	for name, msg := range raw {
		k := Kind(name)
		if !slices.Contains(Kinds(), k) {
			return nil, fmt.Errorf("unknown kind %q (known: %s)", name, strings.Join(known, ", "))
		}
		var o WorkloadOverride
		dec := json.NewDecoder(strings.NewReader(string(msg)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("%s: %w (fields: %s)", name, err, strings.Join(overrideFields(), ", "))
		}
		if g := o.GracePeriodSeconds; g != nil && (*g < 0 || *g > MaxSeconds) {
			return nil, fmt.Errorf("%s.gracePeriodSeconds: must be between 0 and %d seconds", name, MaxSeconds)
		}
		for i := range workloadGates {
			g := &workloadGates[i]
			if b := g.override(o); b != nil && *b && !k.CanWaitFor(g.Gate) {
				return nil, fmt.Errorf("%s.%s: %s", name, g.Field, g.Impossible)
			}
		}
		out[k] = o
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// overrideFields are the fields of a workloadDefaults entry.
func overrideFields() []string {
	fields := []string{"manage", "gracePeriodSeconds"}
	for i := range workloadGates {
		fields = append(fields, workloadGates[i].Field)
	}
	return fields
}

// HoldOn says which deletions of a managed pod are held while it drains.
type HoldOn string

const (
	// HoldEvictions holds only evictions through the Eviction API (the VPA updater's): the pod
	// carries the DisruptionTarget condition with reason EvictionByEvictionAPI. A plain delete
	// (a rollout, a scale-down, kubectl delete) is released at once.
	HoldEvictions HoldOn = "evictions"
	// HoldAll holds every deletion.
	HoldAll HoldOn = "all"
)

func parseHoldOn(v string) (HoldOn, error) {
	switch h := HoldOn(strings.ToLower(strings.TrimSpace(v))); h {
	case HoldEvictions, HoldAll:
		return h, nil
	}
	return "", fmt.Errorf("must be %q or %q", HoldEvictions, HoldAll)
}
