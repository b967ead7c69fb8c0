package handlers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/drain"
)

// factReader reads the facts a decision needs (gather): the owner (through owners, which keeps
// what it learnt), its replicas and the pod's endpoints.
type factReader struct {
	Deps
	owners *Owners
}

// factRead is the read that supplies one fact (a drain.Need) of a decision.
type factRead struct {
	need drain.Need
	// known says whether facts already hold it; read reads it into facts.
	known func(*drain.Facts) bool
	read  func(context.Context, factReader, *corev1.Pod, *drain.Facts) error
}

// factReads is one read per drain.Need, in the order they are read: a gate added to
// drain.Gates adds the read of its Need here.
func factReads() []factRead {
	return []factRead{{
		need:  drain.NeedOwner,
		known: func(f *drain.Facts) bool { return f.Owner != nil },
		read: func(ctx context.Context, r factReader, pod *corev1.Pod, f *drain.Facts) error {
			o, err := r.owners.Resolve(ctx, pod)
			if err == nil {
				f.Owner = &o
			}
			return err
		},
	}, {
		need:  drain.NeedReplicas,
		known: func(f *drain.Facts) bool { return f.Replicas != nil },
		read: func(ctx context.Context, r factReader, pod *corev1.Pod, f *drain.Facts) error {
			rep, err := r.readReplicas(ctx, pod, f)
			if err == nil {
				f.Replicas = &rep
			}
			return err
		},
	}, {
		need:  drain.NeedEndpoints,
		known: func(f *drain.Facts) bool { return f.Serving != nil },
		read: func(ctx context.Context, r factReader, pod *corev1.Pod, f *drain.Facts) error {
			n, err := r.countServing(ctx, pod)
			if err == nil {
				f.Serving = &n
			}
			return err
		},
	}}
}

// gather reads the facts a decision needs into facts. A fact that cannot be read is marked
// Unavailable with the error, never returned: its gate stays closed and the drain's deadline
// still ends it, so a failing read (a missing permission, an API outage) cannot strand a pod.
func (r factReader) gather(ctx context.Context, pod *corev1.Pod, need drain.Need, facts *drain.Facts) {
	fail := func(n drain.Need, err error) {
		facts.Unavailable |= n
		facts.Errors = append(facts.Errors, err.Error())
	}
	if r.Client == nil {
		fail(need, ErrNoCluster)
		return
	}
	for _, f := range factReads() {
		if need&f.need == 0 || f.known(facts) {
			continue
		}
		if err := f.read(ctx, r, pod, facts); err != nil {
			fail(f.need, err)
		}
	}
}

// readReplicas reads the owner's desired replicas and counts its pods that are Ready and not
// deleting (straight from the pods, so it does not lag behind the owner's status).
func (r factReader) readReplicas(ctx context.Context, pod *corev1.Pod, facts *drain.Facts) (drain.Replicas, error) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return drain.Replicas{}, fmt.Errorf("pod %s/%s has no owner to wait for", pod.Namespace, pod.Name)
	}
	var (
		desired  int32
		selector *metav1.LabelSelector
		counts   func(p *corev1.Pod) bool
	)
	kind, name, _ := drain.OwnerOf(pod, *facts)
	if kind == config.KindReplicaSet && facts.Owner == nil {
		o, err := r.owners.Resolve(ctx, pod)
		if err != nil {
			return drain.Replicas{}, err
		}
		kind, name = o.Kind, o.Name
	}
	if !kind.Spec().Replicated { // a StatefulSet: not a gate (see config.Kind.Replaceable), the capacity gap only
		return drain.Replicas{}, fmt.Errorf("a %s has no replacement to wait for", kind)
	}
	w, err := r.owners.Read(ctx, pod.Namespace, kind, name)
	if err != nil {
		return drain.Replicas{}, err
	}
	desired, selector = ptr.Deref(w.Replicas, 1), w.Selector
	counts = func(p *corev1.Pod) bool { // its own pods, not those of another whose selector overlaps
		c := metav1.GetControllerOfNoCopy(p)
		return c != nil && c.UID == w.UID
	}
	if kind == config.KindDeployment { // its pods' controllers are its ReplicaSets
		counts = func(p *corev1.Pod) bool { return r.owners.OwnedByDeployment(p, name) }
	}
	pods, err := listOwnPods(ctx, r.Client, pod.Namespace, kind, name, selector, counts)
	if err != nil {
		return drain.Replicas{}, err
	}
	rep := drain.Replicas{Desired: desired}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if at, ready := drain.ReadySince(p); ready {
			rep.Ready++
			if at.After(rep.ReadyAt) {
				rep.ReadyAt = at
			}
		}
	}
	return rep, nil
}

// countServing counts the EndpointSlice endpoints that list the pod as serving (serving, or
// ready where serving is not reported).
func (r factReader) countServing(ctx context.Context, pod *corev1.Pod) (int, error) {
	list, err := r.Client.DiscoveryV1().EndpointSlices(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("listing EndpointSlices in %s: %w", pod.Namespace, err)
	}
	n := 0
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if isPod(e.TargetRef, pod) && serving(e.Conditions) {
				n++
			}
		}
	}
	return n, nil
}

func isPod(ref *corev1.ObjectReference, pod *corev1.Pod) bool {
	if ref == nil || ref.Kind != "Pod" || ref.Name != pod.Name {
		return false
	}
	return ref.UID == "" || ref.UID == pod.UID
}

func serving(c discoveryv1.EndpointConditions) bool {
	if c.Serving != nil {
		return *c.Serving
	}
	return c.Ready == nil || *c.Ready
}
