// Command release-finalizers removes the finalizer vpagracefuldrain.dev/drain from every pod.
// Run it when uninstalling vpa-graceful-drain, after deleting the ApiServerSource (so no new
// finalizer is added): without the function nothing else removes it, and an evicted pod would
// stay Terminating forever. It uses KUBECONFIG / ~/.kube/config (or the in-cluster config)
// and needs list and patch on pods.
//
//	go run ./cmd/release-finalizers [-namespace NS] [-dry-run] [-workers 16] [-qps 100] [-burst 200]
//
// It patches -workers pods at once, each with the function's guarded patch, prints a progress
// line on stderr about once a second, and ends with "released N pod(s)" on stdout (", M
// failed" when some pods could not be released; the exit code is then 1).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
}

func main() {
	var o options
	flag.StringVar(&o.namespace, "namespace", "", "only this namespace (default: all namespaces)")
	flag.BoolVar(&o.dryRun, "dry-run", false, "list the pods that hold the finalizer, change nothing")
	flag.Float64Var(&o.qps, "qps", 100, "API requests per second (client-side rate limit)")
	flag.IntVar(&o.burst, "burst", 200, "API requests allowed in a burst above -qps")
	flag.IntVar(&o.workers, "workers", 16, "pods patched at once")
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
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rec := handlers.NewReconciler(client, config.Default(), o.dryRun, log)
	defer rec.Stop()
	res, err := rec.ReleaseAll(ctx, o.namespace, handlers.ReleaseOptions{
		Workers:  o.workers,
		Progress: progress(os.Stderr, o.dryRun),
	})
	fmt.Println(summary(res, o.dryRun))
	return err
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
