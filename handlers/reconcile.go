package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"function/config"
	"function/handlers/drain"
	"function/names"
)

// Outcome is what Reconcile did.
type Outcome struct {
	// Pod is the pod the final decision was made on (the live one after a re-read).
	Pod *corev1.Pod
	// Decision is the final decision.
	Decision drain.Decision
	// Applied is true when the decision's write was made (or, in dry-run, would have been).
	Applied bool
	// DryRun is true when nothing was written on purpose.
	DryRun bool
	// At is the time the decision was made.
	At time.Time
	// Advice is set when adding the finalizer found what defeats a graceful eviction of the
	// pod's owner (once per owner, at most daily).
	Advice *Advice
}

// Reconciler is the drain reconciler: it decides on pods (handlers/drain, pure) with the facts
// it reads (facts.go), applies each decision with one guarded JSON patch (apply.go), decides
// again on a fresh read when the guard fails (Guarded), records a Kubernetes Event for each
// drain milestone, and re-checks a waiting drain in-process (rechecks.go). After a finalizer is
// added it runs the owner checks (Checks: advice and pacing). Sweeps (Sweeper), uninstalling
// (Releaser) and surge rollouts (SurgeController) are types of their own that call it.
type Reconciler struct {
	Deps
	// Config is the configuration until SetConfig replaces it.
	Config config.Config
	// Rechecks holds the waiting drains' re-checks; Run processes them.
	Rechecks *Rechecks
	// Owners reads pods' owners for the facts (nil: made on first use, on Deps).
	Owners *Owners
	// Checks runs after a finalizer was added: advice and pacing (nil: made on first use, on
	// Deps, with the Reconciler's configuration).
	Checks *OwnerChecks

	once     sync.Once
	siblings siblings                      // drains waiting for a replacement, by controller
	gaps     gapMeter                      // evictions whose capacity gap is still open
	writes   lastWrites                    // the resourceVersion of each pod's last write
	live     atomic.Pointer[config.Config] // set by SetConfig
}

// init makes the parts left nil, on the Reconciler's Deps.
func (r *Reconciler) init() {
	r.once.Do(func() {
		if r.Owners == nil {
			r.Owners = &Owners{Deps: r.Deps}
		}
		if r.Checks == nil {
			r.Checks = &OwnerChecks{Deps: r.Deps, Owners: r.Owners, Config: r.CurrentConfig}
		}
		if r.Rechecks == nil {
			r.Rechecks = NewRechecks(r.clock())
			if r.Now != nil {
				r.Rechecks.now = r.Now // the API server's time (Deps.UseServerClock)
			}
		}
	})
}

// CurrentConfig is the configuration in force.
func (r *Reconciler) CurrentConfig() config.Config {
	if c := r.live.Load(); c != nil {
		return *c
	}
	return r.Config
}

// SetConfig puts cfg in force at once (a live ConfigMap change). The Sweeper's ConfigChanged
// has every pod converge to it now rather than at its next event.
func (r *Reconciler) SetConfig(cfg config.Config) { r.live.Store(&cfg) }

// NewReconciler is a Reconciler on deps (see NewDeps) and cfg. Call Run to process re-checks.
func NewReconciler(deps Deps, cfg config.Config) *Reconciler {
	r := &Reconciler{Deps: deps, Config: cfg}
	r.init()
	return r
}

// Reconcile handles a pod as an event describes it. An event is a hint, never the truth: anyone
// who can reach the function can post one. So its copy of the pod decides only what writes
// nothing (most events); a decision that would write (a finalizer, a drain stamp, a release)
// is made again on the pod read from the API server, and applied only if that live decision
// calls for it, guarded by the resourceVersion read. An event's copy never schedules a
// re-check of its own (it may only bring an existing one forward), never records a Kubernetes
// Event and never grows any in-memory structure: a forged event costs at most one read.
func (r *Reconciler) Reconcile(ctx context.Context, pod *corev1.Pod) (Outcome, error) {
	return r.reconcileObserved(ctx, pod, r.Client == nil) // without a cluster nothing is written
}

// ReconcileLive handles a pod just read from the API server (a GET, a sweep's LIST): its
// decision is applied as it stands, guarded by the resourceVersion read.
func (r *Reconciler) ReconcileLive(ctx context.Context, pod *corev1.Pod) (Outcome, error) {
	return r.reconcileObserved(ctx, pod, true)
}

func (r *Reconciler) reconcileObserved(ctx context.Context, pod *corev1.Pod, live bool) (Outcome, error) {
	r.init()
	// A Ready sibling (a replacement) may be what drains of the same owner wait for: bring
	// their re-checks forward (each re-check reads its pod live).
	for _, key := range r.siblings.waiting(pod, r.now()) {
		r.Rechecks.Advance(key, r.now())
	}
	if pod.DeletionTimestamp == nil {
		if _, ready := drain.ReadySince(pod); ready {
			r.gaps.close(ctx, r.metrics(), factReader{Deps: r.Deps, owners: r.Owners}, pod) // decided on the owner's pods as listed live
		}
	}
	if r.writes.stale(pod) {
		// Older than what this process last wrote: its decision would fail the guard (a 422
		// and a re-read); the event of the written state, or a newer one, decides instead.
		d := drain.Decision{Action: drain.None, Reason: "stale: older than this function's last write to the pod", FinalizerIndex: -1}
		r.Log.DebugContext(ctx, "decision", podAttrs(pod), slog.String("action", d.Action.String()), slog.String("reason", d.Reason))
		r.metrics().Decision(ctx, d.Action.String(), "stale")
		return Outcome{Pod: pod, Decision: d, At: r.now()}, nil
	}
	return r.reconcile(ctx, pod, live, r.decide)
}

// policy decides on a pod at a time with the facts read so far: decide normally,
// releaseDecision when uninstalling.
type policy func(pod *corev1.Pod, now time.Time, facts drain.Facts) drain.Decision

// decide is DecideWith, except that a dry-run against a cluster never holds a pod: it
// releases every deleting pod that holds the finalizer at once (and adds and stamps nothing).
func (r *Reconciler) decide(pod *corev1.Pod, now time.Time, facts drain.Facts) drain.Decision {
	d := drain.DecideWith(pod, r.CurrentConfig(), now, facts)
	if r.DryRun && r.Client != nil && pod.DeletionTimestamp != nil && d.FinalizerIndex >= 0 {
		d.Action, d.Reason, d.RecheckAt = drain.RemoveFinalizer, names.ReasonDryRun, time.Time{}
	}
	return d
}

// guardAttempts bounds the decisions made on one pod for one reconcile: the first on the pod
// as received, then one more on each re-read while the guard keeps failing (another replica,
// a re-check or the kubelet writing at the same moment).
const guardAttempts = 3

// ErrConcurrentWriter means the pod kept changing under the function while it applied a decision.
// Nothing is lost (a re-check is scheduled); the sender may retry.
var ErrConcurrentWriter = errors.New("the pod kept changing while the decision was applied (a concurrent writer)")

// errNeedsLive: the decision on an event's copy would write; it must be made on the live pod.
var errNeedsLive = errors.New("the decision writes: it is made again on the live pod")

func (r *Reconciler) reconcile(ctx context.Context, pod *corev1.Pod, live bool, decide policy) (Outcome, error) {
	r.init()
	var out Outcome
	if !live {
		var err error
		if out, err = r.decideAndApply(ctx, pod, false, decide); !errors.Is(err, errNeedsLive) {
			return out, err
		}
		fresh, getErr := getPod(ctx, r.Client, pod.Namespace, pod.Name)
		if getErr != nil {
			return Outcome{Pod: pod, Decision: out.Decision, At: out.At}, getErr
		}
		if fresh == nil || fresh.UID != pod.UID {
			// The event names a pod that is not there (gone, replaced, or never was).
			r.Log.DebugContext(ctx, "the event's pod is not the live one: nothing to do", podAttrs(pod),
				slog.String("eventAction", out.Decision.Action.String()))
			return Outcome{Pod: pod, Decision: gone(), At: out.At}, nil
		}
		event, eventAction := pod, out.Decision.Action
		pod = fresh
		defer func() {
			if out.Decision.Action != eventAction {
				r.Log.DebugContext(ctx, "the live pod called for another decision than the event's copy", podAttrs(pod),
					slog.String("eventAction", eventAction.String()), slog.String("liveAction", out.Decision.Action.String()),
					slog.String("eventResourceVersion", event.ResourceVersion))
			}
		}()
	}
	var lastErr error
	pod, err := Guarded(ctx, pod, guardAttempts,
		func(ctx context.Context, p *corev1.Pod) error {
			out, lastErr = r.decideAndApply(ctx, p, true, decide)
			return lastErr
		},
		func(ctx context.Context, p *corev1.Pod) (*corev1.Pod, bool, error) {
			r.Log.InfoContext(ctx, "live pod differs from the decision, reading it again",
				podAttrs(p), slog.String("action", out.Decision.Action.String()), slog.String("cause", lastErr.Error()))
			fresh, err := getPod(ctx, r.Client, p.Namespace, p.Name)
			return fresh, err == nil && fresh != nil && fresh.UID == p.UID, err
		}, IsGuardFailure)
	var reread *RereadError
	switch {
	case errors.Is(err, ErrGone):
		return Outcome{Pod: pod, Decision: gone(), At: out.At}, nil
	case errors.As(err, &reread):
		return Outcome{Pod: pod, Decision: gone(), At: out.At}, reread.Err
	}
	if err != nil && IsGuardFailure(err) && out.Decision.Action != drain.StartDrain {
		r.scheduleRecheck(out.Pod, r.now().Add(recheckRetry)) // once the other writer is done
		return out, fmt.Errorf("pod %s/%s: %w applying %s: %w", pod.Namespace, pod.Name, ErrConcurrentWriter, out.Decision.Action, err)
	}
	if err != nil && out.Decision.Action == drain.StartDrain && stampRefused(err) {
		// The stamp is only a record: the drain is timed from what the API server recorded, so
		// it still ends (drained or at its deadline) when the stamp can never be written (an
		// admission policy, annotations over the size limit).
		r.Log.WarnContext(ctx, "cannot write the drain-started stamp; the drain goes on without it",
			podAttrs(out.Pod), slog.String("startedFrom", string(out.Decision.StartedFrom)),
			slog.Time("started", out.Decision.Started), slog.Time("deadline", out.Decision.Deadline), slog.String("error", err.Error()))
		r.scheduleRecheck(out.Pod, out.Decision.RecheckAt)
		out.Decision.Action = drain.Wait
		return out, nil
	}
	return out, err
}

// release removes the finalizer from a pod just listed, whatever its state, the way of every
// decision (guarded, decided again on a fresh read): the Releaser's work on one pod.
func (r *Reconciler) release(ctx context.Context, pod *corev1.Pod) (Outcome, error) {
	return r.reconcile(ctx, pod, true, releaseDecision)
}

// stampRefused: the API server refused the write for good (403 from an admission policy or
// webhook, 400 or 422 for an invalid object), not because the pod changed.
func stampRefused(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	switch status.Status().Code {
	case http.StatusForbidden, http.StatusBadRequest, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// ReconcileRef handles a Reference-mode event: it reads the pod, then reconciles it.
func (r *Reconciler) ReconcileRef(ctx context.Context, namespace, name string) (Outcome, error) {
	if r.Client == nil {
		return Outcome{}, ErrNoCluster
	}
	pod, err := getPod(ctx, r.Client, namespace, name)
	if err != nil || pod == nil {
		return Outcome{Decision: gone(), At: r.now()}, err
	}
	return r.ReconcileLive(ctx, pod)
}

// Forget drops all this process keeps about the pod: its pending re-check, its sibling wait,
// its last write. Only a read that found the pod gone calls it (a re-check, a 404 on a
// write), never an event: a forged delete event must not cancel a real drain's re-check.
func (r *Reconciler) Forget(uid types.UID) {
	r.Rechecks.Cancel(uid)
	r.siblings.forget(uid)
	r.writes.forget(uid)
}

// Stop drops every pending re-check and ends Run's workers. Run calls it when its ctx ends.
func (r *Reconciler) Stop() {
	r.init()
	r.Rechecks.ShutDown()
}

// Run processes re-checks with `workers` goroutines until ctx ends; then it stops the
// re-checks and returns once its goroutines have.
func (r *Reconciler) Run(ctx context.Context, workers int) {
	r.init()
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for r.processNextRecheck(ctx) {
			}
		})
	}
	<-ctx.Done()
	r.Stop()
	wg.Wait()
}

// gone is the decision for a pod that no longer exists (or was replaced by another pod of the
// same name): nothing to do.
func gone() drain.Decision {
	return drain.Decision{Action: drain.None, Reason: "pod not found", FinalizerIndex: -1}
}

// releaseDecision removes the finalizer whatever the pod's state.
func releaseDecision(pod *corev1.Pod, _ time.Time, _ drain.Facts) drain.Decision {
	d := drain.Decision{FinalizerIndex: slices.Index(pod.Finalizers, names.Finalizer), Reason: "finalizer already gone"}
	if d.FinalizerIndex >= 0 {
		d.Action, d.Reason = drain.RemoveFinalizer, names.ReasonUninstalled
	}
	return d
}

// recheckTimeout bounds one re-check (a read and at most one decision's writes).
const recheckTimeout = 30 * time.Second

// scheduleRecheck asks for the pod to be read and reconciled again at `at`. It needs the
// cluster.
func (r *Reconciler) scheduleRecheck(pod *corev1.Pod, at time.Time) {
	if r.Client == nil || r.Rechecks == nil {
		return
	}
	r.Rechecks.Schedule(PodKey{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}, at)
}

// processNextRecheck runs one due re-check, waiting for one; false once the queue is shut
// down. The re-check reads the pod and reconciles it; a pod that is gone, or was replaced by
// another of the same name, needs nothing (and is forgotten).
func (r *Reconciler) processNextRecheck(ctx context.Context) bool {
	key, ok := r.Rechecks.next()
	if !ok {
		return false
	}
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, recheckTimeout)
		defer cancel()
		live, err := getPod(ctx, r.Client, key.Namespace, key.Name)
		if err != nil {
			return err
		}
		if live == nil || live.UID != key.UID {
			r.Forget(key.UID) // gone (or replaced): nothing of it is kept
			return nil
		}
		out, err := r.ReconcileLive(ctx, live)
		if err != nil && out.Decision.Action == drain.StartDrain {
			// Not stamped: look again no later than the drain's next due time.
			r.scheduleRecheck(live, out.Decision.RecheckAt)
		}
		return err
	}()
	if err != nil && ctx.Err() == nil {
		r.Log.WarnContext(ctx, "re-check failed, trying again after a backoff", slog.String("pod", key.Namespace+"/"+key.Name),
			slog.Int("failures", r.Rechecks.retries(key)+1), slog.String("error", err.Error()))
	}
	r.Rechecks.finish(key, err)
	return true
}

// InProgress is how many drains this process is waiting on (its pending re-checks).
func (r *Reconciler) InProgress() int64 { return int64(r.Rechecks.Len()) }
