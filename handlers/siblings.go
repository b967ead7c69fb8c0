package handlers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"function/handlers/drain"
	"function/names"
)

// siblings indexes the drains waiting for their owner's replacement by the controller (the
// ReplicaSet) that owns them, so an event about a sibling pod becoming Ready brings their
// next look forward at once instead of at their next poll. Like the re-checks it is only an
// accelerator, per replica: polling still finishes every drain.
//
// Bounded: only a drain read live is recorded (noteWaiting runs on live pods only), at most
// maxSiblingWaits at once (beyond, the drain polls); a controller's waiting drains are nudged
// at most once per drain.LookMin, so a flood of (forged) Ready siblings costs at most one read per
// waiting drain every drain.LookMin.
type siblings struct {
	mu      sync.Mutex
	byOwner map[types.UID]map[PodKey]struct{}
	owner   map[types.UID]types.UID // pod uid -> controller uid
	said    map[types.UID]string    // pod uid -> the gates last reported waiting for
	nudged  map[types.UID]time.Time // controller uid -> when its drains were last nudged
}

// maxSiblingWaits bounds the drains recorded as waiting for a replacement, and the reports.
const maxSiblingWaits = 50000

// report returns true when what the pod waits for differs from what was last reported.
func (s *siblings) report(uid types.UID, what string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.said == nil || len(s.said) >= maxSiblingWaits {
		s.said = map[types.UID]string{} // starting over costs at most one repeated Event each
	}
	if s.said[uid] == what {
		return false
	}
	s.said[uid] = what
	return true
}

// wait records that key waits for the replacement of its controller's pods.
func (s *siblings) wait(key PodKey, controller types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byOwner == nil {
		s.byOwner, s.owner = map[types.UID]map[PodKey]struct{}{}, map[types.UID]types.UID{}
	}
	if _, known := s.owner[key.UID]; !known && len(s.owner) >= maxSiblingWaits {
		return // the drain still polls
	}
	if s.byOwner[controller] == nil {
		s.byOwner[controller] = map[PodKey]struct{}{}
	}
	s.byOwner[controller][key] = struct{}{}
	s.owner[key.UID] = controller
}

// waited reports whether the pod was found waiting for its replacement.
func (s *siblings) waited(uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.owner[uid]
	return ok
}

// forget drops the pod (released or gone).
func (s *siblings) forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.said, uid)
	c, ok := s.owner[uid]
	if !ok {
		return
	}
	delete(s.owner, uid)
	for k := range s.byOwner[c] {
		if k.UID == uid {
			delete(s.byOwner[c], k)
		}
	}
	if len(s.byOwner[c]) == 0 {
		delete(s.byOwner, c)
		delete(s.nudged, c)
	}
}

// waiting returns the drains waiting on the controller of pod, when pod is a Ready sibling
// that is not deleting (a replacement, or a replica that recovered), and they were not nudged
// within drain.LookMin of now.
func (s *siblings) waiting(pod *corev1.Pod, now time.Time) []PodKey {
	if pod.DeletionTimestamp != nil {
		return nil
	}
	if _, ready := drain.ReadySince(pod); !ready {
		return nil
	}
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byOwner[ref.UID]) == 0 {
		return nil
	}
	if last, ok := s.nudged[ref.UID]; ok && now.Sub(last) < drain.LookMin && !now.Before(last) {
		return nil
	}
	if s.nudged == nil {
		s.nudged = map[types.UID]time.Time{}
	}
	s.nudged[ref.UID] = now // bounded by byOwner's controllers: forget drops it with the last
	keys := make([]PodKey, 0, len(s.byOwner[ref.UID]))
	for k := range s.byOwner[ref.UID] {
		keys = append(keys, k)
	}
	return keys
}

// note keeps track of a drain that waits for its owner or its endpoints: a Ready sibling's
// event brings its next look forward, and a Kubernetes Event DrainWaiting (through deps) says
// what it waits for whenever that changes (so `kubectl describe pod` shows it).
func (s *siblings) note(ctx context.Context, deps Deps, pod *corev1.Pod, d drain.Decision) {
	closed := drain.FactGatesClosed(d.Gates) // nil while grace or containers hold it: the usual looks
	if len(closed) == 0 {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && slices.Contains(closed, names.GateReplacement) {
		s.wait(PodKey{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}, ref.UID)
	}
	// Reported again when the set of closed gates changes, not their details (every look's).
	if deps.Events == nil || deps.DryRun || !s.report(pod.UID, strings.Join(closed, ",")) {
		return
	}
	msg := fmt.Sprintf("Containers stopped; the drain waits for %s, until %s at the latest", drain.ClosedGates(d.Gates), d.Deadline.Format(time.RFC3339))
	deps.event(ctx, pod, corev1.EventTypeNormal, names.EventDrainWaiting, msg)
}
