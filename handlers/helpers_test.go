package handlers_test

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/drain"
)

// now is the fixed time of every decision in these tests (sub-second part on purpose).
var now = time.Date(2026, 11, 26, 5, 10, 30, 987654321, time.UTC)

// up is the latest moment a whole-second API time t stands for (t + 1 s - 1 ns), from
// which drains are timed; a time with a fraction is kept.
func up(t time.Time) time.Time {
	if t.IsZero() || t.Nanosecond() != 0 {
		return t
	}
	return t.Add(time.Second - time.Nanosecond)
}

// nowSec is now truncated to whole seconds (what an RFC 3339 annotation of now reads back as).
var nowSec = now.Truncate(time.Second)

// drainStamp is the drain start Decide stamps for a pod deleted at now: the deletion request
// as the API server recorded it (deletionTimestamp - deletionGracePeriodSeconds, whole seconds).
var drainStamp = nowSec

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

var managed = ann(drain.AnnotationManaged, "true")

func inNamespace(ns string) podOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

func finalizers(f ...string) podOpt { return func(p *corev1.Pod) { p.Finalizers = f } }

var ours = finalizers(drain.Finalizer)

// deleting sets deletionTimestamp as the API server does for a pod deleted at now with a 30 s
// grace period: now + 30 s, in whole seconds.
func deleting(p *corev1.Pod) { deletedAt(nowSec, 30)(p) }

// deletedAt: the deletion was requested at t with a grace period of grace seconds.
func deletedAt(t time.Time, grace int64) podOpt {
	return func(p *corev1.Pod) {
		ts := metav1.NewTime(t.Add(time.Duration(grace) * time.Second))
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &grace
	}
}

// graceZero is the kubelet's final grace-0 DELETE, sent at now: deletionTimestamp moves to now.
func graceZero(p *corev1.Pod) {
	zero := int64(0)
	ts := metav1.NewTime(nowSec)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &zero
}

// evicted adds the DisruptionTarget condition the API server sets when it accepts an eviction.
func evicted(at time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI",
			LastTransitionTime: metav1.NewTime(at), Message: "Eviction API: evicting",
		})
	}
}

// sidecar adds a native sidecar (a restartable init container) with status st.
func sidecar(st corev1.ContainerStatus) podOpt {
	return func(p *corev1.Pod) {
		always := corev1.ContainerRestartPolicyAlways
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: st.Name, Image: "envoy", RestartPolicy: &always})
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
	}
}

// initContainer adds an ordinary init container with status st.
func initContainer(st corev1.ContainerStatus) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: st.Name, Image: "busybox"})
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
	}
}

func started(at time.Time) podOpt { return ann(drain.AnnotationDrainStarted, stamp(at)) }

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

// waitFor and tick poll conditions that goroutines (re-check workers) make true.
const (
	waitFor = 5 * time.Second
	tick    = 5 * time.Millisecond
)

// leaseRenewedAt is a sweep Lease last claimed at t.
func leaseRenewedAt(t time.Time) *coordinationv1.Lease {
	renew := metav1.NewMicroTime(t)
	holder := "other"
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "sweep", Namespace: "vpa-graceful-drain"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &renew}}
}

// bareConfig is the default configuration with bare pods managed and every deletion held.
// Most tests here use a bare pod and set deletionTimestamp directly; workload_test.go tests
// the defaults for owners and evictions.
func bareConfig() config.Config {
	c := config.Default()
	c.Workloads = map[config.Kind]config.WorkloadOverride{config.KindPod: {Manage: ptr.To(true)}}
	c.HoldOn = config.HoldAll
	return c
}
