package handlers

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// writes remembers, per pod, the resourceVersion this process's last write produced, so an
// event that shows the pod as it was before that write (a burst of update events at pod start
// decided on one after another, a retried delivery) costs neither a write nor a read: the
// event of the written state, or a newer one, comes too. Comparing resourceVersions is what
// apimachinery's resourceversion.CompareResourceVersion allows for one object; an RV that is
// not a well-formed integer is never called stale. Bounded; per process.
type writes struct {
	mu sync.Mutex
	rv map[types.UID]string
}

const writesMax = 100000

func (w *writes) wrote(uid types.UID, rv string) {
	if rv == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rv == nil || len(w.rv) >= writesMax {
		w.rv = map[types.UID]string{}
	}
	w.rv[uid] = rv
}

func (w *writes) forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.rv, uid)
}

// stale reports whether pod is older than this process's last write to it.
func (w *writes) stale(pod *corev1.Pod) bool {
	w.mu.Lock()
	last, ok := w.rv[pod.UID]
	w.mu.Unlock()
	if !ok {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(pod.ResourceVersion, last)
	return err == nil && cmp < 0
}
