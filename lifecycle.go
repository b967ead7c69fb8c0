package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

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
	"function/names"
	"function/telemetry"
)

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
		tel, err := telemetry.New(ctx, telemetry.Options{Env: env, EventTypes: eventing.HandledTypes()})
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
	cfg.UserAgent = names.Component
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
	sc, err := f.loadConfig(ctx, env)
	if err != nil {
		f.refuse(err)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := f.wire(sc.cfg)
	stopped := make(chan struct{})
	if sc.follow && !f.followConfigMap(ctx, sc, p, cancel, stopped) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !sc.follow {
		f.stopLocked(context.Background())
	} else if ctx.Err() != nil {
		cancel()
		return nil // stopped while waiting
	}
	go func() {
		defer close(stopped)
		p.run(ctx)
	}()
	f.parts, f.cancel, f.stopped, f.cfgErr = p, cancel, stopped, nil
	if !sc.follow {
		logConfig(f.log, "configuration loaded", sc.cfg, f.dryRun || f.client == nil)
	}
	return nil
}

// refuse keeps the function from becoming Ready on an invalid configuration, and logs each
// invalid key with its value and reason.
func (f *Function) refuse(err error) {
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
}

// followConfigMap shares the sweeps through the Lease beside the ConfigMap and follows the
// ConfigMap live: nothing is decided before its first configuration is in (the function is
// not Ready meanwhile). It returns false when Start must stop here (the follower could not
// start; it says why).
func (f *Function) followConfigMap(ctx context.Context, sc startConfig, p *parts, cancel context.CancelFunc, stopped chan struct{}) bool {
	host, _ := os.Hostname()
	p.sweeps.Lease = &handlers.SweepLease{Client: f.client, Namespace: sc.cmNamespace, Name: names.SweepLeaseName,
		Identity: fmt.Sprintf("%s/%d", host, os.Getpid())}
	// The surge-rollout budget is shared by every replica in a Lease beside the sweep's.
	p.surge.Budget.UseLease(f.client, sc.cmNamespace, names.SurgeLeaseName)
	f.mu.Lock()
	f.stopLocked(context.Background())
	f.parts, f.cancel, f.stopped = nil, cancel, stopped
	f.cfgErr = fmt.Errorf("starting: waiting for ConfigMap %s/%s (the function needs get, list and watch on it: config/rbac.yaml)", sc.cmNamespace, sc.cmName)
	f.mu.Unlock()
	follower := &live.Live{Client: f.client, Namespace: sc.cmNamespace, Name: sc.cmName, Base: sc.values, Log: f.log,
		Apply: func(c config.Config) {
			if f.noSweeps {
				c.SweepInterval = 0
			}
			p.setConfig(c)
			logConfig(f.log, "configuration in force", c, f.dryRun)
		}}
	switch err := follower.Start(ctx, f.configWait); {
	case errors.Is(err, live.ErrNotSynced):
		// Never hold pods hostage to an unreadable ConfigMap: run on the environment's
		// configuration (drains still end) until the watch can read it.
		f.log.Error("cannot read the ConfigMap yet: running with the environment's configuration until it can (check config/rbac.yaml)",
			slog.String("configMap", sc.cmNamespace+"/"+sc.cmName), slog.String("error", err.Error()))
		logConfig(f.log, "configuration in force", sc.cfg, f.dryRun)
	case err != nil:
		cancel()
		close(stopped)
		f.log.Warn("not following the ConfigMap", slog.String("error", err.Error()))
		return false
	}
	return true
}

// logConfig logs the configuration in force: every configuration key's effective value
// (config.Config.LogValues), whether the function is uninstalling and whether it runs dry.
func logConfig(log *slog.Logger, msg string, cfg config.Config, dryRun bool) {
	// Every key of config's table under its name, then what no key sets.
	attrs := append(cfg.LogValues(), slog.Bool("uninstalling", cfg.Uninstalling), slog.Bool("dryRun", dryRun))
	log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
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
	_, err := f.started()
	return err == nil, err
}

// started is the controllers Start wired, or why there are none (yet).
func (f *Function) started() (*parts, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	switch {
	case f.cfgErr != nil:
		return nil, f.cfgErr
	case f.parts == nil:
		return nil, errors.New("starting: configuration not loaded yet")
	}
	return f.parts, nil
}
