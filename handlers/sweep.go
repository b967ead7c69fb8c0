package handlers

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	"function/config"
)

// Sweeper sweeps every pod (Sweep): at once when Run starts, then every sweepIntervalSeconds,
// on a configuration change (ConfigChanged) and when an event asks (AskedByEvent, at most
// every MinSweepGap); with a Lease, the replicas share one schedule. Each sweep reconciles
// every pod live (Drains), prunes pacing's PodDisruptionBudgets (PDBs) and sweeps the surge
// rollouts (Surge). Sweeps are the last safety net: they finish a drain whose events were lost.
type Sweeper struct {
	Deps
	// Config is the configuration in force (its sweepIntervalSeconds).
	Config func() config.Config
	// Lease, when set, shares one sweep schedule between replicas (see SweepLease).
	Lease *SweepLease
	// Drains reconciles each pod listed.
	Drains interface {
		ReconcileLive(ctx context.Context, pod *corev1.Pod) (Outcome, error)
	}
	// PDBs, when set, prunes pacing's budgets after each sweep.
	PDBs interface{ CleanupPDBs(ctx context.Context) }
	// Surge, when set, sweeps the surge rollouts after each sweep.
	Surge interface {
		Sweep(ctx context.Context) (SurgeResult, error)
	}

	state sweepState
}

// sweepState is what the sweeps share between the events that ask for one and the loop that
// runs them.
type sweepState struct {
	overdue atomic.Int64  // pods the last sweep found held past their deadline
	running atomic.Bool   // Run has started (its first sweep is on the way)
	now     chan struct{} // asks Run's sweeps for one now (made once)
	once    sync.Once
	// force: the pending sweep is a configuration change's, which claims the Lease whatever
	// it says; lastAsked: when an event last asked for one (UnixNano).
	force     atomic.Bool
	lastAsked atomic.Int64
}

// ConfigChanged asks Run for a sweep now, so every pod converges to the new configuration. It
// returns false when one is already pending, or before Run has started (its own first sweep
// does). It claims the shared Lease whatever it says, so the replicas' own timers stand down.
func (r *Sweeper) ConfigChanged() bool {
	if !r.state.running.Load() {
		return false
	}
	r.state.force.Store(true)
	return r.signalSweep()
}

// MinSweepGap is the least time between two sweeps asked for by events (a PingSource tick, a
// posted sweep event): per replica, and, with a Lease, across replicas. Anyone who can reach
// the function can post one; a sweep lists every pod.
const MinSweepGap = 10 * time.Second

// AskedByEvent asks Run for a sweep on an event's word (a PingSource tick, a posted sweep
// event). It returns false, and asks nothing, when
// this replica was asked less than MinSweepGap ago or a sweep is already pending; Run then
// sweeps only when no replica swept within MinSweepGap (the Lease says).
func (r *Sweeper) AskedByEvent() bool {
	now := r.now()
	for {
		last := r.state.lastAsked.Load()
		if last != 0 && now.Sub(time.Unix(0, last)) < MinSweepGap && !now.Before(time.Unix(0, last)) {
			return false
		}
		if r.state.lastAsked.CompareAndSwap(last, now.UnixNano()) {
			return r.signalSweep()
		}
	}
}

func (r *Sweeper) signalSweep() bool {
	select {
	case r.sweepSignal() <- struct{}{}:
		return true
	default:
		return false
	}
}

func (r *Sweeper) sweepSignal() chan struct{} {
	r.state.once.Do(func() { r.state.now = make(chan struct{}, 1) })
	return r.state.now
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	Pods, Writes, Failures int
}

// Sweep reconciles every pod: it resumes drains this process holds no re-check for (after a
// restart), and catches what the event source dropped (it drops an event after 5 failed sends)
// or never sent (it announces no pod that existed before it started). A pod that fails is
// logged and counted; the sweep goes on.
func (r *Sweeper) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	if r.Client == nil {
		return res, ErrNoCluster
	}
	overdue := int64(0)
	err := forEachPod(ctx, r.Client, "", func(pod *corev1.Pod) error {
		res.Pods++
		out, err := r.Drains.ReconcileLive(ctx, pod) // listed from the API server just now
		if d := out.Decision; d.FinalizerIndex >= 0 && !d.Deadline.IsZero() && !out.Applied && r.now().After(d.Deadline.Add(time.Second)) {
			overdue++ // held past its deadline: the release was refused or failed
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			res.Failures++
			r.Log.WarnContext(ctx, "sweep: reconciling pod failed", podAttrs(pod), slog.String("error", err.Error()))
		case out.Applied:
			res.Writes++
		}
		return nil
	})
	if err == nil {
		r.state.overdue.Store(overdue)
	}
	return res, err
}

// Run sweeps now, then every SweepInterval (as configured at the time) and whenever
// ConfigChanged or AskedByEvent asks for one, until ctx ends; it does nothing without a
// cluster or with sweeps off (SweepInterval 0, tests only). With a Lease, a timer-driven sweep
// runs only when no replica has swept within the interval.
func (r *Sweeper) Run(ctx context.Context) {
	r.state.running.Store(true)
	if r.Client == nil || r.config().SweepInterval <= 0 {
		return
	}
	asked := false
	for {
		interval := r.config().SweepInterval
		next := r.now().Add(interval)
		claimed := true
		if r.Lease != nil {
			var err error
			gap := interval
			if asked {
				gap = min(MinSweepGap, interval)
				if r.state.force.Swap(false) {
					gap = 0
				}
			}
			claimed, next, err = r.Lease.claim(ctx, r.now(), interval, gap)
			if err != nil {
				// The Lease is only a way to share the work: sweep anyway.
				r.Log.WarnContext(ctx, "sweep Lease unavailable, sweeping anyway", slog.String("error", err.Error()))
				claimed, next = true, r.now().Add(interval)
			}
		}
		if claimed {
			r.sweepOnce(ctx)
		} else {
			r.Log.DebugContext(ctx, "another replica swept recently", slog.Time("next", next))
		}
		if ctx.Err() != nil {
			return
		}
		timer := r.clock().NewTimer(max(next.Sub(r.now()), time.Second))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
			asked = false
		case <-r.sweepSignal():
			timer.Stop()
			asked = true
		}
	}
}

func (r *Sweeper) sweepOnce(ctx context.Context) {
	start := r.clock().Now()
	res, err := r.Sweep(ctx)
	if ctx.Err() != nil {
		return
	}
	r.metrics().Sweep(ctx, res.Pods, res.Writes, res.Failures, r.clock().Since(start), err)
	if r.PDBs != nil {
		r.PDBs.CleanupPDBs(ctx)
	}
	if r.Surge != nil {
		if sr, err := r.Surge.Sweep(ctx); err != nil {
			r.Log.WarnContext(ctx, "surge rollouts: sweep failed", slog.String("error", err.Error()))
		} else if sr.Deployments > 0 {
			r.Log.InfoContext(ctx, "surge rollouts: sweep done", slog.Int("deployments", sr.Deployments), slog.Any("decisions", sr.Decisions))
		}
	}
	attrs := []any{slog.Int("pods", res.Pods), slog.Int("writes", res.Writes), slog.Int("failures", res.Failures),
		slog.Duration("took", r.clock().Since(start))}
	if err != nil {
		r.Log.WarnContext(ctx, "sweep failed", append(attrs, slog.String("error", err.Error()))...)
	} else {
		r.Log.InfoContext(ctx, "sweep done", attrs...)
	}
}

func (r *Sweeper) config() config.Config {
	if r.Config == nil {
		return config.Default()
	}
	return r.Config()
}

// Overdue is how many pods the last complete sweep found held past their deadline.
func (r *Sweeper) Overdue() int64 { return r.state.overdue.Load() }
