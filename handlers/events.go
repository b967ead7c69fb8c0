package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Kubernetes Event reasons on the pod (`kubectl describe pod` shows them).
const (
	EventDrainStarted     = "DrainStarted"
	EventDrainCompleted   = "DrainCompleted"
	EventDrainTimedOut    = "DrainTimedOut"
	EventFinalizerRemoved = "FinalizerRemoved"
	EventDrainWaiting     = "DrainWaiting"
)

// Component is the Kubernetes Event source and the field manager of every write.
const Component = "vpa-graceful-drain"

// EventRecorder writes a Kubernetes Event about a pod, or about another object (a pod's owner).
type EventRecorder interface {
	Record(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) error
	RecordFor(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string) error
}

// APIEventRecorder writes core/v1 Events synchronously, so a caller (and a test) knows each
// one was written when Record returns.
type APIEventRecorder struct {
	Client kubernetes.Interface
	Now    func() time.Time
}

// Record creates one Event whose involvedObject is pod.
func (r APIEventRecorder) Record(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) error {
	return r.RecordFor(ctx, corev1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
	}, eventType, reason, message)
}

// RecordFor creates one Event whose involvedObject is ref, in ref's namespace.
func (r APIEventRecorder) RecordFor(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string) error {
	now := metav1.NewTime(r.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ref.Name + ".",
			Namespace:    ref.Namespace,
		},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             message,
		Type:                eventType,
		Source:              corev1.EventSource{Component: Component},
		ReportingController: "vpagracefuldrain.dev/" + Component,
		ReportingInstance:   Component,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
	}
	if _, err := r.Client.CoreV1().Events(ref.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating event %s for %s %s/%s: %w", reason, strings.ToLower(ref.Kind), ref.Namespace, ref.Name, err)
	}
	return nil
}
