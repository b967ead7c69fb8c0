package handlers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"function/config"
	"function/handlers/drain"
)

// FactReadNeeds lists the Need each of gather's reads supplies, in order.
func FactReadNeeds() []drain.Need {
	var needs []drain.Need
	for _, f := range factReads() {
		needs = append(needs, f.need)
	}
	return needs
}

// FollowUp queues the rollout of Deployment ns/name to be followed.
func (c *SurgeController) FollowUp(ns, name string) { c.enqueue(ns+"/"+name, SurgeFollow, false) }

// MaxFollowed bounds the rollouts one replica follows.
const MaxFollowed = maxFollowed

// Requeues is how often the Deployment key was queued again with its backoff.
func (c *SurgeController) Requeues(key string) int {
	c.init()
	return c.queue.NumRequeues(key)
}

// ReadWorkload is what the generic owner reader reads of workload ns/name of the kind spec
// describes (a kind not in config's table too): its uid, replicas, selector and template.
func (r *Owners) ReadWorkload(ctx context.Context, ns string, spec config.KindSpec, name string) (
	types.UID, *int32, *metav1.LabelSelector, corev1.PodTemplateSpec, error) {
	w, err := r.readAs(ctx, ns, spec, name)
	return w.UID, w.Replicas, w.Selector, w.Template, err
}
