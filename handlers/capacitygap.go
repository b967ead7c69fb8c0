package handlers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"function/config"
	"function/handlers/drain"
)

// openGaps (bounded.go) remembers, per controller, the evictions whose capacity gap is still
// open: released before their owner was back at its desired Ready replicas (a StatefulSet's
// replacement only starts once the old pod is gone). A Ready sibling's event closes them. Per
// replica and only an observation: a restart loses them.
type openGap struct {
	kind      config.Kind
	namespace string
	evicted   time.Time
}

// openGaps: per controller, the evictions whose capacity gap is still open.
type openGaps struct {
	bounded[types.UID, []openGap, limit10k]
}

// gapMeter measures the capacity gaps of released evictions (record, close).
type gapMeter struct{ open openGaps }

func (g *openGaps) add(controller types.UID, gap openGap) {
	g.update(controller, func(pending []openGap, _ bool) []openGap { return append(pending, gap) })
}

func (g *openGaps) has(controller types.UID) bool {
	pending, _ := g.get(controller)
	return len(pending) > 0
}

// record measures the capacity gap of a released eviction: at once when the release already
// saw the owner back at its desired Ready replicas (the replacement gate), else once a Ready
// sibling shows it (close).
func (g *gapMeter) record(ctx context.Context, m Metrics, pod *corev1.Pod, d drain.Decision, facts drain.Facts) {
	if !d.Evicted || d.StartedFrom != drain.StartEviction || !d.Kind.Spec().GapMeasured {
		return
	}
	// A gap is measured between two API times of whole seconds (the eviction's and the
	// replacement's Ready), so from the eviction's second as the API shows it: the drain is
	// timed from the latest moment of that second (never early), the gap is not.
	evicted := d.Started.Truncate(time.Second)
	if rep := facts.Replicas; rep != nil && rep.Ready >= rep.Desired && !rep.ReadyAt.Before(evicted) {
		m.CapacityGap(ctx, string(d.Kind), pod.Namespace, rep.ReadyAt.Sub(evicted).Seconds())
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		g.open.add(ref.UID, openGap{kind: d.Kind, namespace: pod.Namespace, evicted: evicted})
	}
}

// close is called with a Ready pod that is not deleting: when its controller has open gaps and
// its owner is back at its desired Ready replicas (read with facts), they are recorded.
func (g *gapMeter) close(ctx context.Context, m Metrics, facts factReader, pod *corev1.Pod) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || !g.open.has(ref.UID) {
		return
	}
	var f drain.Facts
	facts.gather(ctx, pod, drain.NeedReplicas, &f)
	rep := f.Replicas
	if rep == nil || rep.Ready < rep.Desired {
		return
	}
	pending, _ := g.open.take(ref.UID)
	for _, gap := range pending {
		if !rep.ReadyAt.Before(gap.evicted) {
			m.CapacityGap(ctx, string(gap.kind), gap.namespace, rep.ReadyAt.Sub(gap.evicted).Seconds())
		}
	}
}
