package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/status"
	"k8s.io/client-go/util/workqueue"

	"function/config"
	"function/handlers/drain"
	"function/handlers/surge"
)

// Kubernetes Event reasons of surge rollouts, on the Deployment.
const (
	EventSurgeRolloutStarted   = "SurgeRolloutStarted"
	EventSurgeRolloutCompleted = "SurgeRolloutCompleted"
	EventSurgeRolloutAborted   = "SurgeRolloutAborted"
	EventSurgeRolloutSkipped   = "SurgeRolloutSkipped"
)

// errSurgeGuard: the Deployment changed between the read and the write (the Deployment
// controller writes its status at every step of a rollout); the decision is made again after
// SurgeFollow, on what it is then.
var errSurgeGuard = errors.New("the Deployment changed since it was read (its guard failed); deciding again")

// SurgeOutcome is the metric outcome of an applied surge decision.
func SurgeOutcome(a surge.Action) string {
	switch a {
	case surge.Restart:
		return "started"
	case surge.Complete:
		return "completed"
	case surge.Abort:
		return "aborted"
	case surge.Release:
		return "released"
	case surge.Skip:
		return "skipped"
	case surge.Track:
		return "tracked"
	}
	return a.String()
}

// SurgeResult is what one pass over the opted-in Deployments did.
type SurgeResult struct {
	Deployments int
	Decisions   map[string]int // by surge.Action.String()
}

// SurgeReport is a surge decision applied (or, in dry-run, decided) on one Deployment: what a
// reply event reports.
type SurgeReport struct {
	Namespace, Name string
	UID             types.UID
	Decision        surge.Decision
	DryRun          bool
	At              time.Time
}

// surgeState is what surge rollouts keep in memory: nothing a rollout needs (that is in the
// Deployments' annotations), only the lock that makes one replica's restarts count one
// budget, and when each Deployment (or VPA) may be evaluated again on an event's word.
type surgeState struct {
	once sync.Once
	sem  chan struct{} // the lock: one evaluation at a time
	asks bounded[string, time.Time, limit10k]
	// follow holds the rollouts in flight this replica evaluated last (namespace/name), each
	// to be evaluated again after SurgeFollow; followed are the keys queued, at most
	// maxFollowed (the queue's Len counts only those already due).
	followOnce sync.Once
	follow     workqueue.TypedDelayingInterface[string]
	followMu   sync.Mutex
	followed   map[string]bool
}

// SurgeFollow is how soon a rollout in flight is evaluated again by the replica that last
// evaluated it (between its pods' events and the sweeps): its end is noticed within it, and
// its capacity gap sampled. maxFollowed bounds how many one replica follows.
const (
	SurgeFollow = 2 * time.Second
	maxFollowed = 1000
)

// followups is the queue of rollouts to evaluate again (made on first use, on r.Clock).
func (r *Reconciler) followups() workqueue.TypedDelayingInterface[string] {
	r.surge.followOnce.Do(func() {
		r.surge.follow = workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Clock: r.Clock})
	})
	return r.surge.follow
}

// followUp has the rollout of Deployment ns/name evaluated again after SurgeFollow, unless
// maxFollowed others are queued already (the sweeps and events follow it then).
func (r *Reconciler) followUp(ns, name string) {
	key := ns + "/" + name
	r.surge.followMu.Lock()
	if !r.surge.followed[key] && len(r.surge.followed) >= maxFollowed {
		r.surge.followMu.Unlock()
		return
	}
	if r.surge.followed == nil {
		r.surge.followed = map[string]bool{}
	}
	r.surge.followed[key] = true
	r.surge.followMu.Unlock()
	r.followups().AddAfter(key, SurgeFollow)
}

// followedCount is how many rollouts are queued to be followed.
func (r *Reconciler) followedCount() int {
	r.surge.followMu.Lock()
	defer r.surge.followMu.Unlock()
	return len(r.surge.followed)
}

// processNextFollowup evaluates the next rollout due (waiting for one); false once the queue
// is shut down.
func (r *Reconciler) processNextFollowup(ctx context.Context) bool {
	q := r.followups()
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	r.surge.followMu.Lock()
	delete(r.surge.followed, key)
	r.surge.followMu.Unlock()
	cfg := r.CurrentConfig()
	if !cfg.Surge.Enabled || r.Client == nil {
		return true
	}
	ns, name, _ := strings.Cut(key, "/")
	if _, err := r.surgeEvaluate(ctx, cfg, ns, name, nil, true, r.now()); err != nil && ctx.Err() == nil {
		r.Log.WarnContext(ctx, "surge rollout: cannot follow the rollout; trying again", slog.String("namespace", ns),
			slog.String("deployment", name), slog.String("error", err.Error()))
		r.followUp(ns, name)
	}
	return true
}

// lock takes the lock, waiting until ctx ends (wait false: only if it is free); false: not
// taken.
func (s *surgeState) lock(ctx context.Context, wait bool) bool {
	s.once.Do(func() { s.sem = make(chan struct{}, 1) })
	if !wait {
		select {
		case s.sem <- struct{}{}:
			return true
		default:
			return false
		}
	}
	select {
	case s.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *surgeState) unlock() { <-s.sem }

// How soon an event may have a Deployment evaluated again: a rollout in flight is followed
// closely (its capacity gap is sampled at every evaluation), and so is a VPA (its updates are
// rare: the recommender writes each at most once a minute, and each may call for a rollout);
// an opted-in Deployment less often, one that is not opted in (or not found) rarely. The
// sweeps evaluate every opted-in Deployment whatever these say.
const (
	SurgeEvalRolling = time.Second
	SurgeEvalOptedIn = 10 * time.Second
	SurgeEvalOther   = time.Minute
)

// due reports whether key may be evaluated at now: not when the last evaluation of the object
// it names (read live: only that fills the map, never an event's word) set a bound not
// passed yet.
func (s *surgeState) due(key string, now time.Time) bool {
	next, ok := s.asks.get(key)
	return !ok || !now.Before(next)
}

// budgetOf counts, over every Deployment, the surge rollouts in flight and those started in
// the minute before now.
func budgetOf(ds []appsv1.Deployment, now time.Time) surge.Budget {
	var b surge.Budget
	for i := range ds {
		st, _ := surge.ReadState(&ds[i])
		if st.Phase == surge.PhaseRolling {
			b.InFlight++
		}
		if !st.Started.IsZero() && now.Sub(st.Started) < time.Minute {
			b.LastMinute++
		}
	}
	return b
}

// SurgeSweep evaluates every Deployment that opted in to surge rollouts (or has one in flight)
// once: the sweeps run it, on one replica (the sweep Lease). Every write is decided on what
// was read just now and guarded on it (surge.Patch); a Deployment that cannot be read or
// written is logged and left to the next sweep.
func (r *Reconciler) SurgeSweep(ctx context.Context) (SurgeResult, error) {
	res := SurgeResult{Decisions: map[string]int{}}
	cfg := r.CurrentConfig()
	if !cfg.Surge.Enabled || r.Client == nil {
		return res, nil
	}
	if !r.surge.lock(ctx, true) {
		return res, fmt.Errorf("surge rollouts: %w", ctx.Err())
	}
	defer r.surge.unlock()
	list, err := r.Client.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, fmt.Errorf("listing Deployments for surge rollouts: %w", err)
	}
	now := r.now()
	budget := budgetOf(list.Items, now)
	var candidates []*appsv1.Deployment
	for i := range list.Items {
		d := &list.Items[i]
		if st, _ := surge.ReadState(d); st.Phase == surge.PhaseRolling || d.Annotations[surge.AnnotationSurgeRollout] == "true" && cfg.Namespaces.Selects(d.Namespace) {
			candidates = append(candidates, d)
		}
	}
	res.Deployments = len(candidates)
	for _, d := range candidates {
		dec, err := r.surgeOne(ctx, d, cfg, nil, &budget, now)
		if errors.Is(err, errSurgeGuard) {
			r.Log.DebugContext(ctx, "surge rollout: "+err.Error(), slog.String("namespace", d.Namespace), slog.String("deployment", d.Name))
			continue
		}
		if err != nil {
			r.Log.WarnContext(ctx, "surge rollout: cannot evaluate the Deployment; the next sweep retries",
				slog.String("namespace", d.Namespace), slog.String("deployment", d.Name), slog.String("error", err.Error()))
			continue
		}
		res.Decisions[dec.Action.String()]++
	}
	return res, nil
}

// SurgeForVPA evaluates the Deployment a VerticalPodAutoscaler targets, on the word of an event
// about that VPA (its recommendation may have changed): nothing of the event is used but the
// VPA's namespace and name. It reads the namespace's VPAs, and then (an opted-in Deployment, or
// one with a rollout in flight) what SurgeEvaluate reads; at most once per SurgeEvalRolling per
// VPA that exists, so a sender who repeats an event costs one read per event (of a VPA that
// does not exist) or per VPA and bound, and never a write the live objects do not decide. Unlike a pod's event it waits for a sweep in progress (until
// ctx ends: then it fails, and the sender retries). nil: nothing applied.
func (r *Reconciler) SurgeForVPA(ctx context.Context, ns, name string) (*SurgeReport, error) {
	cfg := r.CurrentConfig()
	if !cfg.Surge.Enabled || r.Client == nil || r.Dynamic == nil || !cfg.Namespaces.Selects(ns) {
		return nil, nil
	}
	now := r.now()
	if !r.surge.due("vpa/"+ns+"/"+name, now) {
		return nil, nil
	}
	vpas, err := r.vpasIn(ctx, ns)
	if err != nil {
		return nil, err
	}
	for _, v := range vpas {
		if v.Name != name {
			continue
		}
		r.surge.asks.put("vpa/"+ns+"/"+name, now.Add(SurgeEvalRolling))
		kind, target, ok := targetOf(v)
		if !ok || kind != config.KindDeployment {
			return nil, nil // not a Deployment's: no surge rollout
		}
		return r.surgeEvaluate(ctx, cfg, ns, target, vpas, true, now)
	}
	return nil, nil // gone: nothing to do
}

// SurgeForPod evaluates the Deployment of a pod an event was about (a pod of a rollout in
// flight changes at every step of it, so its capacity gap is sampled where the Ready pods
// change), through SurgeEvaluate's bounds. nil: nothing applied (also for a pod of no
// Deployment, without a read).
func (r *Reconciler) SurgeForPod(ctx context.Context, pod *corev1.Pod) (*SurgeReport, error) {
	if pod == nil || !r.CurrentConfig().Surge.Enabled {
		return nil, nil
	}
	kind, name, _ := drain.OwnerOf(pod, drain.Facts{})
	if kind != config.KindDeployment {
		return nil, nil
	}
	return r.SurgeEvaluate(ctx, pod.Namespace, name)
}

// SurgeEvaluate evaluates the Deployment ns/name now, on an event's word: it reads the
// Deployment and, when it opted in or has a rollout in flight, what the sweep reads for it
// (its pods, the namespace's VPAs, the admission controller's status, and for a restart every
// Deployment, to count the budget), at most once per bound (SurgeEvalRolling,
// SurgeEvalOptedIn, SurgeEvalOther, by what the last read found). While a sweep is in
// progress it does not wait (a pod's event must not wait for every Deployment): the sweep
// evaluates the Deployment, and a rollout's pods change again. nil: nothing applied.
func (r *Reconciler) SurgeEvaluate(ctx context.Context, ns, name string) (*SurgeReport, error) {
	cfg := r.CurrentConfig()
	if !cfg.Surge.Enabled || r.Client == nil || !cfg.Namespaces.Selects(ns) {
		return nil, nil
	}
	now := r.now()
	if !r.surge.due(ns+"/"+name, now) {
		return nil, nil
	}
	return r.surgeEvaluate(ctx, cfg, ns, name, nil, false, now)
}

// surgeEvaluate reads the Deployment ns/name and, when it opted in or has a rollout in flight,
// evaluates it (surgeOne) under the lock: waiting for it (wait), or not at all while a sweep
// holds it.
func (r *Reconciler) surgeEvaluate(ctx context.Context, cfg config.Config, ns, name string, vpas []*vpa_types.VerticalPodAutoscaler,
	wait bool, now time.Time) (*SurgeReport, error) {
	key := ns + "/" + name
	d, err := r.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil // nothing remembered about a name no object has
	}
	if err != nil {
		return nil, fmt.Errorf("reading Deployment %s: %w", key, err)
	}
	st, _ := surge.ReadState(d)
	switch {
	case st.Phase == surge.PhaseRolling:
		r.surge.asks.put(key, now.Add(SurgeEvalRolling))
	case d.Annotations[surge.AnnotationSurgeRollout] == "true":
		r.surge.asks.put(key, now.Add(SurgeEvalOptedIn))
	default:
		r.surge.asks.put(key, now.Add(SurgeEvalOther))
		return nil, nil
	}
	if !r.surge.lock(ctx, wait) {
		if wait {
			return nil, fmt.Errorf("waiting for the surge-rollout sweep in progress: %w", ctx.Err())
		}
		return nil, nil // a sweep is evaluating every opted-in Deployment; the next event follows
	}
	defer r.surge.unlock()
	dec, err := r.surgeOne(ctx, d, cfg, vpas, nil, now)
	if errors.Is(err, errSurgeGuard) {
		r.Log.DebugContext(ctx, "surge rollout: "+err.Error(), slog.String("namespace", ns), slog.String("deployment", name))
		return nil, nil
	}
	if err == nil && dec.Action == surge.Restart {
		r.surge.asks.put(key, now.Add(SurgeEvalRolling)) // follow it from its first step
	}
	if err != nil || dec.Action == surge.None {
		return nil, err
	}
	return &SurgeReport{Namespace: d.Namespace, Name: d.Name, UID: d.UID, Decision: dec, DryRun: r.DryRun, At: now}, nil
}

// surgeOne reads what the surge policy decides a Deployment on (its pods; the namespace's VPAs
// unless given), decides, and applies it. budget is the sweep's count, updated as rollouts
// start and end; nil (an event's evaluation) counts it from every Deployment when the decision
// is a restart, the one decision the budget changes.
func (r *Reconciler) surgeOne(ctx context.Context, d *appsv1.Deployment, cfg config.Config, vpas []*vpa_types.VerticalPodAutoscaler,
	budget *surge.Budget, now time.Time) (surge.Decision, error) {
	pods, err := r.ownPods(ctx, d.Namespace, config.KindDeployment, d.Name, d.Spec.Selector,
		func(p *corev1.Pod) bool { return r.ownedByDeployment(p, d.Name) })
	if err != nil {
		return surge.Decision{}, err
	}
	if vpas == nil {
		if vpas, err = r.vpasIn(ctx, d.Namespace); err != nil {
			return surge.Decision{}, err
		}
	}
	in := surge.DecideInput{
		Input: surge.Input{Deployment: d, Pods: pods, VPA: surge.ControllingVPA(vpas, d.Namespace, d.Name),
			AdmissionController: r.admissionControllerAlive(ctx, cfg),
			Settings: surge.Settings{PodUpdateThreshold: cfg.Surge.PodUpdateThreshold, InRecommendationBoundsEvictionLifetimeThreshold: cfg.Surge.InBoundsLifetime,
				EvictAfterOOMThreshold: cfg.Surge.EvictAfterOOM, UseAdmissionControllerStatus: cfg.Surge.UseAdmissionControllerStatus}},
		Enabled: cfg.Surge.Enabled, Limits: surge.LimitsOf(cfg.Surge), Now: now,
	}
	dec := surge.Decide(in)
	if dec.Action == surge.Restart {
		if budget == nil {
			list, err := r.Client.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
			if err != nil {
				return surge.Decision{}, fmt.Errorf("listing Deployments for the surge budget: %w", err)
			}
			b := budgetOf(list.Items, now)
			budget = &b
		}
		in.Budget = *budget
		dec = surge.Decide(in) // the same decision, or none over the budget
	}
	log := r.Log.With(slog.String("namespace", d.Namespace), slog.String("deployment", d.Name),
		slog.String("action", dec.Action.String()), slog.String("reason", dec.Reason))
	if dec.Action == surge.None {
		log.DebugContext(ctx, "surge rollout: nothing to do")
		if st, _ := surge.ReadState(d); st.Phase == surge.PhaseRolling {
			r.followUp(d.Namespace, d.Name)
		}
		return dec, nil
	}
	if r.DryRun {
		log.InfoContext(ctx, "surge rollout: dry-run, not applied", slog.Bool("dryRun", true))
		return dec, nil
	}
	patch, err := surge.Patch(d, dec)
	if err != nil {
		return dec, err
	}
	if _, err := r.Client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: Component}); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsConflict(err) {
			r.followUp(d.Namespace, d.Name) // decided again on what it is now
			return dec, fmt.Errorf("%w: %w", errSurgeGuard, err)
		}
		return dec, fmt.Errorf("patching Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	if dec.State.Phase == surge.PhaseRolling {
		r.followUp(d.Namespace, d.Name) // started, or a gap tracked: follow it to its end
	}
	switch {
	case budget == nil:
	case dec.Action == surge.Restart:
		budget.InFlight++
		budget.LastMinute++
	case dec.Action == surge.Complete || dec.Action == surge.Abort || dec.Action == surge.Release:
		budget.InFlight--
	}
	if dec.Action == surge.Track {
		log.DebugContext(ctx, "surge rollout: capacity gap", slog.Int("gap", int(dec.State.Gap)))
		return dec, nil
	}
	log.InfoContext(ctx, "surge rollout", slog.String("prediction", dec.State.Prediction), slog.Int("gap", int(dec.State.Gap)))
	seconds := -1.0
	if dec.Action == surge.Complete || dec.Action == surge.Abort || dec.Action == surge.Release {
		seconds = now.Sub(dec.State.Started).Seconds()
	}
	r.metrics().SurgeRollout(ctx, SurgeOutcome(dec.Action), seconds, int(dec.State.Gap))
	eventType, reason := corev1.EventTypeNormal, map[surge.Action]string{
		surge.Restart: EventSurgeRolloutStarted, surge.Complete: EventSurgeRolloutCompleted, surge.Release: EventSurgeRolloutCompleted,
		surge.Abort: EventSurgeRolloutAborted, surge.Skip: EventSurgeRolloutSkipped}[dec.Action]
	if dec.Action == surge.Abort {
		eventType = corev1.EventTypeWarning
	}
	msg := dec.Reason
	if dec.Action == surge.Complete || dec.Action == surge.Abort {
		msg = fmt.Sprintf("%s (capacity gap %d)", dec.Reason, dec.State.Gap)
	}
	ref := corev1.ObjectReference{Kind: "Deployment", APIVersion: "apps/v1", Namespace: d.Namespace, Name: d.Name, UID: d.UID}
	r.recordEvent(ctx, log, func() error { return r.Events.RecordFor(ctx, ref, eventType, reason, msg) })
	return dec, nil
}

// vpasIn lists the namespace's VerticalPodAutoscalers (none without a dynamic client or the
// CRD).
func (r *Reconciler) vpasIn(ctx context.Context, ns string) ([]*vpa_types.VerticalPodAutoscaler, error) {
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
	vpas := make([]*vpa_types.VerticalPodAutoscaler, 0, len(list.Items))
	for _, u := range list.Items {
		v := &vpa_types.VerticalPodAutoscaler{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
			return nil, fmt.Errorf("reading VerticalPodAutoscaler %s/%s: %w", ns, u.GetName(), err)
		}
		vpas = append(vpas, v)
	}
	return vpas, nil
}

// admissionControllerAlive is whether VPA's admission controller reports itself alive, as the
// updater checks it (its status Lease vpa-admission-controller in kube-system renewed within a
// minute); a Lease that cannot be read counts as not alive.
func (r *Reconciler) admissionControllerAlive(ctx context.Context, cfg config.Config) bool {
	if !cfg.Surge.UseAdmissionControllerStatus {
		return true
	}
	ok, err := status.NewClient(r.Client, status.AdmissionControllerStatusName, status.AdmissionControllerStatusNamespace, time.Minute, Component).
		IsStatusValid(ctx, status.AdmissionControllerStatusTimeout)
	if err != nil {
		r.Log.DebugContext(ctx, "surge rollout: VPA's admission controller status unreadable", slog.String("error", err.Error()))
		return false
	}
	return ok
}
