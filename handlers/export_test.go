package handlers

import (
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

// OwnerReaderKinds lists the kinds ownerReaders reads.
func OwnerReaderKinds() []config.Kind {
	var kinds []config.Kind
	for k := range ownerReaders() {
		kinds = append(kinds, k)
	}
	return kinds
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
