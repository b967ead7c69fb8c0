package handlers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// lastWrites (a bounded map) remembers, per pod, the resourceVersion this process's last write
// produced, so an event that shows the pod as it was before that write (a burst of update
// events at pod start decided on one after another, a retried delivery) costs neither a write
// nor a read: the event of the written state, or a newer one, comes too. Comparing
// resourceVersions is what apimachinery's resourceversion.CompareResourceVersion allows for one
// object; an RV that is not a well-formed integer is never called stale. Per process.

type lastWrites struct {
	bounded[types.UID, string, limit100k]
}

func (w *lastWrites) wrote(uid types.UID, rv string) {
	if rv != "" {
		w.put(uid, rv)
	}
}

func (w *lastWrites) forget(uid types.UID) { w.take(uid) }

// stale reports whether pod is older than this process's last write to it.
func (w *lastWrites) stale(pod *corev1.Pod) bool {
	last, ok := w.get(pod.UID)
	if !ok {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(pod.ResourceVersion, last)
	return err == nil && cmp < 0
}
