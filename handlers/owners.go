package handlers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
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
}

// templatePod is a pod as the owner's template makes it, as far as the policy reads it (its
// namespace and annotations: opt-in and overrides).
func (w ownerObject) templatePod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Annotations: w.Template.Annotations}}
}

// ownerReader reads one kind's object into an ownerObject (its UID, replicas, selector and
// pod template).
type ownerReader func(ctx context.Context, apps typedappsv1.AppsV1Interface, ns, name string) (ownerObject, error)

// ownerReaders has a reader for each kind config's table of kinds marks Read (in the manner of
// the disruption controller's finders): a kind added there adds its reader here, and its get
// in config/rbac.yaml.
func ownerReaders() map[config.Kind]ownerReader {
	return map[config.Kind]ownerReader{
		config.KindDeployment: func(ctx context.Context, apps typedappsv1.AppsV1Interface, ns, name string) (ownerObject, error) {
			o, err := apps.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return ownerObject{}, err
			}
			return ownerObject{Owner: drain.Owner{UID: o.UID}, Replicas: ptr.To(ptr.Deref(o.Spec.Replicas, 1)), Selector: o.Spec.Selector, Template: o.Spec.Template}, nil
		},
		config.KindReplicaSet: func(ctx context.Context, apps typedappsv1.AppsV1Interface, ns, name string) (ownerObject, error) {
			o, err := apps.ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return ownerObject{}, err
			}
			return ownerObject{Owner: drain.Owner{UID: o.UID}, Replicas: ptr.To(ptr.Deref(o.Spec.Replicas, 1)), Selector: o.Spec.Selector, Template: o.Spec.Template}, nil
		},
		config.KindStatefulSet: func(ctx context.Context, apps typedappsv1.AppsV1Interface, ns, name string) (ownerObject, error) {
			o, err := apps.StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return ownerObject{}, err
			}
			return ownerObject{Owner: drain.Owner{UID: o.UID}, Replicas: ptr.To(ptr.Deref(o.Spec.Replicas, 1)), Selector: o.Spec.Selector, Template: o.Spec.Template}, nil
		},
		config.KindDaemonSet: func(ctx context.Context, apps typedappsv1.AppsV1Interface, ns, name string) (ownerObject, error) {
			o, err := apps.DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return ownerObject{}, err
			}
			return ownerObject{Owner: drain.Owner{UID: o.UID}, Selector: o.Spec.Selector, Template: o.Spec.Template}, nil
		},
	}
}

// Read reads a pod's owner of the given kind with its kind's reader.
func (r *Owners) Read(ctx context.Context, ns string, kind config.Kind, name string) (ownerObject, error) {
	read, ok := ownerReaders()[kind]
	if !ok {
		return ownerObject{Owner: drain.Owner{Kind: kind, Name: name}, Namespace: ns}, fmt.Errorf("a %s is not a workload this function reads", kind)
	}
	w, err := read(ctx, r.Client.AppsV1(), ns, name)
	w.Kind, w.Name, w.Namespace = kind, name, ns
	if err != nil {
		return w, fmt.Errorf("reading %s %s/%s: %w", kind, ns, name, err)
	}
	return w, nil
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
	rs, err := r.Client.AppsV1().ReplicaSets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return drain.Owner{}, fmt.Errorf("reading ReplicaSet %s/%s: %w", pod.Namespace, ref.Name, err)
	}
	o := drain.Owner{Kind: config.KindReplicaSet, Name: rs.Name, UID: rs.UID}
	if d := metav1.GetControllerOfNoCopy(rs); d != nil && d.Kind == string(config.KindDeployment) {
		o = drain.Owner{Kind: config.KindDeployment, Name: d.Name, UID: d.UID}
	}
	if rs.UID == ref.UID {
		r.cache.put(ref.UID, o)
	}
	return o, nil
}

// OwnedByDeployment: p is the pod of a ReplicaSet of the Deployment named name, not merely a
// pod its selector matches (another Deployment's selector may overlap: a canary). The
// ReplicaSet's owner as read before, else the Deployment controller's naming
// (<deployment>-<pod-template-hash>), which needs no read; a ReplicaSet it cannot place does
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
