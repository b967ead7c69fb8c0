package handlers

// The lists every concern reads with: pods (all, paged, or a workload's own), and
// VerticalPodAutoscalers (through the dynamic client; their CRD may be absent).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"function/config"
)

const (
	// defaultPageSize is how many objects one list call returns.
	defaultPageSize = 500
	// maxListRestarts bounds how often a paged list starts over after its continue token
	// expired.
	maxListRestarts = 3
)

// VerticalPodAutoscaler's API, read through the dynamic client (its CRD may be absent).
var vpaGVR = schema.GroupVersionResource{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}

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

// listOwnPods lists the pods of the workload kind/name: those its selector selects that owns
// accepts (its own, not those of another whose selector overlaps).
func listOwnPods(ctx context.Context, client kubernetes.Interface, ns string, kind config.Kind, name string, selector *metav1.LabelSelector,
	owns func(*corev1.Pod) bool) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("the %s %s/%s has an invalid selector: %w", kind, ns, name, err)
	}
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of %s %s/%s: %w", kind, ns, name, err)
	}
	var pods []*corev1.Pod
	for i := range list.Items {
		if owns(&list.Items[i]) {
			pods = append(pods, &list.Items[i])
		}
	}
	return pods, nil
}

// listVPAs lists the namespace's VerticalPodAutoscalers (none without a dynamic client dyn
// or their CRD).
func listVPAs(ctx context.Context, dyn dynamic.Interface, ns string) ([]*vpa_types.VerticalPodAutoscaler, error) {
	if dyn == nil {
		return nil, nil
	}
	list, err := dyn.Resource(vpaGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if crdAbsent(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing VerticalPodAutoscalers in %s: %w", ns, err)
	}
	vpas := make([]*vpa_types.VerticalPodAutoscaler, 0, len(list.Items))
	for _, u := range list.Items {
		v := &vpa_types.VerticalPodAutoscaler{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
			return nil, fmt.Errorf("reading VerticalPodAutoscaler %s/%s: %w", ns, u.GetName(), err)
		}
		vpas = append(vpas, v)
	}
	return vpas, nil
}

// crdAbsent: the list failed because the API server does not serve the resource (its CRD is
// not installed).
func crdAbsent(err error) bool {
	if err == nil {
		return false
	}
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || strings.Contains(err.Error(), "no matches for kind") {
		return true
	}
	var status apierrors.APIStatus
	return errors.As(err, &status) && status.Status().Code == http.StatusNotFound
}

// getPod reads a pod; a pod that does not exist is (nil, nil).
func getPod(ctx context.Context, client kubernetes.Interface, ns, name string) (*corev1.Pod, error) {
	pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: %w", ns, name, err)
	}
	return pod, nil
}

// targetOf is the workload a VerticalPodAutoscaler targets: its kind and name, when its
// targetRef names a kind of the table of kinds in that kind's API group (or no API version);
// ok false otherwise.
func targetOf(v *vpa_types.VerticalPodAutoscaler) (config.Kind, string, bool) {
	ref := v.Spec.TargetRef
	if ref == nil {
		return "", "", false
	}
	kind := config.Kind(ref.Kind)
	if ref.APIVersion != "" && !kind.Spec().InGroup(ref.APIVersion) {
		return "", "", false
	}
	return kind, ref.Name, true
}
