package drain

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ReadySince is the pod's Ready condition: whether it is True, and its last transition (when
// the pod became Ready, or last stopped being Ready; zero without a Ready condition, which is
// not Ready). The first Ready condition is the pod's, as the kubelet writes one
// (k8s.io/kubernetes pkg/api/v1/pod GetPodReadyCondition): the one rule of "is the pod Ready"
// for the drain, the surge policy and handlers.
func ReadySince(p *corev1.Pod) (time.Time, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time, c.Status == corev1.ConditionTrue
		}
	}
	return time.Time{}, false
}

// Ready reports whether the pod's Ready condition is True (ReadySince).
func Ready(p *corev1.Pod) bool {
	_, ready := ReadySince(p)
	return ready
}
