package handlers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ReasonUninstalled: the finalizer was removed because the function is being uninstalled.
const ReasonUninstalled = "uninstalled"

// ReleaseAll removes Finalizer from every pod in namespace ("" for all namespaces). Run it
// when uninstalling, after the event source is gone: without the function nothing removes the
// finalizer, and an evicted pod would stay Terminating forever. Each removal goes the way of
// every decision (guarded patch, one re-read if the pod changed, a FinalizerRemoved Event).
// It returns the released pods as namespace/name; in dry-run, those it would release.
func (r *Reconciler) ReleaseAll(ctx context.Context, namespace string) ([]string, error) {
	if r.Client == nil {
		return nil, ErrNoCluster
	}
	var released []string
	err := forEachPod(ctx, r.Client, namespace, func(pod *corev1.Pod) error {
		if !slices.Contains(pod.Finalizers, Finalizer) {
			return nil
		}
		out, err := r.reconcile(ctx, pod, releaseDecision)
		if err != nil {
			return err
		}
		if out.Applied {
			released = append(released, pod.Namespace+"/"+pod.Name)
		}
		return nil
	})
	return released, err
}

// releaseDecision removes the finalizer whatever the pod's state.
func releaseDecision(pod *corev1.Pod, _ time.Time) Decision {
	d := Decision{FinalizerIndex: slices.Index(pod.Finalizers, Finalizer), Reason: "finalizer already gone"}
	if d.FinalizerIndex >= 0 {
		d.Action, d.Reason = RemoveFinalizer, ReasonUninstalled
	}
	return d
}

// forEachPod calls fn for every pod in namespace ("" for all), listing 500 at a time; it stops
// at the first error.
func forEachPod(ctx context.Context, client kubernetes.Interface, namespace string, fn func(*corev1.Pod) error) error {
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := client.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return fmt.Errorf("listing pods: %w", err)
		}
		for i := range list.Items {
			if err := fn(&list.Items[i]); err != nil {
				return err
			}
		}
		if list.Continue == "" {
			return nil
		}
		opts.Continue = list.Continue
	}
}
