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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"function/handlers/drain"
)

const (
	// defaultPageSize is how many pods one list call returns.
	defaultPageSize = 500
	// defaultReleaseWorkers is how many pods ReleaseAll patches at once.
	defaultReleaseWorkers = 16
	// maxListRestarts bounds how often a paged list starts over after its continue token
	// expired.
	maxListRestarts = 3
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
func (r *Reconciler) ReleaseAll(ctx context.Context, namespace string, opts ReleaseOptions) (ReleaseResult, error) {
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
				out, err := r.reconcile(ctx, pod, true, releaseDecision) // listed live
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
		if !slices.Contains(pod.Finalizers, drain.Finalizer) {
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

// releaseDecision removes the finalizer whatever the pod's state.
func releaseDecision(pod *corev1.Pod, _ time.Time, _ drain.Facts) drain.Decision {
	d := drain.Decision{FinalizerIndex: slices.Index(pod.Finalizers, drain.Finalizer), Reason: "finalizer already gone"}
	if d.FinalizerIndex >= 0 {
		d.Action, d.Reason = drain.RemoveFinalizer, drain.ReasonUninstalled
	}
	return d
}

// forEachPod calls fn for every pod in namespace ("" for all), listing defaultPageSize at a
// time; see forEachPodPaged.
func forEachPod(ctx context.Context, client kubernetes.Interface, namespace string, fn func(*corev1.Pod) error) error {
	return forEachPodPaged(ctx, client, namespace, defaultPageSize, fn)
}

// forEachPodPaged calls fn for every pod in namespace ("" for all), listing pageSize at a time;
// it stops at the first error. A continue token that expired before the next page was asked
// for (410: the API server compacted the list's revision away, typically after 5 minutes)
// starts the list over from the beginning, at most maxListRestarts times; fn still sees each
// pod once (pods already seen are skipped), and sees the pods created in between.
func forEachPodPaged(ctx context.Context, client kubernetes.Interface, namespace string, pageSize int64, fn func(*corev1.Pod) error) error {
	type podKey struct {
		namespace, name string
		uid             types.UID
	}
	seen := map[podKey]struct{}{}
	restarts := 0
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		list, err := client.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil && (apierrors.IsResourceExpired(err) || apierrors.IsGone(err)) && ctx.Err() == nil {
			if restarts == maxListRestarts {
				return fmt.Errorf("listing pods: the continue token expired %d times, giving up: %w", restarts+1, err)
			}
			restarts++
			opts.Continue = ""
			continue
		}
		if err != nil {
			return fmt.Errorf("listing pods: %w", err)
		}
		for i := range list.Items {
			pod := &list.Items[i]
			k := podKey{pod.Namespace, pod.Name, pod.UID}
			if _, ok := seen[k]; ok {
				continue // seen before the list started over
			}
			seen[k] = struct{}{}
			if err := fn(pod); err != nil {
				return err
			}
		}
		if list.Continue == "" {
			return nil
		}
		opts.Continue = list.Continue
	}
}
