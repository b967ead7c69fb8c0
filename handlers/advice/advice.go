// Package advice is the pure half of advice: what was read about one pod's owner in, what
// defeats a graceful eviction of its pods out, each finding with its exact fix. It reads
// nothing; handlers' checkOwner reads the input, records the Event and replies.
//
// To add a finding: its ID among the Finding* constants (the order findings are listed in),
// the rule in Advise, any input it needs in Input (and its read in checkOwner), and a row in
// TestAdvise.
package advice

import (
	"cmp"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"function/config"
	"function/handlers/drain"
	"function/names"
)

// Finding is one thing that defeats a graceful eviction, with the exact fix.
type Finding struct {
	// ID names the finding (one of the Finding* constants).
	ID string `json:"id"`
	// Message says what is wrong and what it costs.
	Message string `json:"message"`
	// Fix is the change that cures it, most often a YAML snippet.
	Fix string `json:"fix"`
}

// Advice findings.
const (
	FindingNoPreStopHook        = "no-prestop-hook"
	FindingNoReadinessProbe     = "no-readiness-probe"
	FindingShortTermination     = "termination-grace-shorter-than-grace-period"
	FindingSingleReplica        = "single-replica"
	FindingNoPDB                = "no-pod-disruption-budget"
	FindingUseInPlaceOrRecreate = "use-in-place-or-recreate"
)

// VPA update modes (spec.updatePolicy.updateMode) advice tells apart.
const (
	ModeAuto              = "Auto"
	ModeRecreate          = "Recreate"
	ModeInPlaceOrRecreate = "InPlaceOrRecreate"
)

// Recreates reports whether a VPA in this update mode evicts a pod to resize it ("": unset,
// which VPA treats as Auto).
func Recreates(mode string) bool { return mode == "" || mode == ModeAuto || mode == ModeRecreate }

// defaultTerminationGrace is the pod's terminationGracePeriodSeconds when it sets none.
const defaultTerminationGrace = 30 * time.Second

// preStopSleepSeconds is the preStop sleep advised: long enough for the endpoints controller
// and the proxies to stop sending traffic before SIGTERM.
const preStopSleepSeconds = 5

// Input is what Advise looks at: what was read about one pod's owner.
type Input struct {
	// Owner is the workload (Kind, Name, UID) and Namespace its namespace.
	Owner     drain.Owner
	Namespace string
	// Replicas is the owner's desired replicas; nil where that does not apply (a DaemonSet)
	// or is unknown: no replica finding then.
	Replicas *int32
	// Selector is the owner's spec.selector (for the PodDisruptionBudget fix).
	Selector *metav1.LabelSelector
	// Template is the owner's pod template.
	Template corev1.PodTemplateSpec
	// GracePeriod is the drain's effective grace period for the owner's pods.
	GracePeriod time.Duration
	// PDB says whether a PodDisruptionBudget in the namespace selects the pod's labels; nil:
	// unknown (no finding).
	PDB *bool
	// VPA names the VerticalPodAutoscaler whose spec.targetRef is the owner ("" when there is
	// none or it could not be read), and VPAUpdateMode is its spec.updatePolicy.updateMode
	// ("" when unset: VPA then recreates pods, as with Recreate/Auto).
	VPA           string
	VPAUpdateMode string
	// InPlaceResize reports whether the cluster serves the pods/resize subresource.
	InPlaceResize bool
}

// Advise lists what defeats a graceful eviction of the owner's pods, each with its fix, in
// the order of the Finding* constants. It reads nothing: handlers' checkOwner gives it what it read.
func Advise(in Input) []Finding {
	var out []Finding
	kind, name := in.Owner.Kind, in.Owner.Name
	what := fmt.Sprintf("%s %s", kind, name)
	spec := in.Template.Spec

	var noPreStop, noReadiness []corev1.Container
	for _, c := range spec.Containers {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			noPreStop = append(noPreStop, c)
		}
		if c.ReadinessProbe == nil {
			noReadiness = append(noReadiness, c)
		}
	}
	if len(noPreStop) > 0 {
		out = append(out, Finding{
			ID: FindingNoPreStopHook,
			Message: fmt.Sprintf("%s no preStop hook: it gets SIGTERM while Services may still send it traffic",
				containersHave(noPreStop)),
			Fix: templateFix("containers:\n" + containerItems(noPreStop, func(corev1.Container) string {
				return fmt.Sprintf("lifecycle:\n  preStop:\n    sleep:\n      seconds: %d\n", preStopSleepSeconds)
			})),
		})
	}
	if len(noReadiness) > 0 {
		out = append(out, Finding{
			ID: FindingNoReadinessProbe,
			Message: fmt.Sprintf("%s no readinessProbe: a replacement counts as Ready (for Services, PodDisruptionBudgets and the drain) before it can serve",
				containersHave(noReadiness)),
			Fix: templateFix("containers:\n" + containerItems(noReadiness, func(c corev1.Container) string {
				port := int32(8080)
				if len(c.Ports) > 0 {
					port = c.Ports[0].ContainerPort
				}
				return fmt.Sprintf("readinessProbe:\n  httpGet:\n    path: /ready  # your app's readiness endpoint\n    port: %d\n  periodSeconds: 5\n", port)
			})),
		})
	}

	termination := defaultTerminationGrace
	if s := spec.TerminationGracePeriodSeconds; s != nil {
		termination = time.Duration(*s) * time.Second
	}
	if termination < in.GracePeriod {
		want := int64(math.Ceil(in.GracePeriod.Seconds()))
		out = append(out, Finding{
			ID: FindingShortTermination,
			Message: fmt.Sprintf("terminationGracePeriodSeconds %d is shorter than the drain's grace period %ds: the kubelet kills the containers after %ds",
				int64(termination.Seconds()), want, int64(termination.Seconds())),
			Fix: templateFix(fmt.Sprintf("terminationGracePeriodSeconds: %d\n", want)),
		})
	}

	replicated := kind.Spec().Replicated
	if replicated && in.Replicas != nil && *in.Replicas == 1 {
		out = append(out, Finding{
			ID:      FindingSingleReplica,
			Message: fmt.Sprintf("%s has 1 replica: each eviction is downtime until the replacement is Ready", what) + surgeHint(kind),
			Fix:     "spec:\n  replicas: 2\n---\n" + pdbYAML(in),
		})
	}
	if replicated && in.Replicas != nil && *in.Replicas >= 2 && in.PDB != nil && !*in.PDB {
		out = append(out, Finding{
			ID: FindingNoPDB,
			Message: fmt.Sprintf("no PodDisruptionBudget selects the pods of %s: the VPA updater may evict the next pod before the replacement is Ready",
				what),
			Fix: pdbYAML(in),
		})
	}

	recreates := in.VPAUpdateMode == ModeRecreate || in.VPAUpdateMode == ModeAuto || (in.VPA != "" && in.VPAUpdateMode == "")
	if recreates && in.InPlaceResize {
		mode := cmp.Or(in.VPAUpdateMode, "unset ("+ModeAuto+")")
		vpa := "VerticalPodAutoscaler"
		if in.VPA != "" {
			vpa += " " + in.VPA
		}
		out = append(out, Finding{
			ID: FindingUseInPlaceOrRecreate,
			Message: fmt.Sprintf("%s of %s has updateMode %s, which evicts a pod to resize it; this cluster resizes pods in place",
				vpa, what, mode) + surgeHint(kind),
			Fix: "spec:\n  updatePolicy:\n    updateMode: " + ModeInPlaceOrRecreate + "\n",
		})
	}
	return out
}

// surgeHint is, for a Deployment, what surge rollouts offer instead of evictions (a
// StatefulSet cannot surge: its replacement has the old pod's identity).
func surgeHint(kind config.Kind) string {
	if kind != config.KindDeployment {
		return ""
	}
	return "; or let the function update it by surge rollouts (VPA in updateMode Initial, surgeRollout on, the Deployment annotated " +
		names.AnnotationSurgeRollout + ": \"true\"): the new pod is Ready before the old one goes"
}

// containersHave is "container a has" or "containers a, b have".
func containersHave(cs []corev1.Container) string {
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if len(names) == 1 {
		return "container " + names[0] + " has"
	}
	return "containers " + strings.Join(names, ", ") + " have"
}

// containerItems is a YAML list of the containers by name, each with the fields body gives.
func containerItems(cs []corev1.Container, body func(corev1.Container) string) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("- name: " + c.Name + "\n")
		b.WriteString(indent(body(c), "  "))
	}
	return b.String()
}

// templateFix places pod spec fields under the workload's spec.template.spec.
func templateFix(podSpec string) string {
	return "spec:\n  template:\n    spec:\n" + indent(podSpec, "      ")
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

// pdbYAML is a complete PodDisruptionBudget for the owner: maxUnavailable 1, the owner's
// selector (its template's labels when it has none), and unready replicas always evictable
// (as pacing creates it).
func pdbYAML(in Input) string {
	sel := in.Selector
	if sel == nil {
		sel = &metav1.LabelSelector{MatchLabels: in.Template.Labels}
	}
	doc := map[string]any{
		"apiVersion": "policy/v1",
		"kind":       "PodDisruptionBudget",
		"metadata":   map[string]any{"name": in.Owner.Name, "namespace": in.Namespace},
		"spec":       map[string]any{"maxUnavailable": 1, "selector": sel, "unhealthyPodEvictionPolicy": string(policyv1.AlwaysAllow)},
	}
	b, err := yaml.Marshal(doc)
	if err != nil { // a LabelSelector always marshals
		return fmt.Sprintf("# cannot render the PodDisruptionBudget: %v\n", err)
	}
	return string(b)
}

// eventMessageMax bounds the DrainNotGraceful message.
const eventMessageMax = 1024

// EventMessage is the DrainNotGraceful Event's message: it lists the findings' IDs and messages (the fixes are in the reply and the log).
func EventMessage(findings []Finding) string {
	parts := make([]string, 0, len(findings))
	for _, f := range findings {
		parts = append(parts, "["+f.ID+"] "+f.Message)
	}
	msg := "Evictions of these pods are not graceful: " + strings.Join(parts, "; ") +
		". Fixes: the function's dev.vpagracefuldrain.advice reply and its log."
	if len(msg) > eventMessageMax {
		cut := eventMessageMax - len("...")
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg
}
