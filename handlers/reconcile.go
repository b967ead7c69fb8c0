package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"function/config"
	"function/handlers/drain"
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

// Reconciler applies decisions to the cluster: one guarded JSON patch per decision, a re-read
// and a second decision when the guard fails, a Kubernetes Event for each drain milestone, an
// in-process re-check while a drain waits, and sweeps of every pod.
type Reconciler struct {
	// Client is the cluster; nil means dry-run without a cluster (no reads, no writes).
	Client kubernetes.Interface
	// Dynamic reads VerticalPodAutoscalers for advice; nil: they are not read.
	Dynamic dynamic.Interface
	// Config is the configuration until SetConfig replaces it.
	Config config.Config
	// DryRun decides and reports, but never writes.
	DryRun bool
	Clock  clock.WithTicker
	Events EventRecorder
	Log    *slog.Logger
	// Rechecks holds the waiting drains' re-checks; Run processes them.
	Rechecks *Rechecks
	// Lease, when set, shares one sweep schedule between replicas (see SweepLease).
	Lease *SweepLease
	// Metrics, when set, receives every decision, drain, capacity gap and sweep.
	Metrics Metrics
	// Server, when set, is the API server's clock that decisions are made on (see
	// UseServerClock); nil: Clock.
	Server *ServerClock
	// Surge, when set, is the surge-rollout controller: Run runs it, the sweeps sweep it.
	Surge *SurgeController

	owners   ownersOf                      // ReplicaSet -> its Deployment
	siblings siblings                      // drains waiting for a replacement, by controller
	advised  advised                       // when each owner was last advised
	gaps     openGaps                      // evictions whose capacity gap is still open
	writes   lastWrites                    // the resourceVersion of each pod's last write
	live     atomic.Pointer[config.Config] // set by SetConfig
	sweeps   sweepState                    // Run's sweeps: asked for, pending, their findings
}

// CurrentConfig is the configuration in force.
func (r *Reconciler) CurrentConfig() config.Config {
	if c := r.live.Load(); c != nil {
		return *c
	}
	return r.Config
}

// SetConfig puts cfg in force at once (a live ConfigMap change) and, once Run is running,
// asks for a sweep, so every pod converges to it now rather than at its next event. (Before
// Run, its own first sweep does.)
func (r *Reconciler) SetConfig(cfg config.Config) {
	r.live.Store(&cfg)
	if r.sweeps.running.Load() {
		r.RequestSweep()
	}
}

// NewReconciler wires a Reconciler with real time and API-written Events. Call Run to
// process re-checks and sweep.
func NewReconciler(client kubernetes.Interface, cfg config.Config, dryRun bool, log *slog.Logger) *Reconciler {
	c := clock.RealClock{}
	r := &Reconciler{
		Client: client, Config: cfg, DryRun: dryRun || client == nil, Clock: c,
		Log: log, Rechecks: NewRechecks(c),
	}
	if client != nil {
		r.Events = APIEventRecorder{Client: client, Now: c.Now}
	}
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
	// A Ready sibling (a replacement) may be what drains of the same owner wait for: bring
	// their re-checks forward (each re-check reads its pod live).
	for _, key := range r.siblings.waiting(pod, r.now()) {
		r.Rechecks.Advance(key, r.now())
	}
	if pod.DeletionTimestamp == nil {
		if _, ready := readySince(pod); ready {
			r.closeGaps(ctx, pod) // decided on the owner's pods as listed live
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
		d.Action, d.Reason, d.RecheckAt = drain.RemoveFinalizer, drain.ReasonDryRun, time.Time{}
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
	out, err := r.decideAndApply(ctx, pod, live, decide)
	if errors.Is(err, errNeedsLive) {
		fresh, getErr := r.get(ctx, pod.Namespace, pod.Name)
		if getErr != nil {
			return Outcome{Pod: pod, Decision: out.Decision, At: out.At}, getErr
		}
		if fresh == nil || fresh.UID != pod.UID {
			// The event names a pod that is not there (gone, replaced, or never was).
			r.Log.DebugContext(ctx, "the event's pod is not the live one: nothing to do", podAttrs(pod),
				slog.String("eventAction", out.Decision.Action.String()))
			return Outcome{Pod: pod, Decision: gone(), At: out.At}, nil
		}
		eventAction := out.Decision.Action
		out, err = r.decideAndApply(ctx, fresh, true, decide)
		if out.Decision.Action != eventAction {
			r.Log.DebugContext(ctx, "the live pod called for another decision than the event's copy", podAttrs(fresh),
				slog.String("eventAction", eventAction.String()), slog.String("liveAction", out.Decision.Action.String()),
				slog.String("eventResourceVersion", pod.ResourceVersion))
		}
		pod = fresh
	}
	for attempt := 2; err != nil && isGuardFailure(err) && attempt <= guardAttempts; attempt++ {
		r.Log.InfoContext(ctx, "live pod differs from the decision, reading it again",
			podAttrs(pod), slog.String("action", out.Decision.Action.String()), slog.String("cause", err.Error()))
		fresh, getErr := r.get(ctx, pod.Namespace, pod.Name)
		if getErr != nil || fresh == nil || fresh.UID != pod.UID {
			return Outcome{Pod: pod, Decision: gone(), At: out.At}, getErr
		}
		pod = fresh
		out, err = r.decideAndApply(ctx, fresh, true, decide)
	}
	if err != nil && isGuardFailure(err) && out.Decision.Action != drain.StartDrain {
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
	pod, err := r.get(ctx, namespace, name)
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
	r.Rechecks.ShutDown()
	if r.Surge != nil {
		r.Surge.Stop()
	}
}

// Run processes re-checks with `workers` goroutines and, when there is a cluster and
// Config.SweepInterval is positive, sweeps every pod at once and then every SweepInterval,
// and runs the surge controller (Surge), until ctx ends; then it stops the re-checks and
// returns once its goroutines have.
func (r *Reconciler) Run(ctx context.Context, workers int) {
	r.sweeps.running.Store(true)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for r.processNextRecheck(ctx) {
			}
		})
	}
	if r.Client != nil && r.CurrentConfig().SweepInterval > 0 {
		wg.Go(func() { r.sweepEvery(ctx) })
	}
	if r.Surge != nil {
		wg.Go(func() { r.Surge.Run(ctx) })
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

// ErrNoCluster is returned for work that needs the cluster while there is none.
var ErrNoCluster = errors.New("no cluster configured (dry-run without a cluster): the pod cannot be read")

// decideAndApply decides on pod and applies the decision. pod is live when it was read from
// the API server; an event's copy (live false) is only decided on: a decision that would
// write, or that would record anything about the pod, returns errNeedsLive instead.
func (r *Reconciler) decideAndApply(ctx context.Context, pod *corev1.Pod, live bool, decide policy) (Outcome, error) {
	d, facts, now := r.decideWithFacts(ctx, pod, decide)
	if !live && d.Action.Writes() && (!r.DryRun || d.Reason == drain.ReasonDryRun) {
		// (A dry-run writes only its releases: what it would add or stamp stays unwritten.)
		return Outcome{Pod: pod, Decision: d, At: now}, errNeedsLive
	}
	out := Outcome{Pod: pod, Decision: d, At: now, DryRun: r.DryRun}
	// One line per decision: the pod, the action, its reason, the gates and durations. The
	// attributes are formatted only for a line that is written (no Logger.With per event).
	dlog := decisionLog{logger: r.Log, pod: pod, d: d, now: now}
	for _, w := range d.Warnings {
		dlog.write(ctx, slog.LevelWarn, "ignoring invalid annotation", slog.String("warning", w))
	}
	if !d.Action.Writes() || r.DryRun && d.Reason != drain.ReasonDryRun {
		r.metrics().Decision(ctx, d.Action.String(), d.MetricReason())
	}
	if d.Action == drain.Wait {
		if !live {
			// An event's copy may bring a pending re-check forward (its read is live), never
			// create one, nor note anything about the drain.
			r.Rechecks.Advance(PodKey{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}, d.RecheckAt)
			dlog.write(ctx, slog.LevelDebug, "decision", slog.Time("recheckAt", d.RecheckAt), slog.Bool("eventCopy", true))
			return out, nil
		}
		r.scheduleRecheck(pod, d.RecheckAt)
		r.noteWaiting(ctx, pod, d)
		dlog.write(ctx, slog.LevelDebug, "decision", slog.Time("recheckAt", d.RecheckAt))
		return out, nil
	}
	if !d.Action.Writes() {
		dlog.write(ctx, slog.LevelDebug, "decision")
		return out, nil
	}
	if r.DryRun && d.Reason != drain.ReasonDryRun {
		out.Applied = true
		dlog.write(ctx, slog.LevelInfo, "decision", slog.Bool("dryRun", true), slog.String("stopped", d.Stopped.String()))
		if d.Action == drain.AddFinalizer {
			out.Advice = r.checkOwner(ctx, pod, d, now) // reads only, in dry-run
		}
		return out, nil
	}
	out.DryRun = false
	patch, err := drain.Patch(pod, d)
	if err != nil {
		return out, err
	}
	patched, err := r.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, patch,
		metav1.PatchOptions{FieldManager: Component})
	switch {
	case apierrors.IsNotFound(err):
		dlog.write(ctx, slog.LevelInfo, "decision", slog.Bool("applied", false), slog.String("result", "pod is gone, nothing to do"))
		out.Decision = gone()
		r.Forget(pod.UID)
		return out, nil
	case err != nil:
		if !isGuardFailure(err) { // (a decision whose guard failed is made again on a fresh read: counted then)
			r.metrics().Decision(ctx, d.Action.String(), d.MetricReason())
		}
		return out, fmt.Errorf("patching pod %s/%s (%s): %w", pod.Namespace, pod.Name, d.Action, err)
	}
	r.metrics().Decision(ctx, d.Action.String(), d.MetricReason())
	out.Applied = true
	if patched != nil {
		r.writes.wrote(pod.UID, patched.ResourceVersion)
	}
	dlog.write(ctx, slog.LevelInfo, "decision", slog.Bool("applied", true), slog.String("stopped", d.Stopped.String()))
	if d.Action == drain.RemoveFinalizer {
		if !d.Started.IsZero() {
			r.metrics().Drain(ctx, d.Reason, string(d.Kind), d.DrainSeconds(now))
		}
		r.recordGap(ctx, pod, d, facts)
	}
	r.afterWrite(ctx, pod, d, now)
	if d.Action == drain.AddFinalizer {
		out.Advice = r.checkOwner(ctx, pod, d, now)
	}
	return out, nil
}

// afterWrite records the Kubernetes Event of a milestone and keeps the re-check timer right.
func (r *Reconciler) afterWrite(ctx context.Context, pod *corev1.Pod, d drain.Decision, now time.Time) {
	var eventType, reason, msg string
	switch {
	case d.Action == drain.StartDrain:
		r.scheduleRecheck(pod, d.RecheckAt)
		eventType, reason = corev1.EventTypeNormal, EventDrainStarted
		msg = fmt.Sprintf("Drain started (%s, %s pod); finalizer %s is removed once these gates open: %s; by %s at the latest",
			d.Deletion(), d.Kind, drain.Finalizer, drain.GateNames(d.Gates), d.Deadline.Format(time.RFC3339))
		if len(d.Warnings) > 0 {
			msg += " (" + strings.Join(d.Warnings, "; ") + ")"
		}
	case d.Action == drain.RemoveFinalizer:
		// Released: no re-check, no sibling wait. The last write stays remembered, so the
		// older events still on their way cost nothing (the delete event forgets it).
		r.Rechecks.Cancel(pod.UID)
		r.siblings.forget(pod.UID)
		switch d.Reason {
		case drain.ReasonDrained:
			eventType, reason = corev1.EventTypeNormal, EventDrainCompleted
			msg = fmt.Sprintf("Drained after %.1fs (%s); finalizer %s removed", d.DrainSeconds(now), d.Stopped, drain.Finalizer)
		case drain.ReasonReplaced:
			eventType, reason = corev1.EventTypeNormal, EventDrainCompleted
			msg = fmt.Sprintf("Replacement Ready after %.1fs (the capacity gap of this eviction; containers: %s); finalizer %s removed", d.DrainSeconds(now), d.Stopped, drain.Finalizer)
		case drain.ReasonNotEvicted:
			eventType, reason = corev1.EventTypeNormal, EventFinalizerRemoved
			msg = fmt.Sprintf("Deleted, not evicted (holdOn: evictions): a rollout, scale-down or delete is not held; finalizer %s removed", drain.Finalizer)
		case drain.ReasonTimeout:
			eventType, reason = corev1.EventTypeWarning, EventDrainTimedOut
			msg = fmt.Sprintf("Drain timed out after %.1fs (still closed: %s); finalizer %s removed", d.DrainSeconds(now), cmp.Or(drain.ClosedGates(d.Gates), "none"), drain.Finalizer)
		case drain.ReasonUninstalled:
			eventType, reason = corev1.EventTypeNormal, EventFinalizerRemoved
			msg = fmt.Sprintf("vpa-graceful-drain is being uninstalled; finalizer %s removed", drain.Finalizer)
		case drain.ReasonDryRun:
			eventType, reason = corev1.EventTypeNormal, EventFinalizerRemoved
			msg = fmt.Sprintf("vpa-graceful-drain runs in dry-run mode, which never holds a pod; finalizer %s removed", drain.Finalizer)
		default:
			eventType, reason = corev1.EventTypeNormal, EventFinalizerRemoved
			msg = fmt.Sprintf("Pod is no longer managed; finalizer %s removed", drain.Finalizer)
		}
	default:
		return
	}
	r.event(ctx, pod, eventType, reason, msg)
}

// get reads a pod; a pod that does not exist is (nil, nil).
func (r *Reconciler) get(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	pod, err := r.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: %w", ns, name, err)
	}
	return pod, nil
}

// isGuardFailure: the patch's test ops failed, the pod changed under us (409), or the API
// server refused the write for the pod's live state (422, e.g. a finalizer added to a pod
// that started deleting). All mean the decision was made on a stale pod.
func isGuardFailure(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	code := status.Status().Code
	return code == http.StatusConflict || code == http.StatusUnprocessableEntity
}

// decisionLog writes the lines about one decision: the pod, the action, its reason and, with
// gates, the owner, the gates' states, the drain's seconds and its deadline, then the line's
// own attributes. It formats them only for a line its level lets through.
type decisionLog struct {
	logger *slog.Logger
	pod    *corev1.Pod
	d      drain.Decision
	now    time.Time
}

func (l decisionLog) write(ctx context.Context, level slog.Level, msg string, extra ...slog.Attr) {
	if !l.logger.Enabled(ctx, level) {
		return
	}
	d := l.d
	attrs := make([]slog.Attr, 0, 8+len(extra))
	attrs = append(attrs, podAttrs(l.pod), slog.String("action", d.Action.String()), slog.String("reason", d.Reason))
	if len(d.Gates) > 0 {
		attrs = append(attrs, slog.String("ownerKind", string(d.Kind)), slog.String("owner", d.Owner), slog.String("gates", drain.GateStates(d.Gates)),
			slog.Float64("drainSeconds", d.DrainSeconds(l.now)), slog.Time("deadline", d.Deadline))
	}
	l.logger.LogAttrs(ctx, level, msg, append(attrs, extra...)...)
}

// podAttrs names the pod in a log line: namespace, pod, uid and the resourceVersion decided on.
func podAttrs(pod *corev1.Pod) slog.Attr {
	return slog.Group("", slog.String("namespace", pod.Namespace), slog.String("pod", pod.Name),
		slog.String("uid", string(pod.UID)), slog.String("resourceVersion", pod.ResourceVersion))
}
