package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// ReasonUninstalled: the finalizer was removed because the function is being uninstalled.
const ReasonUninstalled = "uninstalled"

// ReleaseAll removes Finalizer from every pod in namespace ("" for all namespaces). Run it
// when uninstalling, after the event source is gone: without the function nothing removes the
// finalizer, and an evicted pod would stay Terminating forever. Each removal is a guarded
// patch (uid and the finalizer at its index); a pod that changed meanwhile is read once more.
// It returns the released pods as namespace/name; with dryRun it only lists them.
func ReleaseAll(ctx context.Context, client kubernetes.Interface, namespace string, dryRun bool, events EventRecorder, log *slog.Logger) ([]string, error) {
	var released []string
	err := forEachPod(ctx, client, namespace, func(pod *corev1.Pod) error {
		if !slices.Contains(pod.Finalizers, Finalizer) {
			return nil
		}
		if !dryRun {
			done, err := release(ctx, client, pod)
			if err != nil || !done {
				return err
			}
		}
		key := pod.Namespace + "/" + pod.Name
		released = append(released, key)
		log.InfoContext(ctx, "finalizer removed", slog.String("pod", key), slog.String("reason", ReasonUninstalled), slog.Bool("dryRun", dryRun))
		if events != nil && !dryRun {
			if err := events.Record(ctx, pod, corev1.EventTypeNormal, EventFinalizerRemoved,
				fmt.Sprintf("vpa-graceful-drain is being uninstalled; finalizer %s removed", Finalizer)); err != nil {
				log.WarnContext(ctx, "could not record Kubernetes Event", slog.String("pod", key), slog.String("error", err.Error()))
			}
		}
		return nil
	})
	return released, err
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

// release removes the finalizer from one pod; false when the pod is gone or no longer has it.
func release(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) (bool, error) {
	for attempt := 0; ; attempt++ {
		d := Decision{Action: RemoveFinalizer, Reason: ReasonUninstalled, FinalizerIndex: slices.Index(pod.Finalizers, Finalizer)}
		if d.FinalizerIndex < 0 {
			return false, nil
		}
		patch, err := Patch(pod, d)
		if err != nil {
			return false, err
		}
		_, err = client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: Component})
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsNotFound(err):
			return false, nil
		case !isGuardFailure(err) || attempt > 0:
			return false, fmt.Errorf("removing the finalizer from %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		live, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if live.UID != pod.UID {
			return false, nil
		}
		pod = live
	}
}
