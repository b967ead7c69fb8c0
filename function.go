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
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"function/config"
	"function/config/live"
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
	rec          *handlers.Reconciler // set by a successful Start
	cfgErr       error                // set by a failed Start
	cancel       context.CancelFunc   // ends rec.Run
	stopped      chan struct{}        // closed when rec.Run has returned
}

// MetricsPath serves the metrics in the Prometheus text format (GET), on the function's own
// port: a Knative Service exposes one.
const MetricsPath = "/metrics"

// SweepLeaseName is the Lease in the ConfigMap's namespace through which the replicas share
// one sweep schedule.
const SweepLeaseName = "vpa-graceful-drain-sweep"

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

// WithClient uses client instead of discovering the cluster (tests, embedding).
func WithClient(client kubernetes.Interface) Option {
	return func(f *Function) { f.client = client }
}

// WithDynamic reads VerticalPodAutoscalers through d for advice (discovered with the cluster
// otherwise; without it, advice reads none).
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

// setup applies the process configuration (DRY_RUN, LOG_LEVEL, OTEL_*) and finds the cluster,
// once: the first Start does it.
func (f *Function) setup(ctx context.Context, env map[string]string) error {
	if f.setUp {
		return nil
	}
	f.setUp = true
	proc, err := config.LoadProcess(env)
	if err != nil {
		return err
	}
	if f.level != nil {
		f.level.Set(proc.LogLevel)
	}
	telemetry.SetRuntimeLevel(proc.LogLevel) // one level for the runtime's lines too
	f.dryRun = f.dryRun || proc.DryRun
	if f.telemetry() == nil {
		tel, err := telemetry.New(ctx, telemetry.Options{Env: env})
		if err != nil {
			return fmt.Errorf("setting up telemetry: %w", err)
		}
		f.mu.Lock()
		f.tel = tel
		f.mu.Unlock()
	}
	where := "client given"
	if f.client == nil {
		f.serverClock = &handlers.ServerClock{Local: clock.RealClock{}, Log: f.log}
		if f.client, f.dynamic, where, err = discoverCluster(f.telemetry(), f.serverClock, proc); err != nil {
			return err
		}
	}
	senders, err := f.senderVerifier(proc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.senders, f.sendersKnown = senders, true
	f.mu.Unlock()
	switch {
	case f.client == nil:
		f.dryRun = true
		f.log.Info("vpa-graceful-drain starting in dry-run mode: no cluster configured (no in-cluster config, KUBECONFIG or ~/.kube/config); decisions are replied and logged, nothing is written",
			slog.Bool("dryRun", true))
	case f.dryRun:
		f.log.Info("vpa-graceful-drain starting in dry-run mode (DRY_RUN=true): no finalizer is added and no drain stamped; a deleting pod that holds the finalizer is released at once, so a dry-run never holds a pod",
			slog.Bool("dryRun", true), slog.String("cluster", where))
	default:
		f.log.Info("vpa-graceful-drain starting", slog.Bool("dryRun", false), slog.String("cluster", where))
	}
	return nil
}

// senderVerifier returns the Verifier of SENDER_AUDIENCE and SENDER_IDENTITIES (nil when
// SENDER_AUDIENCE is unset). Without a cluster there is no API server to review tokens: an
// error, so the function does not become Ready rather than serve unauthenticated.
func (f *Function) senderVerifier(proc config.Process) (*auth.Verifier, error) {
	if proc.SenderAudience == "" {
		return nil, nil
	}
	if f.client == nil {
		return nil, &config.KeyError{Key: config.KeySenderAudience, Value: proc.SenderAudience,
			Reason: "sender authentication reviews tokens with the API server, and no cluster is configured (dry-run without one): unset " +
				config.KeySenderAudience + " or give the function a cluster"}
	}
	v, err := auth.New(f.client, auth.Options{Audience: proc.SenderAudience, Identities: proc.SenderIdentities})
	if err != nil {
		return nil, fmt.Errorf("setting up sender authentication: %w", err)
	}
	if len(proc.SenderIdentities) == 0 {
		f.log.Warn("sender authentication on, for any identity: any workload that can get a token for the audience (any pod, with a projected ServiceAccount token) may send events; set "+
			config.KeySenderIdentities+" to the senders' ServiceAccounts", slog.String("audience", proc.SenderAudience))
	} else {
		f.log.Info("sender authentication on", slog.String("audience", proc.SenderAudience), slog.Any("identities", proc.SenderIdentities))
	}
	return v, nil
}

// authenticate answers a request whose sender is not authenticated (see auth.Verifier.Verify)
// and returns false; true lets the request be read. Before setup has read SENDER_AUDIENCE (or
// when setup failed) it answers 503: whether a token is needed is not known yet. It reads
// the headers only.
func (f *Function) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	f.mu.RLock()
	v, known := f.senders, f.sendersKnown
	f.mu.RUnlock()
	switch {
	case !known:
		eventing.WriteError(w, http.StatusServiceUnavailable, "not ready: starting")
		return false
	case v == nil:
		return true
	}
	_, err := v.Verify(ctx, r.Header)
	if err == nil {
		return true
	}
	var refused *auth.Error
	if !errors.As(err, &refused) {
		refused = &auth.Error{Status: http.StatusServiceUnavailable, Message: err.Error(), RetryAfter: 1}
	}
	level := slog.LevelWarn
	if refused.Status >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	if f.log.Enabled(ctx, level) {
		f.log.LogAttrs(ctx, level, "refused sender", slog.Int("status", refused.Status), slog.String("reason", refused.Message),
			slog.String("remote", r.RemoteAddr))
	}
	refused.Write(w, eventing.WriteError)
	return false
}

// telemetry is the metrics and traces (nil before the first Start).
func (f *Function) telemetry() *telemetry.Telemetry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.tel
}

// discoverCluster returns a client and a dynamic client for the in-cluster config, else for
// the kubeconfig files (KUBECONFIG, ~/.kube/config), with the process's client-side rate
// limit; (nil, nil, "", nil) when there is none.
func discoverCluster(tel *telemetry.Telemetry, server *handlers.ServerClock, proc config.Process) (kubernetes.Interface, dynamic.Interface, string, error) {
	cfg, err := rest.InClusterConfig()
	where := "in-cluster"
	if errors.Is(err, rest.ErrNotInCluster) {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		found := ""
		for _, p := range rules.GetLoadingPrecedence() {
			if _, statErr := os.Stat(p); statErr == nil {
				found = p
				break
			}
		}
		if found == "" {
			return nil, nil, "", nil
		}
		where = "kubeconfig " + found
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("loading cluster config (%s): %w", where, err)
	}
	cfg.UserAgent = handlers.Component
	cfg.QPS, cfg.Burst = proc.APIQPS, proc.APIBurst // see config.KeyAPIQPS
	cfg.Wrap(server.WrapTransport)                  // the API server's clock, from its answers' Date
	cfg.Wrap(tel.WrapTransport)                     // API requests counted, each a span of its event's trace
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, "", fmt.Errorf("creating cluster client (%s): %w", where, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, "", fmt.Errorf("creating dynamic cluster client (%s): %w", where, err)
	}
	return client, dyn, where, nil
}

// Start loads and validates the configuration (func-go passes the environment, plus ./cfg).
// An invalid value is logged with its key and reason and keeps the function from becoming
// Ready; Start still returns nil so the process stays up to say why.
func (f *Function) Start(ctx context.Context, env map[string]string) error {
	var cfg config.Config
	var cmNamespace, cmName string
	follow := false
	var values map[string]string
	err := f.setup(ctx, env)
	if err == nil {
		values, err = config.Values(env)
	}
	if err == nil {
		cfg, err = config.Parse(values)
	}
	if err == nil && f.client != nil {
		cmNamespace, cmName, follow, err = config.ConfigMapRef(env)
	}
	if err != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.cfgErr = fmt.Errorf("invalid configuration: %w", err)
		var keyErr *config.KeyError
		for _, e := range unwrapAll(err) {
			if errors.As(e, &keyErr) {
				f.log.Error("invalid configuration: the function will not become ready",
					slog.String("key", keyErr.Key), slog.String("value", keyErr.Value), slog.String("reason", keyErr.Reason))
			} else {
				f.log.Error("invalid configuration: the function will not become ready", slog.String("error", e.Error()))
			}
		}
		return nil
	}
	if f.noSweeps {
		cfg.SweepInterval = 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	rec, stopped := handlers.NewReconciler(f.client, cfg, f.dryRun, f.log), make(chan struct{})
	rec.Dynamic = f.dynamic
	if f.serverClock != nil {
		rec.UseServerClock(f.serverClock)
	}
	var events *handlers.AsyncEvents
	if rec.Events != nil {
		// Events are written behind the decisions, never in an event's request.
		events = handlers.NewAsyncEvents(rec.Events, eventQueue, f.log)
		rec.Events = events
	}
	if tel := f.telemetry(); tel != nil {
		rec.Metrics = tel
		if err := tel.SetGauges(rec.InProgress, rec.Overdue); err != nil {
			f.log.Warn("the drain gauges are not reported", slog.String("error", err.Error()))
		}
		if f.serverClock != nil {
			if err := tel.SetClockOffset(f.serverClock.Offset); err != nil {
				f.log.Warn("the API server clock offset is not reported", slog.String("error", err.Error()))
			}
		}
	}
	if follow {
		host, _ := os.Hostname()
		rec.Lease = &handlers.SweepLease{Client: f.client, Namespace: cmNamespace, Name: SweepLeaseName,
			Identity: fmt.Sprintf("%s/%d", host, os.Getpid())}
		// Follow the ConfigMap live; nothing is decided before its first configuration is in.
		f.mu.Lock()
		f.stopLocked(context.Background())
		f.rec, f.cancel, f.stopped = nil, cancel, stopped
		f.cfgErr = fmt.Errorf("starting: waiting for ConfigMap %s/%s (the function needs get, list and watch on it: config/rbac.yaml)", cmNamespace, cmName)
		f.mu.Unlock()
		follower := &live.Live{Client: f.client, Namespace: cmNamespace, Name: cmName, Base: values, Log: f.log,
			Apply: func(c config.Config) {
				if f.noSweeps {
					c.SweepInterval = 0
				}
				rec.SetConfig(c)
				logConfig(f.log, "configuration in force", c, f.dryRun)
			}}
		switch err := follower.Start(ctx, f.configWait); {
		case errors.Is(err, live.ErrNotSynced):
			// Never hold pods hostage to an unreadable ConfigMap: run on the environment's
			// configuration (drains still end) until the watch can read it.
			f.log.Error("cannot read the ConfigMap yet: running with the environment's configuration until it can (check config/rbac.yaml)",
				slog.String("configMap", cmNamespace+"/"+cmName), slog.String("error", err.Error()))
			logConfig(f.log, "configuration in force", cfg, f.dryRun)
		case err != nil:
			cancel()
			close(stopped)
			f.log.Warn("not following the ConfigMap", slog.String("error", err.Error()))
			return nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !follow {
		f.stopLocked(context.Background())
	} else if ctx.Err() != nil {
		cancel()
		return nil // stopped while waiting
	}
	go func() {
		defer close(stopped)
		var wg sync.WaitGroup
		if events != nil {
			wg.Go(func() { events.Run(ctx) }) // flushes the queued Events once ctx ends
		}
		rec.Run(ctx, recheckWorkers)
		wg.Wait()
	}()
	f.rec, f.cancel, f.stopped, f.cfgErr = rec, cancel, stopped, nil
	if !follow {
		logConfig(f.log, "configuration loaded", cfg, f.dryRun || f.client == nil)
	}
	return nil
}

func logConfig(log *slog.Logger, msg string, cfg config.Config, dryRun bool) {
	log.Info(msg,
		slog.Int("gracePeriodSeconds", int(cfg.GracePeriod.Seconds())),
		slog.Int("drainTimeoutSeconds", int(cfg.DrainTimeout.Seconds())),
		slog.Any("namespaceSelector", cfg.Namespaces),
		slog.Bool("detectVpaAnnotations", cfg.DetectVpaAnnotations),
		slog.Int("sweepIntervalSeconds", int(cfg.SweepInterval.Seconds())),
		slog.String("holdOn", string(cfg.HoldOn)),
		slog.Any("workloadDefaults", cfg.Workloads),
		slog.Bool("ensurePodDisruptionBudget", cfg.EnsurePDB),
		slog.Bool("uninstalling", cfg.Uninstalling),
		slog.Bool("dryRun", dryRun))
}

// Stop ends the re-checks and sweeps and waits for them (at most until ctx ends). Drains in
// progress are not lost: their state is in the pods' annotations and the next event, another
// replica or the next sweep finishes them.
func (f *Function) Stop(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.stopLocked(ctx)
	if f.tel != nil { // f.mu is held
		// Flush what OTLP has not sent yet; the metrics stay readable until the process ends.
		err = errors.Join(err, f.tel.Flush(ctx))
	}
	if f.logOut != nil {
		f.logOut.Flush() // every line logged so far is on stderr
	}
	return err
}

func (f *Function) stopLocked(ctx context.Context) error {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	select {
	case <-f.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the re-checks: %w", ctx.Err())
	}
}

// Ready is true once Start loaded a valid configuration; the error says why not.
func (f *Function) Ready(context.Context) (bool, error) {
	_, err := f.reconciler()
	return err == nil, err
}

func (f *Function) reconciler() (*handlers.Reconciler, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	switch {
	case f.cfgErr != nil:
		return nil, f.cfgErr
	case f.rec == nil:
		return nil, errors.New("starting: configuration not loaded yet")
	}
	return f.rec, nil
}

// Handle serves one HTTP request: kn func's http scaffolding (func-go's http runtime) calls it
// for every request but the health probes. GET /metrics is served as is; any other request's
// sender is authenticated first when SENDER_AUDIENCE is set (see authenticate). It reads one CloudEvent from the request (binary or
// structured mode), handles it with HandleEvent and writes the answer, all within this call:
// no event ever waits for another request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	tel := f.telemetry() // nil before Start: nothing is recorded, the event is answered 503
	if r.Method == http.MethodGet && r.URL.Path == MetricsPath {
		tel.MetricsHandler().ServeHTTP(w, r)
		return
	}
	defer f.watch.begin()()
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("handling a request panicked; answering 500", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			eventing.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", p))
		}
	}()
	ctx, cancel := context.WithTimeout(r.Context(), f.eventTimeout)
	defer cancel()
	// The sender first (SENDER_AUDIENCE), from the headers alone: a refused request's body is
	// never read. Alive's in-process probe event cannot be sent from outside.
	if r.Context().Value(probeKey{}) == nil && !f.authenticate(ctx, w, r) {
		return
	}
	e, err := eventing.ReadRequest(ctx, r)
	if err != nil {
		status := eventing.Status(err)
		f.log.Warn("rejected request", slog.Int("status", status), slog.String("reason", err.Error()),
			slog.String("method", r.Method), slog.String("contentType", r.Header.Get("Content-Type")))
		eventing.WriteError(w, status, err.Error())
		return
	}
	start := time.Now()
	ctx, span := tel.StartEvent(ctx, *e)
	defer span.End()
	reply, err := f.HandleEvent(ctx, *e)
	if err != nil {
		status, msg := http.StatusInternalServerError, err.Error()
		var res *cehttp.Result
		if protocol.ResultAs(err, &res) {
			status, msg = res.StatusCode, fmt.Sprintf(res.Format, res.Args...)
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, msg)
		}
		tel.Event(ctx, e.Type(), status, time.Since(start))
		eventing.WriteError(w, status, msg) // also a 202 with its one-line message
		return
	}
	tel.Event(ctx, e.Type(), http.StatusOK, time.Since(start))
	if reply != nil {
		telemetry.InjectEvent(ctx, reply) // the reply continues the event's trace
	}
	if err := eventing.WriteReply(ctx, w, reply); err != nil {
		f.log.Warn("could not write the reply", slog.String("ceId", e.ID()), slog.String("error", err.Error()))
	}
}

// HandleEvent decides on one ApiServerSource Pod event and applies the decision. It answers
// 400/413 with a message for an event it rejects (and makes no API call), 503 while not
// ready or when the cluster is unreachable, overloaded or did not answer in time, 500 when
// the cluster failed otherwise (the sender retries both), 202 for a sweep request, and
// otherwise 200 with a reply event for the action taken, or no reply when nothing was done.
// Errors are *cehttp.Result values carrying the HTTP status.
func (f *Function) HandleEvent(ctx context.Context, e event.Event) (*event.Event, error) {
	rec, err := f.reconciler()
	if err != nil {
		return nil, cehttp.NewResult(http.StatusServiceUnavailable, "not ready: %v", err)
	}
	// log writes a line about the event; its attributes are formatted only for a line that is
	// written (most events write none here).
	log := func(level slog.Level, msg string, attrs ...slog.Attr) {
		if f.log.Enabled(ctx, level) {
			f.log.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.String("ceId", e.ID()), slog.String("ceType", e.Type()),
				slog.String("ceSubject", e.Subject())}, attrs...)...)
		}
	}
	if eventing.IsSweep(e) {
		if f.client == nil {
			return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "a sweep needs a cluster (dry-run without one)")
		}
		if !rec.AskSweep() {
			log(slog.LevelDebug, "sweep asked for again within the minimum gap: not repeated", slog.String("ceSource", e.Source()))
			return nil, cehttp.NewResult(http.StatusAccepted, "sweep not repeated: one was asked for less than %s ago", handlers.MinSweepGap)
		}
		log(slog.LevelInfo, "sweep requested by an event", slog.String("ceSource", e.Source()))
		return nil, cehttp.NewResult(http.StatusAccepted, "sweep requested")
	}
	in, err := f.decoder.Decode(e)
	if err != nil {
		var bad *eventing.InputError
		if errors.As(err, &bad) {
			log(slog.LevelWarn, "rejected event", slog.Int("status", bad.Status), slog.String("reason", bad.Message))
			return nil, cehttp.NewResult(bad.Status, "%s", bad.Message)
		}
		return nil, cehttp.NewResult(http.StatusBadRequest, "%v", err)
	}
	var out handlers.Outcome
	switch {
	case in.Op == eventing.Delete:
		// Nothing can be written, and nothing is dropped on the event's word: a pending
		// re-check reads the pod and forgets it once it is really gone.
		log(slog.LevelDebug, "pod deleted", slog.String("pod", in.Namespace+"/"+in.Name))
		return nil, nil
	case in.Mode == eventing.Reference:
		out, err = rec.ReconcileRef(ctx, in.Namespace, in.Name)
	default:
		out, err = rec.Reconcile(ctx, in.Pod)
	}
	switch {
	case errors.Is(err, handlers.ErrNoCluster):
		return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "reference-mode event for %s/%s: %v", in.Namespace, in.Name, err)
	case errors.Is(err, handlers.ErrConcurrentWriter):
		// Not the sender's problem: the re-check already scheduled finishes the work.
		log(slog.LevelInfo, "the pod kept changing while applying the decision; a re-check follows", slog.String("pod", in.Namespace+"/"+in.Name), slog.String("error", err.Error()))
		return nil, nil
	case err != nil && (ctx.Err() != nil || clusterUnavailable(err)):
		log(slog.LevelWarn, "the cluster is unavailable; the sender will retry", slog.String("pod", in.Namespace+"/"+in.Name), slog.String("error", err.Error()))
		return nil, cehttp.NewResult(http.StatusServiceUnavailable, "the cluster is unavailable or did not answer in time: %v", err)
	case err != nil:
		log(slog.LevelError, "handling event failed", slog.String("pod", in.Namespace+"/"+in.Name), slog.String("error", err.Error()))
		return nil, cehttp.NewResult(http.StatusInternalServerError, "%v", err)
	}
	reply, err := eventing.Reply(out)
	if err != nil {
		return nil, cehttp.NewResult(http.StatusInternalServerError, "%v", err)
	}
	return reply, nil
}

// clusterUnavailable: the API server could not be reached, was overloaded or timed out, as
// opposed to refusing the request.
func clusterUnavailable(err error) bool {
	return apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) ||
		utilnet.IsProbableEOF(err) || errors.Is(err, context.DeadlineExceeded)
}

// unwrapAll flattens an errors.Join tree one level.
func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
