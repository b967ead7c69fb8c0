// Package function is vpa-graceful-drain, a Knative Function that makes Vertical Pod
// Autoscaler evictions graceful. It receives Pod events from a Knative ApiServerSource, adds
// the finalizer vpagracefuldrain.dev/drain to managed pods, stamps a drain when such a pod is
// evicted, and removes the finalizer once the pod has drained or the drain timed out.
//
// kn func wraps it with knative.dev/func-go's http runtime: `http.Start(function.New())`
// (func.yaml `invoke: http`). Handle reads the CloudEvent from each request itself.
package function

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"function/config"
	"function/eventing"
	"function/eventing/auth"
	"function/handlers"
	"function/telemetry"
)

// Function is the instance func-go serves. Create it with New.
type Function struct {
	log    *slog.Logger
	client kubernetes.Interface // nil: no cluster, dry-run
	// dynamic reads VerticalPodAutoscalers for advice (nil: not read).
	dynamic dynamic.Interface
	// serverClock is the API server's clock, learned from the discovered client's answers
	// (nil with a client given: the local clock).
	serverClock *handlers.ServerClock
	dryRun      bool
	// noSweeps: see WithoutSweeps.
	noSweeps bool
	// level is the level of the logger New made (nil with WithLogger); setUp: see setup.
	level *slog.LevelVar
	setUp bool
	// logOut is the stream of the logger New made (nil with WithLogger); Stop flushes it.
	logOut *telemetry.LineWriter

	// watch tracks the requests in Handle for Alive; the timeouts bound an event and a probe.
	watch        *inflight
	eventTimeout time.Duration
	probeTimeout time.Duration
	// configWait bounds the wait for the followed ConfigMap at start.
	configWait time.Duration
	// tel holds the metrics and traces (see package telemetry).
	tel *telemetry.Telemetry
	// decoder decodes the events; its clock bounds the times an event's pod may carry.
	decoder eventing.Decoder

	mu sync.RWMutex
	// senders authenticates the senders of events (nil: SENDER_AUDIENCE unset, no
	// authentication); sendersKnown is set once setup has read SENDER_AUDIENCE: until then no
	// request's body is read (see authenticate).
	senders      *auth.Verifier
	sendersKnown bool
	parts        *parts             // set by a successful Start
	cfgErr       error              // set by a failed Start
	cancel       context.CancelFunc // ends parts.run
	stopped      chan struct{}      // closed when parts.run has returned
}

// MetricsPath serves the metrics in the Prometheus text format (GET), on the function's own
// port: a Knative Service exposes one.
const MetricsPath = "/metrics"

// defaultConfigWait is how long Start waits to read the followed ConfigMap before it runs on
// the environment's configuration (pods must not wait on an unreadable ConfigMap).
const defaultConfigWait = 30 * time.Second

// recheckWorkers is how many re-checks run at once.
const recheckWorkers = 4

// eventQueue is how many Kubernetes Events may wait to be written (handlers.AsyncEvents);
// beyond it an Event is dropped and logged. 1,000 pods evicted at once queue about 2,000.
const eventQueue = 8192

// Option adjusts New; the defaults suit kn func.
type Option func(*Function)

// WithClient uses client instead of discovering the cluster (tests, embedding); pass
// WithDynamic too, for pods' owners and VerticalPodAutoscalers are read through it.
func WithClient(client kubernetes.Interface) Option {
	return func(f *Function) { f.client = client }
}

// WithDynamic reads pods' owners (the generic owner reader) and VerticalPodAutoscalers through
// d (discovered with the cluster otherwise; without it, neither is read: the gates that need
// an owner stay closed until the deadline, advice and surge rollouts read no VPA).
func WithDynamic(d dynamic.Interface) Option {
	return func(f *Function) { f.dynamic = d }
}

// WithLogger sets the structured logger (default: JSON to stderr).
func WithLogger(log *slog.Logger) Option {
	return func(f *Function) { f.log = log }
}

// WithoutSweeps runs no sweeps, for tests that count every API call. Never in production:
// sweeps are the last safety net for drains whose events were lost.
func WithoutSweeps() Option {
	return func(f *Function) { f.noSweeps = true }
}

// WithTelemetry uses t for metrics and traces (tests: an in-memory span exporter).
func WithTelemetry(t *telemetry.Telemetry) Option {
	return func(f *Function) { f.tel = t }
}

// WithClock checks the times an event's pod carries against c (default: the real clock): a
// time no Kubernetes object can hold is refused with a 400 (see eventing.Decoder).
func WithClock(c clock.PassiveClock) Option {
	return func(f *Function) { f.decoder.Clock = c }
}

// WithDryRun forces dry-run: decide and reply, never write.
func WithDryRun() Option {
	return func(f *Function) { f.dryRun = true }
}

// New returns the function instance. It does no I/O: Start reads the environment func-go
// hands it, finds the cluster (in-cluster config, else KUBECONFIG or ~/.kube/config; with none
// it runs in dry-run, and its first log line says which) and loads the configuration.
func New(opts ...Option) *Function {
	f := &Function{watch: newInflight(clock.RealClock{}), eventTimeout: defaultEventTimeout, probeTimeout: defaultProbeTimeout,
		configWait: defaultConfigWait, decoder: eventing.Decoder{Clock: clock.RealClock{}}}
	for _, o := range opts {
		o(f)
	}
	if f.log == nil {
		// One format for the function's lines and the func-go runtime's, and one level: info
		// until Start applies LOG_LEVEL to both (the runtime's own default is debug).
		// Lines reach stderr through a LineWriter: no event waits for a write to stderr.
		f.level, f.logOut = new(slog.LevelVar), telemetry.NewLineWriter(os.Stderr)
		f.log = telemetry.NewLogger(f.logOut, f.level)
		telemetry.SetRuntimeLevel(slog.LevelInfo)
	}
	return f
}

// parts are the function's controllers, each a type of package handlers on the same Deps:
// the drain reconciler, the sweeps, the surge controller, and the queue the Kubernetes Events
// are written from. Handle reaches them through the narrow interfaces of handle.go.
type parts struct {
	drains *handlers.Reconciler
	sweeps *handlers.Sweeper
	surge  *handlers.SurgeController
	events *handlers.AsyncEvents // nil without a recorder
}

// wire builds the controllers for cfg from the Function's parts: the cluster clients, the API
// server's clock, Kubernetes Events written behind the decisions (a queue) and the telemetry's
// metrics and gauges.
func (f *Function) wire(cfg config.Config) *parts {
	p := &parts{}
	deps := handlers.NewDeps(f.client, f.dryRun, f.log)
	deps.Dynamic = f.dynamic
	if f.client != nil && f.dynamic == nil {
		f.log.Warn("no dynamic client (WithClient without WithDynamic): pods' owners and VerticalPodAutoscalers are not read")
	}
	if f.serverClock != nil {
		deps = deps.UseServerClock(f.serverClock)
	}
	if deps.Events != nil {
		// Events are written behind the decisions, never in an event's request.
		p.events = handlers.NewAsyncEvents(deps.Events, eventQueue, f.log)
		deps.Events = p.events
	}
	tel := f.telemetry()
	if tel != nil {
		deps.Metrics = tel
	}
	p.drains = handlers.NewReconciler(deps, cfg) // with its owner checks (advice, pacing)
	p.surge = handlers.NewSurgeController(deps, p.drains.CurrentConfig)
	p.sweeps = &handlers.Sweeper{Deps: deps, Config: p.drains.CurrentConfig, Drains: p.drains, PDBs: p.drains.Checks, Surge: p.surge}
	if tel != nil {
		if err := tel.SetGauges(p.drains.InProgress, p.sweeps.Overdue); err != nil {
			f.log.Warn("the drain gauges are not reported", slog.String("error", err.Error()))
		}
		if f.serverClock != nil {
			if err := tel.SetClockOffset(f.serverClock.Offset); err != nil {
				f.log.Warn("the API server clock offset is not reported", slog.String("error", err.Error()))
			}
		}
	}
	return p
}

// run runs the controllers until ctx ends: the re-checks (recheckWorkers at once), the sweeps,
// the surge controller, and the Events' queue (flushed once ctx ends).
func (p *parts) run(ctx context.Context) {
	var wg sync.WaitGroup
	if p.events != nil {
		wg.Go(func() { p.events.Run(ctx) })
	}
	wg.Go(func() { p.sweeps.Run(ctx) })
	wg.Go(func() { p.surge.Run(ctx) })
	p.drains.Run(ctx, recheckWorkers)
	p.surge.Stop()
	wg.Wait()
}

// setConfig puts cfg in force (a live ConfigMap change) and has every pod converge to it now.
func (p *parts) setConfig(cfg config.Config) {
	p.drains.SetConfig(cfg)
	p.sweeps.ConfigChanged()
}

// startConfig is what Start reads before it wires anything: the configuration, the values it
// was parsed from, and the ConfigMap to follow (when follow).
type startConfig struct {
	cfg                 config.Config
	values              map[string]string
	cmNamespace, cmName string
	follow              bool
}

// loadConfig sets the process up (once) and reads the configuration from env.
func (f *Function) loadConfig(ctx context.Context, env map[string]string) (startConfig, error) {
	var sc startConfig
	if err := f.setup(ctx, env); err != nil {
		return sc, err
	}
	var err error
	if sc.values, err = config.Values(env); err != nil {
		return sc, err
	}
	if sc.cfg, err = config.Parse(sc.values); err != nil {
		return sc, err
	}
	if f.client != nil {
		if sc.cmNamespace, sc.cmName, sc.follow, err = config.ConfigMapRef(env); err != nil {
			return sc, err
		}
	}
	if f.noSweeps {
		sc.cfg.SweepInterval = 0
	}
	return sc, nil
}
