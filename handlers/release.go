package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"function/names"
)

const (
	// defaultReleaseWorkers is how many pods ReleaseAll patches at once.
	defaultReleaseWorkers = 16
	// progressEvery is how often ReleaseAll reports progress while it runs.
	progressEvery = time.Second
)

// ReleaseOptions tunes ReleaseAll; the zero value is the defaults.
type ReleaseOptions struct {
	// PageSize is how many pods one list call returns (0: 500).
	PageSize int64
	// Workers is how many pods are patched at once (0: 16).
	Workers int
	// Progress, when set, is called with the pods checked so far, released and failed: about
	// once a second while ReleaseAll runs, and once when it ends. Calls never overlap.
	Progress func(done, released, failed int)
}

// ReleaseResult is what ReleaseAll did.
type ReleaseResult struct {
	// Released are the released pods as namespace/name, sorted; in dry-run, those it would
	// release.
	Released []string
	// Failed counts the pods whose finalizer could not be removed.
	Failed int
	// Listed counts the pods seen (with or without the finalizer).
	Listed int
}

// Releaser removes the finalizer from every pod (ReleaseAll): uninstalling runs it
// (cmd/release-finalizers), after the event source is gone. Each pod goes through Drains'
// guarded release, the way of every decision.
type Releaser struct {
	Deps
	// Drains releases one pod listed (a Reconciler).
	Drains interface {
		release(ctx context.Context, pod *corev1.Pod) (Outcome, error)
	}
}

// NewReleaser is the Releaser of the Reconciler r.
func NewReleaser(r *Reconciler) *Releaser { return &Releaser{Deps: r.Deps, Drains: r} }

// ReleaseAll removes Finalizer from every pod in namespace ("" for all namespaces). Run it
// when uninstalling, after the event source is gone: without the function nothing removes the
// finalizer, and an evicted pod would stay Terminating forever. Each removal goes the way of
// every decision (guarded patch, one re-read if the pod changed, a FinalizerRemoved Event);
// opts.Workers pods are patched at once, fed from the pages of the list as they come.
//
// A pod that fails is logged and counted, and the others are still released: the error then
// says how many failed and wraps the first failure. ReleaseAll stops early only when ctx ends
// or listing fails for good (an expired continue token restarts the list, see forEachPodPaged);
// the result then holds what was done until then.
func (r *Releaser) ReleaseAll(ctx context.Context, namespace string, opts ReleaseOptions) (ReleaseResult, error) {
	var res ReleaseResult
	if r.Client == nil {
		return res, ErrNoCluster
	}
	pageSize := cmp.Or(max(opts.PageSize, 0), defaultPageSize) // not positive: the default
	workers := cmp.Or(max(opts.Workers, 0), defaultReleaseWorkers)

	var (
		mu       sync.Mutex // guards res, done and firstErr
		done     int        // pods checked: skipped, released, failed or left as they were
		firstErr error
	)
	counts := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return done, len(res.Released), res.Failed
	}

	jobs := make(chan *corev1.Pod, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for pod := range jobs {
				if ctx.Err() != nil {
					continue // interrupted: drain the queue without touching the pods
				}
				out, err := r.Drains.release(ctx, pod) // listed live
				mu.Lock()
				switch {
				case err != nil && ctx.Err() != nil:
					// interrupted, not failed: the pod is neither checked nor counted
				case err != nil:
					done++
					res.Failed++
					if firstErr == nil {
						firstErr = err
					}
				case out.Applied:
					done++
					res.Released = append(res.Released, pod.Namespace+"/"+pod.Name)
				default:
					done++
				}
				mu.Unlock()
				if err != nil && ctx.Err() == nil {
					r.Log.WarnContext(ctx, "release: removing the finalizer failed", podAttrs(pod), slog.String("error", err.Error()))
				}
			}
		})
	}

	stopProgress := func() {}
	if opts.Progress != nil {
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			tick := time.NewTicker(progressEvery)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					opts.Progress(counts())
				case <-stop:
					return
				}
			}
		}()
		stopProgress = func() { close(stop); <-stopped }
	}

	listErr := forEachPodPaged(ctx, r.Client, namespace, pageSize, func(pod *corev1.Pod) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		mu.Lock()
		res.Listed++
		if !slices.Contains(pod.Finalizers, names.Finalizer) {
			done++
			mu.Unlock()
			return nil
		}
		mu.Unlock()
		select {
		case jobs <- pod:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	if listErr == nil && ctx.Err() != nil {
		listErr = ctx.Err() // interrupted after listing: the pods still queued were left alone
	}
	stopProgress()
	if opts.Progress != nil {
		opts.Progress(counts())
	}

	slices.Sort(res.Released)
	var failErr error
	if res.Failed > 0 {
		failErr = fmt.Errorf("%d pod(s) failed to release, the first: %w", res.Failed, firstErr)
	}
	return res, errors.Join(listErr, failErr)
}
