package handlers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/drain"
)

// Owners reads pods' owners: a pod's workload (Resolve: its ReplicaSet's Deployment, kept per
// ReplicaSet uid, as a ReplicaSet's owner never changes), a workload by kind (Read, with the
// reader of its kind) and whether a pod is a Deployment's (OwnedByDeployment). The facts'
// reads, the owner checks and pacing share one.
type Owners struct {
	Deps
	cache ownersOf
}

// ownersOf: a ReplicaSet's workload (never changes once read).
type ownersOf = bounded[types.UID, drain.Owner, limit10k]

// ownerObject is what advice, pacing and the replacement count read about a pod's owner.
type ownerObject struct {
	drain.Owner
	Namespace string
	// Replicas are the desired replicas; nil for a kind without spec.replicas (a DaemonSet).
	Replicas *int32
	Selector *metav1.LabelSelector
	Template corev1.PodTemplateSpec
	// Controller is the workload's own controller (a ReplicaSet's Deployment), if any.
	Controller *metav1.OwnerReference
}

// templatePod is a pod as the owner's template makes it, as far as the policy reads it (its
// namespace and annotations: opt-in and overrides).
func (w ownerObject) templatePod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Annotations: w.Template.Annotations}}
}

// Read reads a pod's owner of the given kind with the one generic reader, in the manner of the
// disruption controller's scale finder: the kind's API from config's table of kinds (its
// group, version and resource), the object read as unstructured through the dynamic client,
// so a kind added to the table (a custom resource with spec.selector and spec.template, and
// spec.replicas when Replicated) is read with no code of its own.
func (r *Owners) Read(ctx context.Context, ns string, kind config.Kind, name string) (ownerObject, error) {
	return r.readAs(ctx, ns, kind.Spec(), name)
}

// readAs reads the workload ns/name of the kind spec describes.
func (r *Owners) readAs(ctx context.Context, ns string, spec config.KindSpec, name string) (ownerObject, error) {
	kind := spec.Kind
	w := ownerObject{Owner: drain.Owner{Kind: kind, Name: name}, Namespace: ns}
	switch {
	case !spec.Read:
		return w, fmt.Errorf("a %s is not a workload this function reads", kind)
	case r.Dynamic == nil:
		return w, fmt.Errorf("reading %s %s/%s: no dynamic client", kind, ns, name)
	}
	gvr := schema.GroupVersionResource{Group: spec.Group, Version: spec.Version, Resource: spec.Resource}
	u, err := r.Dynamic.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return w, fmt.Errorf("reading %s %s/%s: %w", kind, ns, name, err)
	}
	var obj workload
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &obj); err != nil {
		return w, fmt.Errorf("reading %s %s/%s: not a workload: %w", kind, ns, name, err)
	}
	w.UID, w.Selector, w.Template = u.GetUID(), obj.Spec.Selector, obj.Spec.Template
	for _, ref := range u.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			w.Controller = &ref
		}
	}
	if spec.Replicated {
		w.Replicas = ptr.To(ptr.Deref(obj.Spec.Replicas, 1))
	}
	return w, nil
}

// workload is what the generic reader takes of a workload's object.
type workload struct {
	Spec struct {
		Replicas *int32                 `json:"replicas,omitempty"`
		Selector *metav1.LabelSelector  `json:"selector,omitempty"`
		Template corev1.PodTemplateSpec `json:"template,omitempty"`
	} `json:"spec"`
}

// Resolve resolves the pod's ReplicaSet to the Deployment that controls it, if any. A
// ReplicaSet's owner does not change, so the answer is kept (per ReplicaSet uid).
func (r *Owners) Resolve(ctx context.Context, pod *corev1.Pod) (drain.Owner, error) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return drain.Owner{Kind: config.KindPod}, nil
	}
	if ref.Kind != string(config.KindReplicaSet) {
		return drain.Owner{Kind: config.KindOf(ref.Kind), Name: ref.Name, UID: ref.UID}, nil
	}
	if o, ok := r.cache.get(ref.UID); ok {
		return o, nil
	}
	rs, err := r.Read(ctx, pod.Namespace, config.KindReplicaSet, ref.Name)
	if err != nil {
		return drain.Owner{}, err
	}
	o := drain.Owner{Kind: config.KindReplicaSet, Name: rs.Name, UID: rs.UID}
	if d := rs.Controller; d != nil && d.Kind == string(config.KindDeployment) {
		o = drain.Owner{Kind: config.KindDeployment, Name: d.Name, UID: d.UID}
	}
	if rs.UID == ref.UID {
		r.cache.put(ref.UID, o)
	}
	return o, nil
}

// OwnedByDeployment reports whether p is the pod of a ReplicaSet of the Deployment named name,
// not merely a pod its selector matches (another Deployment's selector may overlap: a canary):
// by the ReplicaSet's owner as read before, else by the Deployment controller's naming
// (<deployment>-<pod-template-hash>), which needs no read. A ReplicaSet it cannot place does
// not count, so an overlap can only keep the gate closed (the deadline still ends the drain).
func (r *Owners) OwnedByDeployment(p *corev1.Pod, name string) bool {
	c := metav1.GetControllerOfNoCopy(p)
	if c == nil || c.Kind != string(config.KindReplicaSet) {
		return false
	}
	if o, ok := r.cache.get(c.UID); ok {
		return o.Kind == config.KindDeployment && o.Name == name
	}
	return ownedByDeploymentName(p, name)
}

// ownedByDeploymentName: p is a pod of Deployment name by the Deployment controller's naming
// rule (drain.DeploymentOf: its ReplicaSet is name-<pod-template-hash>).
func ownedByDeploymentName(p *corev1.Pod, name string) bool {
	n, ok := drain.DeploymentOf(p)
	return ok && n == name
}
