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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/util/workqueue"

	"function/config"
	"function/handlers/drain"
	"function/handlers/surge"
	"function/names"
)

// OutcomeFailed is the metric outcome of a surge write the API server refused for good.
const OutcomeFailed = surge.OutcomeFailed

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

// SurgeController runs surge rollouts (docs/surge-rollouts.md): it decides on opted-in
// Deployments (surge.Decide, pure) on what it reads from the API server, claims a slot of the
// budget (SurgeBudget), writes one guarded patch per decision and follows a rollout it
// evaluated to its end. Its triggers are the sweeps (Sweep), pod and VPA events (ForPod,
// ForVPA) and its own queue: client-go's rate-limited workqueue, with a follow-up every
// SurgeFollow while a rollout is in flight and an exponential backoff per Deployment after an
// error the API server may not repeat. Nothing a rollout needs is in memory: its state is in
// the Deployment, the budget in the Lease.
type SurgeController struct {
	Deps
	// Config is the configuration in force.
	Config func() config.Config
	// Budget is the budget over every Deployment (in memory until UseLease).
	Budget *SurgeBudget

	once     sync.Once
	sem      chan struct{} // one evaluation at a time in this replica
	queue    workqueue.TypedRateLimitingInterface[string]
	queuedMu sync.Mutex
	queued   map[string]bool                      // the keys in the queue, at most maxFollowed
	asks     bounded[string, time.Time, limit10k] // by Deployment, filled only by live reads
	vpaAsks  bounded[string, time.Time, limit10k] // by VPA name an event gave (a forged one too)
	refused  bounded[string, string, limit10k]    // a decision the API server refused for good, by Deployment
	reports  *surgeReports
}

// NewSurgeController is a surge controller on deps and the configuration cfg gives, its
// budget in memory until Budget.UseLease.
func NewSurgeController(deps Deps, cfg func() config.Config) *SurgeController {
	return &SurgeController{Deps: deps, Config: cfg, Budget: &SurgeBudget{}}
}

// SurgeFollow is how soon a rollout in flight is evaluated again by the replica that last
// evaluated it (between its pods' events and the sweeps): its end is noticed within it, and
// its capacity gap sampled. maxFollowed bounds how many keys one replica queues; the retries
// of a failed evaluation back off from surgeRetryBase to surgeRetryMax per Deployment.
const (
	SurgeFollow    = 2 * time.Second
	maxFollowed    = 1000
	surgeRetryBase = 2 * time.Second
	surgeRetryMax  = 5 * time.Minute
	// surgeGuardAttempts bounds the decisions made again at once after a failed guard.
	surgeGuardAttempts = 3
)

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

func (c *SurgeController) init() {
	c.once.Do(func() {
		c.sem = make(chan struct{}, 1)
		c.reports = &surgeReports{deps: &c.Deps}
		clk := c.clock()
		c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](surgeRetryBase, surgeRetryMax),
			workqueue.TypedRateLimitingQueueConfig[string]{Clock: clk})
	})
}

func (c *SurgeController) config() config.Config {
	if c.Config == nil {
		return config.Default()
	}
	return c.Config()
}

// enqueue queues key after delay (rate-limited: with the key's backoff), unless maxFollowed
// other keys are queued already (the sweeps and events evaluate it then).
func (c *SurgeController) enqueue(key string, delay time.Duration, rateLimited bool) {
	c.init()
	c.queuedMu.Lock()
	if !c.queued[key] && len(c.queued) >= maxFollowed {
		c.queuedMu.Unlock()
		return
	}
	if c.queued == nil {
		c.queued = map[string]bool{}
	}
	c.queued[key] = true
	c.queuedMu.Unlock()
	if rateLimited {
		c.queue.AddRateLimited(key)
		return
	}
	c.queue.AddAfter(key, delay)
}

// Queued is how many Deployments are queued to be evaluated again.
func (c *SurgeController) Queued() int {
	c.queuedMu.Lock()
	defer c.queuedMu.Unlock()
	return len(c.queued)
}

// Run evaluates the queued Deployments until ctx ends, then shuts the queue down.
func (c *SurgeController) Run(ctx context.Context) {
	c.init()
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	for c.processNext(ctx) {
	}
}

// Stop shuts the queue down (Run returns).
func (c *SurgeController) Stop() {
	c.init()
	c.queue.ShutDown()
}

// processNext evaluates the next Deployment due (waiting for one); false once the queue is
// shut down.
func (c *SurgeController) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	c.queuedMu.Lock()
	delete(c.queued, key)
	c.queuedMu.Unlock()
	if c.Client == nil {
		return true
	}
	ns, name, _ := strings.Cut(key, "/")
	if _, err := c.evaluate(ctx, ns, name, nil, true); err != nil && ctx.Err() == nil {
		c.Log.WarnContext(ctx, "surge rollout: cannot evaluate the Deployment; trying again later", slog.String("namespace", ns),
			slog.String("deployment", name), slog.String("error", err.Error()))
	}
	return true
}

// lock takes the evaluation lock, waiting until ctx ends (wait false: only if it is free).
func (c *SurgeController) lock(ctx context.Context, wait bool) bool {
	c.init()
	if !wait {
		select {
		case c.sem <- struct{}{}:
			return true
		default:
			return false
		}
	}
	select {
	case c.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *SurgeController) unlock() { <-c.sem }

// due reports whether key may be evaluated at now on an event's word: not when the last
// evaluation of the object it names (read live: only that fills the map, never an event's
// word) set a bound not passed yet.
func (c *SurgeController) due(key string, now time.Time) bool {
	next, ok := c.asks.get(key)
	return !ok || !now.Before(next)
}

// ForVPA evaluates the Deployment a VerticalPodAutoscaler targets, on the word of an event
// about that VPA (its recommendation may have changed): nothing of the event is used but the
// VPA's namespace and name. It reads the namespace's VPAs, and then (an opted-in Deployment)
// what the sweep reads for it; at most once per SurgeEvalRolling per VPA name (the bound is
// set before the read, so concurrent events cost one), so a sender who repeats an event costs
// at most one read a second per name, and never a write the live objects do not decide.
// Unlike a pod's event it waits for an evaluation in progress (until ctx ends: then it fails,
// and the sender retries). nil: nothing applied.
func (c *SurgeController) ForVPA(ctx context.Context, ns, name string) (*SurgeReport, error) {
	if c == nil || c.Client == nil || c.Dynamic == nil {
		return nil, nil
	}
	cfg := c.config()
	if !cfg.Surge.Enabled || cfg.Uninstalling || !cfg.Namespaces.Selects(ns) {
		return nil, nil
	}
	now := c.now()
	key := ns + "/" + name
	if next, ok := c.vpaAsks.get(key); ok && now.Before(next) {
		return nil, nil
	}
	c.vpaAsks.put(key, now.Add(SurgeEvalRolling)) // a map of its own: forged names never flush the Deployments' bounds
	vpas, err := listVPAs(ctx, c.Dynamic, ns)
	if err != nil {
		return nil, err
	}
	for _, v := range vpas {
		if v.Name != name {
			continue
		}
		kind, target, ok := targetOf(v)
		if !ok || kind != config.KindDeployment {
			return nil, nil // not a Deployment's: no surge rollout
		}
		return c.evaluate(ctx, ns, target, vpas, true)
	}
	return nil, nil // gone: nothing to do
}

// ForPod evaluates the Deployment of a pod an event was about (a pod of a rollout in flight
// changes at every step of it, so its capacity gap is sampled where the Ready pods change),
// through Evaluate's bounds. nil: nothing applied (also for a pod of no Deployment, without a
// read).
func (c *SurgeController) ForPod(ctx context.Context, pod *corev1.Pod) (*SurgeReport, error) {
	if c == nil || pod == nil || !c.config().Surge.Enabled {
		return nil, nil
	}
	kind, name, _ := drain.OwnerOf(pod, drain.Facts{})
	if kind != config.KindDeployment {
		return nil, nil
	}
	return c.Evaluate(ctx, pod.Namespace, name)
}

// Evaluate evaluates the Deployment ns/name now, on an event's word, at most once per bound
// (SurgeEvalRolling, SurgeEvalOptedIn, SurgeEvalOther, by what the last read found). While
// another evaluation is in progress it does not wait (a pod's event must not wait for a
// sweep): the sweep evaluates the Deployment, and a rollout's pods change again. nil: nothing
// applied.
func (c *SurgeController) Evaluate(ctx context.Context, ns, name string) (*SurgeReport, error) {
	if c == nil || c.Client == nil {
		return nil, nil
	}
	cfg := c.config()
	if !cfg.Surge.Enabled || !cfg.Namespaces.Selects(ns) {
		return nil, nil
	}
	if !c.due(ns+"/"+name, c.now()) {
		return nil, nil // a map lookup first: the check below is for names not bound yet
	}
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, nil // no Deployment has that name (a pod event's owner name is only length-checked)
	}
	return c.evaluate(ctx, ns, name, nil, false)
}

// evaluate evaluates the Deployment ns/name under the lock: waiting for it (wait), or not at
// all while another evaluation holds it. The configuration and the clock are read once the
// lock is held (a wait may last a whole sweep: what was read before it may be stale).
func (c *SurgeController) evaluate(ctx context.Context, ns, name string, vpas []*vpa_types.VerticalPodAutoscaler, wait bool) (*SurgeReport, error) {
	if !c.lock(ctx, wait) {
		if wait {
			return nil, fmt.Errorf("waiting for the surge-rollout evaluation in progress: %w", ctx.Err())
		}
		return nil, nil
	}
	defer c.unlock()
	return c.evaluateLocked(ctx, c.config(), ns, name, nil, vpas, c.now())
}

// bound sets how soon an event may have the Deployment evaluated again, by what was read.
func (c *SurgeController) bound(d *appsv1.Deployment, now time.Time) {
	key := d.Namespace + "/" + d.Name
	st, _ := surge.ReadState(d)
	switch {
	case st.Phase == surge.PhaseRolling:
		c.asks.put(key, now.Add(SurgeEvalRolling))
	case d.Annotations[names.AnnotationSurgeRollout] == "true":
		c.asks.put(key, now.Add(SurgeEvalOptedIn))
	default:
		c.asks.put(key, now.Add(SurgeEvalOther))
	}
}

// errSurgeGuard: the Deployment changed between the read and the write (the Deployment
// controller writes its status at every step of a rollout); the decision is made again.
var errSurgeGuard = errors.New("the Deployment changed since it was read (its guard failed)")

// errSurgeRefused wraps a write the API server refuses for good (not because the Deployment
// changed): a 403 (the admission policy, RBAC), a 400 or 413, or a 422 while the Deployment
// is as it was read (an object over its size limit).
var errSurgeRefused = errors.New("the API server refuses the write")
