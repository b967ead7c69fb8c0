package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"function/config"
	"function/handlers/drain"
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

// Advice is what was found about one owner's pods, once per owner and at most daily.
type Advice struct {
	Namespace string      `json:"namespace"`
	Owner     drain.Owner `json:"owner"`
	Findings  []Finding   `json:"findings"`
}

// EventDrainNotGraceful is the Warning Event on the owner that lists the findings.
const EventDrainNotGraceful = "DrainNotGraceful"

// adviceEvery is how often one owner is advised again (per replica).
const adviceEvery = 24 * time.Hour

// VerticalPodAutoscaler's API, read through the dynamic client (its CRD may be absent).
var vpaGVR = schema.GroupVersionResource{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}

// VPA update modes (spec.updatePolicy.updateMode) advice tells apart.
const (
	vpaModeAuto              = "Auto"
	vpaModeRecreate          = "Recreate"
	vpaModeInPlaceOrRecreate = "InPlaceOrRecreate"
)

// defaultTerminationGrace is the pod's terminationGracePeriodSeconds when it sets none.
const defaultTerminationGrace = 30 * time.Second

// preStopSleepSeconds is the preStop sleep advised: long enough for the endpoints controller
// and the proxies to stop sending traffic before SIGTERM.
const preStopSleepSeconds = 5

// AdviceInput is what Advise looks at: what was read about one pod's owner.
type AdviceInput struct {
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
// the order of the Finding* constants. It reads nothing: see checkOwner for what it is given.
func Advise(in AdviceInput) []Finding {
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
			Message: fmt.Sprintf("%s has 1 replica: each eviction is downtime until the replacement is Ready", what),
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

	recreates := in.VPAUpdateMode == vpaModeRecreate || in.VPAUpdateMode == vpaModeAuto || (in.VPA != "" && in.VPAUpdateMode == "")
	if recreates && in.InPlaceResize {
		mode := cmp.Or(in.VPAUpdateMode, "unset ("+vpaModeAuto+")")
		vpa := "VerticalPodAutoscaler"
		if in.VPA != "" {
			vpa += " " + in.VPA
		}
		out = append(out, Finding{
			ID: FindingUseInPlaceOrRecreate,
			Message: fmt.Sprintf("%s of %s has updateMode %s, which evicts a pod to resize it; this cluster resizes pods in place",
				vpa, what, mode),
			Fix: "spec:\n  updatePolicy:\n    updateMode: " + vpaModeInPlaceOrRecreate + "\n",
		})
	}
	return out
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
func pdbYAML(in AdviceInput) string {
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

// advised remembers when each owner was last advised (bounded; per replica: a restart or
// another replica may advise once more), and what advice learned about the cluster for the
// Reconciler's lifetime.
type advised struct {
	at advisedAt
	// uids is the UID last read for each workload (namespace/kind/name), so that another pod
	// of an owner advised recently needs no read at all.
	uids workloadUIDs
	// mu guards resizeKnown and resize: whether the cluster serves pods/resize, once
	// discovery said.
	mu                  sync.Mutex
	resizeKnown, resize bool
}

// due reports whether owner uid may be advised at now, and if so records it.
func (a *advised) due(uid types.UID, now time.Time) bool {
	due := false
	a.at.update(uid, func(last time.Time, ok bool) time.Time {
		if ok && now.Sub(last) < adviceEvery {
			return last
		}
		due = true
		return now
	})
	return due
}

// recent reports, without recording anything, whether the workload key was advised within
// adviceEvery before now.
func (a *advised) recent(key string, now time.Time) bool {
	uid, ok := a.uids.get(key)
	if !ok {
		return false
	}
	last, ok := a.at.get(uid)
	return ok && now.Sub(last) < adviceEvery
}

// remember records the UID read for the workload key.
func (a *advised) remember(key string, uid types.UID) { a.uids.put(key, uid) }

func workloadKey(namespace string, kind config.Kind, name string) string {
	return namespace + "/" + string(kind) + "/" + name
}

// checkOwner runs after the finalizer was added to pod: once per owner and at most daily it
// reads what defeats a graceful eviction of the owner's pods and reports it (a Warning Event
// DrainNotGraceful on the owner, and the returned Advice for the reply); with
// ensurePodDisruptionBudget it creates the owner's PodDisruptionBudget when none selects it.
// It never fails the event: what cannot be read is logged and skipped.
//
// It returns nil when the owner was not advised this time (advised recently, not a workload it
// reads, or unreadable), else the Advice, whose Findings may be empty. In dry-run it reads
// only. Reads: the owner, the namespace's PodDisruptionBudgets and VerticalPodAutoscalers (when
// r.Dynamic is set), and once per Reconciler the core/v1 discovery document.
func (r *Reconciler) checkOwner(ctx context.Context, pod *corev1.Pod, d drain.Decision, now time.Time) *Advice {
	if r.Client == nil || d.Owner == "" {
		return nil
	}
	if !d.Kind.Spec().Read {
		return nil // Other: a controller whose API this function does not read
	}
	cfg := r.CurrentConfig()
	log := r.Log.With(podAttrs(pod), slog.String("ownerKind", string(d.Kind)), slog.String("owner", d.Owner))
	pace := cfg.EnsurePDB && !r.DryRun && d.Kind.Spec().Paced
	key := workloadKey(pod.Namespace, d.Kind, d.Owner)
	recent := r.advised.recent(key, now)
	if recent && !pace {
		return nil
	}

	var (
		pdb     *bool // a PodDisruptionBudget selects the pod; nil: unknown
		pdbRead bool
		ours    []policyv1.PodDisruptionBudget // pacing's budgets that select the pod
		others  []string                       // the names of the others
	)
	readPDBs := func() {
		pdbRead = true
		var err error
		ours, others, err = r.pdbsSelecting(ctx, pod.Namespace, pod.Labels)
		if err != nil {
			log.WarnContext(ctx, "advice: cannot list PodDisruptionBudgets; skipped", slog.String("error", err.Error()))
			return
		}
		pdb = ptr.To(len(ours)+len(others) > 0)
	}
	if pace {
		readPDBs() // every time: pacing is not daily
		if len(others) > 0 {
			// Two budgets on one pod make every eviction of it fail: pacing's gives way.
			for i := range ours {
				_, _ = r.deletePDB(ctx, &ours[i], overlapWhy(others, d.Kind, d.Owner)) // logged; the next sweep retries
			}
		}
		if recent && (pdb == nil || *pdb) {
			return nil // nothing to create, and advised recently
		}
	}

	w, err := r.readOwner(ctx, pod.Namespace, d.Kind, d.Owner)
	if err != nil {
		log.WarnContext(ctx, "advice: cannot read the pod's owner; skipped", slog.String("error", err.Error()))
		return nil
	}
	r.advised.remember(key, w.UID)
	if pace && pdb != nil && !*pdb && r.ensurePDB(ctx, w, log) {
		pdb = ptr.To(true)
	}
	if !r.advised.due(w.UID, now) {
		return nil
	}
	if !pdbRead {
		readPDBs()
	}

	tplPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Annotations: w.Template.Annotations}}
	var ignored []string
	grace, _ := drain.Overrides(tplPod, cfg.Workload(d.Kind).GracePeriod, cfg.DrainTimeout, &ignored)
	in := AdviceInput{Owner: w.Owner, Namespace: w.Namespace, Replicas: w.Replicas, Selector: w.Selector,
		Template: w.Template, GracePeriod: grace, PDB: pdb}
	if v, err := r.vpaFor(ctx, w.Namespace, w.Kind, w.Name); err != nil {
		log.WarnContext(ctx, "advice: cannot list VerticalPodAutoscalers; skipped", slog.String("error", err.Error()))
	} else if v != nil {
		in.VPA, in.VPAUpdateMode = v.name, v.mode
		if v.mode == "" || v.mode == vpaModeAuto || v.mode == vpaModeRecreate {
			in.InPlaceResize = r.inPlaceResize(ctx, log)
		}
	}

	adv := &Advice{Namespace: w.Namespace, Owner: w.Owner, Findings: Advise(in)}
	if len(adv.Findings) == 0 {
		log.DebugContext(ctx, "advice: nothing defeats a graceful eviction")
		return adv
	}
	for _, f := range adv.Findings {
		log.InfoContext(ctx, "advice: an eviction of this owner's pods is not graceful", slog.String("finding", f.ID),
			slog.String("message", f.Message), slog.String("fix", f.Fix), slog.Bool("dryRun", r.DryRun))
	}
	if r.DryRun || r.Events == nil {
		return adv
	}
	ref := corev1.ObjectReference{Kind: string(w.Kind), APIVersion: "apps/v1", Namespace: w.Namespace, Name: w.Name, UID: w.UID}
	if err := r.Events.RecordFor(ctx, ref, corev1.EventTypeWarning, EventDrainNotGraceful, adviceMessage(adv.Findings)); err != nil {
		log.WarnContext(ctx, "could not record Kubernetes Event", slog.String("error", err.Error()))
	}
	return adv
}

// eventMessageMax bounds the DrainNotGraceful message.
const eventMessageMax = 1024

// adviceMessage lists the findings' IDs and messages (the fixes are in the reply and the log).
func adviceMessage(findings []Finding) string {
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

// pdbsSelecting lists the PodDisruptionBudgets in namespace that select pods with the given
// labels: those pacing created (labelled as its own) and the names of the others.
func (r *Reconciler) pdbsSelecting(ctx context.Context, namespace string, podLabels map[string]string) (ours []policyv1.PodDisruptionBudget, others []string, err error) {
	list, err := r.Client.PolicyV1().PodDisruptionBudgets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing PodDisruptionBudgets in %s: %w", namespace, err)
	}
	for _, p := range list.Items {
		// policy/v1: a nil selector selects nothing, an empty one every pod.
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		if p.Labels[LabelManagedBy] == Component {
			ours = append(ours, p)
		} else {
			others = append(others, p.Name)
		}
	}
	return ours, others, nil
}

// vpaRef is the VerticalPodAutoscaler that targets a workload.
type vpaRef struct {
	name string
	mode string // spec.updatePolicy.updateMode; "" when unset
}

// vpaFor finds the VerticalPodAutoscaler whose spec.targetRef is the workload; nil when there
// is none, when r.Dynamic is nil, or when the VPA CRD is not installed.
func (r *Reconciler) vpaFor(ctx context.Context, ns string, kind config.Kind, name string) (*vpaRef, error) {
	if r.Dynamic == nil {
		return nil, nil
	}
	list, err := r.Dynamic.Resource(vpaGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if crdAbsent(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing VerticalPodAutoscalers in %s: %w", ns, err)
	}
	for _, v := range list.Items {
		k, _, _ := unstructured.NestedString(v.Object, "spec", "targetRef", "kind")
		n, _, _ := unstructured.NestedString(v.Object, "spec", "targetRef", "name")
		apiVersion, _, _ := unstructured.NestedString(v.Object, "spec", "targetRef", "apiVersion")
		group, _, _ := strings.Cut(apiVersion, "/")
		if k != string(kind) || n != name || (apiVersion != "" && group != "apps") {
			continue
		}
		mode, _, _ := unstructured.NestedString(v.Object, "spec", "updatePolicy", "updateMode")
		return &vpaRef{name: v.GetName(), mode: mode}, nil
	}
	return nil, nil
}

// crdAbsent: the list failed because the API server does not serve the resource (its CRD is
// not installed).
func crdAbsent(err error) bool {
	if err == nil {
		return false
	}
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || strings.Contains(err.Error(), "no matches for kind") {
		return true
	}
	var status apierrors.APIStatus
	return errors.As(err, &status) && status.Status().Code == http.StatusNotFound
}

// inPlaceResize reports whether the cluster serves pods/resize (in-place pod resize). The
// answer is kept for the Reconciler's lifetime once discovery gave one; a failed discovery is
// logged and counts as no.
func (r *Reconciler) inPlaceResize(ctx context.Context, log *slog.Logger) bool {
	a := &r.advised
	a.mu.Lock()
	known, ok := a.resizeKnown, a.resize
	a.mu.Unlock()
	if known {
		return ok
	}
	var (
		list *metav1.APIResourceList
		err  error
	)
	d := r.Client.Discovery()
	if dc, isCtx := d.(discovery.ServerResourcesInterfaceWithContext); isCtx {
		list, err = dc.ServerResourcesForGroupVersionWithContext(ctx, "v1")
	} else {
		list, err = d.ServerResourcesForGroupVersion("v1")
	}
	if err != nil {
		log.WarnContext(ctx, "advice: cannot read the core/v1 discovery document; in-place resize support unknown", slog.String("error", err.Error()))
		return false
	}
	ok = slices.ContainsFunc(list.APIResources, func(res metav1.APIResource) bool { return res.Name == "pods/resize" })
	a.mu.Lock()
	a.resizeKnown, a.resize = true, ok
	a.mu.Unlock()
	return ok
}
