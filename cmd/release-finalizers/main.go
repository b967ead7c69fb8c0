// Command release-finalizers removes the finalizer vpagracefuldrain.dev/drain from every pod.
// Run it when uninstalling vpa-graceful-drain: without the function nothing else removes it,
// and an evicted pod would stay Terminating forever. It uses KUBECONFIG / ~/.kube/config (or
// the in-cluster config) and needs list and patch on pods, patch on the function's
// ConfigMap, and list and delete on poddisruptionbudgets.
//
//	go run ./cmd/release-finalizers [-namespace NS] [-dry-run] [-workers 16] [-qps 100] [-burst 200]
//	    [-config-map vpa-graceful-drain/vpa-graceful-drain] [-settle 5s]
//
// First it marks the function's ConfigMap with vpagracefuldrain.dev/uninstalling: "true":
// every replica that follows it stops adding finalizers and removes its own, so the order of
// the uninstall steps does not matter. Then it releases every pod, and passes again after
// -settle until a pass finds nothing left (a replica may have added one before it saw the
// mark). Last it deletes the PodDisruptionBudgets the function created for eviction pacing
// (ensurePodDisruptionBudget; labelled app.kubernetes.io/managed-by=vpa-graceful-drain), in
// every namespace, and says how many.
//
// It patches -workers pods at once, each with the function's guarded patch, prints a progress
// line on stderr about once a second, and ends with "released N pod(s)" on stdout (", M
// failed" when some pods could not be released; the exit code is then 1).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"function/config"
	"function/handlers"
)

type options struct {
	namespace string
	dryRun    bool
	qps       float64
	burst     int
	workers   int
	configMap string
	settle    time.Duration
}

// maxPasses bounds the release passes.
const maxPasses = 5

func main() {
	var o options
	flag.StringVar(&o.namespace, "namespace", "", "only this namespace (default: all namespaces)")
	flag.BoolVar(&o.dryRun, "dry-run", false, "list the pods that hold the finalizer, change nothing")
	flag.Float64Var(&o.qps, "qps", 100, "API requests per second (client-side rate limit)")
	flag.IntVar(&o.burst, "burst", 200, "API requests allowed in a burst above -qps")
	flag.IntVar(&o.workers, "workers", 16, "pods patched at once")
	flag.StringVar(&o.configMap, "config-map", "vpa-graceful-drain/vpa-graceful-drain", "the function's ConfigMap (namespace/name) to mark as uninstalling; empty: none")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait between release passes")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "release-finalizers:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.qps <= 0 || o.burst <= 0 || o.workers <= 0 {
		return fmt.Errorf("-qps, -burst and -workers must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading cluster config: %w", err)
	}
	cfg.UserAgent = handlers.Component + "-release"
	// client-go's default (5 requests/s) would take over an hour for 10,000 pods.
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := uninstall(ctx, client, o, log, os.Stderr)
	fmt.Println(summary(res, o.dryRun))
	return err
}

// uninstall marks the ConfigMap, then releases every pod, pass after pass until one finds
// nothing left to do (or maxPasses), then deletes the PodDisruptionBudgets the function created.
func uninstall(ctx context.Context, client kubernetes.Interface, o options, log *slog.Logger, progressOut io.Writer) (handlers.ReleaseResult, error) {
	if !o.dryRun && o.configMap != "" {
		if err := markUninstalling(ctx, client, o.configMap, progressOut); err != nil {
			return handlers.ReleaseResult{}, err
		}
	}
	rec := handlers.NewReconciler(client, config.Default(), o.dryRun, log)
	defer rec.Stop()
	total, err := release(ctx, rec, o, progressOut)
	if ctx.Err() != nil {
		return total, err
	}
	n, pdbErr := rec.DeletePDBs(ctx)
	pdbVerb := "deleted"
	if o.dryRun {
		pdbVerb = "would delete"
	}
	fmt.Fprintf(progressOut, "%s %d PodDisruptionBudget(s) vpa-graceful-drain created\n", pdbVerb, n)
	return total, errors.Join(err, pdbErr)
}

// release releases every pod, pass after pass until one finds nothing left to do (or
// maxPasses).
func release(ctx context.Context, rec *handlers.Reconciler, o options, progressOut io.Writer) (handlers.ReleaseResult, error) {
	var total handlers.ReleaseResult
	for pass := 1; ; pass++ {
		res, err := rec.ReleaseAll(ctx, o.namespace, handlers.ReleaseOptions{
			Workers:  o.workers,
			Progress: progress(progressOut, o.dryRun),
		})
		total.Released = append(total.Released, res.Released...)
		total.Failed, total.Listed = res.Failed, res.Listed
		if o.dryRun || (len(res.Released) == 0 && res.Failed == 0) || pass == maxPasses || ctx.Err() != nil {
			return total, err
		}
		fmt.Fprintf(progressOut, "pass %d done; passing again in %s until nothing is left\n", pass, o.settle)
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(o.settle):
		}
	}
}

// markUninstalling annotates the function's ConfigMap (namespace/name). A ConfigMap that does
// not exist needs no mark: a function that follows it is in uninstall mode without it.
func markUninstalling(ctx context.Context, client kubernetes.Interface, ref string, out io.Writer) error {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("-config-map %q: want namespace/name", ref)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, config.AnnotationUninstalling)
	_, err := client.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: handlers.Component + "-release"})
	switch {
	case apierrors.IsNotFound(err):
		fmt.Fprintf(out, "ConfigMap %s not found: nothing to mark (a function that follows it is already in uninstall mode)\n", ref)
		return nil
	case err != nil:
		return fmt.Errorf("marking ConfigMap %s as uninstalling: %w", ref, err)
	}
	fmt.Fprintf(out, "marked ConfigMap %s with %s=true: the function adds no finalizer from now on\n", ref, config.AnnotationUninstalling)
	return nil
}

func verb(dryRun bool) string {
	if dryRun {
		return "would release"
	}
	return "released"
}

// progress writes "released N, failed M, checked K pods" to w.
func progress(w io.Writer, dryRun bool) func(done, released, failed int) {
	return func(done, released, failed int) {
		fmt.Fprintf(w, "%s %d, failed %d, checked %d pods\n", verb(dryRun), released, failed, done)
	}
}

// summary is the last line: "released N pod(s)", with ", M failed" when some failed.
func summary(res handlers.ReleaseResult, dryRun bool) string {
	s := fmt.Sprintf("%s %d pod(s)", verb(dryRun), len(res.Released))
	if res.Failed > 0 {
		s += fmt.Sprintf(", %d failed", res.Failed)
	}
	return s
}
