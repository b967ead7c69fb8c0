package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// NodeName is the node test pods are bound to. No kubelet runs there: tests play its part
// (container statuses, the final grace-0 DELETE) themselves.
const NodeName = "node-1"

// PodSpec returns a pod bound to NodeName, managed (vpa-managed: "true") when managed is
// true, with one container "app".
func PodSpec(namespace, name string, managed bool) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:                      NodeName,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			AutomountServiceAccountToken:  ptr.To(false),
			Containers:                    []corev1.Container{{Name: "app", Image: "busybox"}},
		},
	}
	if managed {
		pod.Annotations = map[string]string{"vpa-managed": "true"}
	}
	return pod
}

// Evict evicts a pod through the Eviction API (policy/v1), as the VPA updater does, with the
// given grace period (nil: the pod's own).
func Evict(ctx context.Context, c kubernetes.Interface, namespace, name string, grace *int64) error {
	ev := &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Namespace: namespace, Name: name},
		DeleteOptions: &metav1.DeleteOptions{GracePeriodSeconds: grace},
	}
	if err := c.CoreV1().Pods(namespace).EvictV1(ctx, ev); err != nil {
		return fmt.Errorf("evicting %s/%s: %w", namespace, name, err)
	}
	return nil
}

// MarkRunning reports the pod's containers running, as a kubelet would after starting it.
func MarkRunning(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod) (*corev1.Pod, error) {
	return setStatus(ctx, c, pod, corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}})
}

// MarkStopped reports the pod's containers terminated (exit 0), as a kubelet does once it
// killed them after the grace period.
func MarkStopped(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod) (*corev1.Pod, error) {
	now := metav1.Now()
	return setStatus(ctx, c, pod, corev1.PodRunning, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now,
	}})
}

// setStatus writes the pod's phase and one status per container with a merge patch of the
// status subresource, as the kubelet does: a patch never conflicts with the function's
// concurrent writes (a full UPDATE would get 409s).
func setStatus(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, phase corev1.PodPhase, state corev1.ContainerState) (*corev1.Pod, error) {
	status := corev1.PodStatus{Phase: phase}
	for _, ctr := range pod.Spec.Containers {
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
			Name: ctr.Name, Image: ctr.Image, ImageID: "docker.io/library/busybox@sha256:0", Ready: state.Running != nil, State: state,
		})
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return nil, fmt.Errorf("encoding status of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	out, err := c.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return nil, fmt.Errorf("updating status of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return out, nil
}

// FinishDeletion is the kubelet's last act: a DELETE with grace period 0 once the containers
// are gone. The pod disappears when no finalizer holds it any more.
func FinishDeletion(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod) error {
	err := c.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil {
		return fmt.Errorf("finishing deletion of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
