package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/advice"
	"function/handlers/drain"
	"function/names"
)

// Advice is what was found about one owner's pods, once per owner and at most daily.
type Advice struct {
	Namespace string           `json:"namespace"`
	Owner     drain.Owner      `json:"owner"`
	Findings  []advice.Finding `json:"findings"`
}

// adviceEvery is how often one owner is advised again (per replica).
const adviceEvery = 24 * time.Hour

// advised remembers when each owner was last advised (bounded; per replica: a restart or
// another replica may advise once more), and what advice learned about the cluster for the
// OwnerChecks' lifetime.
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

// OwnerChecks are what runs after the finalizer was added to a pod (AfterFinalizerAdded): advice
// (once per owner and at most daily: what defeats a graceful eviction of its pods) and pacing
// (ensurePodDisruptionBudget: its PodDisruptionBudget, pacing.go); the sweeps prune pacing's
// budgets (CleanupPDBs), uninstalling deletes them (DeletePDBs).
type OwnerChecks struct {
	Deps
	Owners *Owners
	// Config is the configuration in force (nil: the defaults).
	Config  func() config.Config
	advised advised
}

func (r *OwnerChecks) config() config.Config {
	if r.Config == nil {
		return config.Default()
	}
	return r.Config()
}

// advisedAt: when each owner (by uid) was last advised; workloadUIDs: the uid last read for
// each workload key (namespace/kind/name). Bounded maps.
type (
	advisedAt    = bounded[types.UID, time.Time, limit10k]
	workloadUIDs = bounded[string, types.UID, limit10k]
)

// AfterFinalizerAdded runs after the finalizer was added to pod: once per owner and at most daily it
// reads what defeats a graceful eviction of the owner's pods and reports it (a Warning Event
// DrainNotGraceful on the owner, and the returned Advice for the reply); with
// ensurePodDisruptionBudget it creates the owner's PodDisruptionBudget when none selects it.
// It never fails the event: what cannot be read is logged and skipped.
//
// It returns nil when the owner was not advised this time (advised recently, not a workload it
// reads, or unreadable), else the Advice, whose Findings may be empty. In dry-run it reads
// only. Reads: the owner, the namespace's PodDisruptionBudgets and VerticalPodAutoscalers (when
// r.Dynamic is set), and once per OwnerChecks the core/v1 discovery document.
func (r *OwnerChecks) AfterFinalizerAdded(ctx context.Context, pod *corev1.Pod, d drain.Decision, now time.Time) *Advice {
	if r == nil || r.Client == nil || d.Owner == "" {
		return nil
	}
	if !d.Kind.Spec().Read {
		return nil // Other: a controller whose API this function does not read
	}
	cfg := r.config()
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

	w, err := r.Owners.Read(ctx, pod.Namespace, d.Kind, d.Owner)
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

	tplPod := w.templatePod()
	var ignored []string
	grace, _ := drain.Overrides(tplPod, cfg.Workload(d.Kind).GracePeriod, cfg.DrainTimeout, &ignored)
	in := advice.Input{Owner: w.Owner, Namespace: w.Namespace, Replicas: w.Replicas, Selector: w.Selector,
		Template: w.Template, GracePeriod: grace, PDB: pdb}
	if v, err := r.vpaFor(ctx, w.Namespace, w.Kind, w.Name); err != nil {
		log.WarnContext(ctx, "advice: cannot list VerticalPodAutoscalers; skipped", slog.String("error", err.Error()))
	} else if v != nil {
		in.VPA, in.VPAUpdateMode = v.name, v.mode
		if advice.Recreates(v.mode) {
			in.InPlaceResize = r.inPlaceResize(ctx, log)
		}
	}

	adv := &Advice{Namespace: w.Namespace, Owner: w.Owner, Findings: advice.Advise(in)}
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
	ref := corev1.ObjectReference{Kind: string(w.Kind), APIVersion: w.Kind.Spec().APIVersion(), Namespace: w.Namespace, Name: w.Name, UID: w.UID}
	r.recordEvent(ctx, log, func() error {
		return r.Events.RecordFor(ctx, ref, corev1.EventTypeWarning, names.EventDrainNotGraceful, advice.EventMessage(adv.Findings))
	})
	return adv
}

// pdbsSelecting lists the PodDisruptionBudgets in namespace that select pods with the given
// labels: those pacing created (labelled as its own) and the names of the others.
func (r *OwnerChecks) pdbsSelecting(ctx context.Context, namespace string, podLabels map[string]string) (ours []policyv1.PodDisruptionBudget, others []string, err error) {
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
		if p.Labels[names.LabelManagedBy] == names.Component {
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
func (r *OwnerChecks) vpaFor(ctx context.Context, ns string, kind config.Kind, name string) (*vpaRef, error) {
	vpas, err := r.vpasIn(ctx, ns)
	if err != nil {
		return nil, err
	}
	for _, v := range vpas {
		if k, n, ok := targetOf(v); !ok || k != kind || n != name {
			continue
		}
		mode := ""
		if p := v.Spec.UpdatePolicy; p != nil && p.UpdateMode != nil {
			mode = string(*p.UpdateMode)
		}
		return &vpaRef{name: v.Name, mode: mode}, nil
	}
	return nil, nil
}

// inPlaceResize reports whether the cluster serves pods/resize (in-place pod resize). The
// answer is kept for the OwnerChecks' lifetime once discovery gave one; a failed discovery is
// logged and counts as no.
func (r *OwnerChecks) inPlaceResize(ctx context.Context, log *slog.Logger) bool {
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

// vpasIn lists the namespace's VerticalPodAutoscalers (none without a dynamic client or the
// CRD).
func (r *OwnerChecks) vpasIn(ctx context.Context, ns string) ([]*vpa_types.VerticalPodAutoscaler, error) {
	return listVPAs(ctx, r.Dynamic, ns)
}
