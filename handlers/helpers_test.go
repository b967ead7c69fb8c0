package handlers_test

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers"
)

// now is the fixed time of every decision in these tests (sub-second part on purpose).
var now = time.Date(2026, 11, 26, 5, 10, 30, 987654321, time.UTC)

// nowSec is now truncated to whole seconds (what an RFC 3339 annotation of now reads back as).
var nowSec = now.Truncate(time.Second)

// drainStamp is the drain start Decide stamps at now: UTC, rounded up to a whole second.
var drainStamp = time.Date(2026, 11, 26, 5, 10, 31, 0, time.UTC)

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

type podOpt func(*corev1.Pod)

// newPod is a running pod web-1 in namespace default; opts adjust it.
func newPod(opts ...podOpt) *corev1.Pod {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "uid-1", ResourceVersion: "100"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{running("app")},
		},
	}
	for _, o := range opts {
		o(pod)
	}
	return pod
}

func ann(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

var managed = ann(handlers.AnnotationManaged, "true")

func inNamespace(ns string) podOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

func finalizers(f ...string) podOpt { return func(p *corev1.Pod) { p.Finalizers = f } }

var ours = finalizers(handlers.Finalizer)

// deleting sets deletionTimestamp (now + 30 s, as for a pod deleted with a 30 s grace period).
func deleting(p *corev1.Pod) {
	ts := metav1.NewTime(now.Add(30 * time.Second))
	grace := int64(30)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &grace
}

func graceZero(p *corev1.Pod) {
	zero := int64(0)
	p.DeletionGracePeriodSeconds = &zero
}

func started(at time.Time) podOpt { return ann(handlers.AnnotationDrainStarted, stamp(at)) }

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func statuses(s ...corev1.ContainerStatus) podOpt {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses = s }
}

func running(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func terminated(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}
