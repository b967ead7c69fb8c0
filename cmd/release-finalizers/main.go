// Command release-finalizers removes the finalizer vpagracefuldrain.dev/drain from every pod.
// Run it when uninstalling vpa-graceful-drain, after deleting the ApiServerSource (so no new
// finalizer is added): without the function nothing else removes it, and an evicted pod would
// stay Terminating forever. It uses KUBECONFIG / ~/.kube/config (or the in-cluster config)
// and needs list and patch on pods.
//
//	go run ./cmd/release-finalizers [-namespace NS] [-dry-run]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"function/config"
	"function/handlers"
)

func main() {
	namespace := flag.String("namespace", "", "only this namespace (default: all namespaces)")
	dryRun := flag.Bool("dry-run", false, "list the pods that hold the finalizer, change nothing")
	flag.Parse()
	if err := run(*namespace, *dryRun); err != nil {
		fmt.Fprintln(os.Stderr, "release-finalizers:", err)
		os.Exit(1)
	}
}

func run(namespace string, dryRun bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading cluster config: %w", err)
	}
	cfg.UserAgent = handlers.Component + "-release"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rec := handlers.NewReconciler(ctx, client, config.Default(), dryRun, log)
	defer rec.Stop()
	released, err := rec.ReleaseAll(ctx, namespace)
	verb := "released"
	if dryRun {
		verb = "would release"
	}
	fmt.Printf("%s %d pod(s)\n", verb, len(released))
	return err
}
