// Package draintest builds the pods, facts and configuration the drain policy's tests (and
// the handlers' tests around it) decide on: a running pod web-1 in default, adjusted by
// options, at the fixed time Now. Its variables are fixed values, never written.
package draintest

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/advice"
	"function/handlers/drain"
	"function/names"
)

// Now is the fixed time of every decision in these tests (sub-second part on purpose).
var Now = time.Date(2026, 11, 26, 5, 10, 30, 987654321, time.UTC)

// Latest is the latest moment a whole-second API time t stands for (t + 1 s - 1 ns), from
// which drains are timed; a time with a fraction is kept.
func Latest(t time.Time) time.Time {
	if t.IsZero() || t.Nanosecond() != 0 {
		return t
	}
	return t.Add(time.Second - time.Nanosecond)
}

// NowSec is Now truncated to whole seconds (what an RFC 3339 annotation of Now reads back as).
var NowSec = Now.Truncate(time.Second)

// DrainStamp is the drain start Decide stamps for a pod deleted at Now: the deletion request
// as the API server recorded it (deletionTimestamp - deletionGracePeriodSeconds, whole seconds).
var DrainStamp = NowSec

// Stamp is t as the drain annotations hold it (RFC 3339, whole seconds).
func Stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// PodOpt adjusts a pod NewPod builds.
type PodOpt func(*corev1.Pod)

// NewPod is a running pod web-1 in namespace default; opts adjust it.
func NewPod(opts ...PodOpt) *corev1.Pod {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "uid-1", ResourceVersion: "100"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{Running("app")},
		},
	}
	for _, o := range opts {
		o(pod)
	}
	return pod
}

// Ann sets annotations, as key, value pairs.
func Ann(kv ...string) PodOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

// Managed opts the pod in.
var Managed = Ann(names.AnnotationManaged, "true")

// InNamespace moves the pod to namespace ns.
func InNamespace(ns string) PodOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

// Finalizers sets the pod's finalizers.
func Finalizers(f ...string) PodOpt { return func(p *corev1.Pod) { p.Finalizers = f } }

// Ours gives the pod the function's finalizer only.
var Ours = Finalizers(names.Finalizer)

// Deleting sets deletionTimestamp as the API server does for a pod deleted at Now with a 30 s
// grace period: Now + 30 s, in whole seconds.
func Deleting(p *corev1.Pod) { DeletedAt(NowSec, 30)(p) }

// DeletedAt sets the deletion fields of a deletion requested at t with grace seconds.
func DeletedAt(t time.Time, grace int64) PodOpt {
	return func(p *corev1.Pod) {
		ts := metav1.NewTime(t.Add(time.Duration(grace) * time.Second))
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &grace
	}
}

// GraceZero is the kubelet's final grace-0 DELETE, sent at Now: deletionTimestamp moves to Now.
func GraceZero(p *corev1.Pod) {
	zero := int64(0)
	ts := metav1.NewTime(NowSec)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &zero
}

// Evicted adds the DisruptionTarget condition the API server sets when it accepts an eviction.
func Evicted(at time.Time) PodOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI",
			LastTransitionTime: metav1.NewTime(at), Message: "Eviction API: evicting",
		})
	}
}

// Sidecar adds a native sidecar (a restartable init container) with status st.
func Sidecar(st corev1.ContainerStatus) PodOpt {
	return func(p *corev1.Pod) {
		always := corev1.ContainerRestartPolicyAlways
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: st.Name, Image: "envoy", RestartPolicy: &always})
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
	}
}

// InitContainer adds an ordinary init container with status st.
func InitContainer(st corev1.ContainerStatus) PodOpt {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: st.Name, Image: "busybox"})
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
	}
}

// Started stamps the drain as started at at.
func Started(at time.Time) PodOpt { return Ann(names.AnnotationDrainStarted, Stamp(at)) }

// Phase sets the pod's phase.
func Phase(ph corev1.PodPhase) PodOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

// Statuses sets the containers' statuses.
func Statuses(s ...corev1.ContainerStatus) PodOpt {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses = s }
}

// Running is the status of a running container.
func Running(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

// Terminated is the status of a container that exited with code.
func Terminated(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

// OwnedBy makes the pod a controller-owned pod: kind "Deployment" means the ReplicaSet
// web-7d9f8 its Deployment web made (pod-template-hash label), "" a bare pod.
func OwnedBy(kind, name string) PodOpt {
	return func(p *corev1.Pod) {
		ref := metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: k8stypes.UID("uid-" + name), Controller: ptr.To(true)}
		if kind == "Deployment" {
			ref.Kind, ref.Name, ref.UID = "ReplicaSet", name+"-7d9f8", "uid-rs-"+k8stypes.UID(name)
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels["pod-template-hash"] = "7d9f8"
		}
		p.OwnerReferences = []metav1.OwnerReference{ref}
	}
}

// Deployment makes the pod one of Deployment web's (through its ReplicaSet web-7d9f8).
var Deployment = OwnedBy("Deployment", "web")

// StoppedAt reports every container terminated at t.
func StoppedAt(t time.Time) PodOpt {
	return Statuses(corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(t)}}})
}

// ReplicasFacts are the facts of an owner with desired replicas, ready of them Ready, the
// last since readyAt.
func ReplicasFacts(desired, ready int32, readyAt time.Time) drain.Facts {
	return drain.Facts{Replicas: &drain.Replicas{Desired: desired, Ready: ready, ReadyAt: readyAt}}
}

// BareConfig is the default configuration with bare pods managed and every deletion held (the
// tests of owners and evictions use config.Default).
func BareConfig() config.Config {
	c := config.Default()
	c.Workloads = map[config.Kind]config.WorkloadOverride{config.KindPod: {Manage: ptr.To(true)}}
	c.HoldOn = config.HoldAll
	return c
}

// GracefulContainer has a preStop hook and a readiness probe.
func GracefulContainer(name string) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox",
		Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}}}
}

// FindingIDs lists the findings' IDs ([] for none).
func FindingIDs(findings []advice.Finding) []string {
	out := []string{}
	for _, f := range findings {
		out = append(out, f.ID)
	}
	return out
}
