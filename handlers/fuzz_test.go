package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers"
	"function/handlers/drain"
)

// FuzzReconcileEventCopy: whatever an event's copy of a pod says, a decision that is applied
// is the decision on the live pod (read, and guarded on its resourceVersion); an event whose
// copy differs from the live pod never writes what the live pod does not call for.
func FuzzReconcileEventCopy(f *testing.F) {
	const sec = int64(time.Second / time.Millisecond)
	draining := uint16(fzManaged | fzOurs | fzDeleting | fzDeletionGrace | fzStarted | fzStartedAt)
	f.Add(draining, uint16(fzManaged), uint8(1), uint8(1+4), -10*sec, 20*sec)
	f.Add(draining, draining, uint8(1), uint8(1+4), -40*sec, -10*sec)
	f.Add(uint16(fzManaged), uint16(fzManaged|fzOurs), uint8(1), uint8(1), int64(0), int64(0))
	f.Add(uint16(fzManaged|fzOurs), uint16(0), uint8(1), uint8(1), int64(0), int64(0))
	f.Add(uint16(0), uint16(fzManaged), uint8(1), uint8(1), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, liveFlags, eventFlags uint16, liveContainers, eventContainers uint8, startedOff, deletionOff int64) {
		build := func(flags uint16, containers uint8, rv string) *corev1.Pod {
			p := fuzzPod(flags, "true", "", "", "", "", startedOff, 0, deletionOff, 30, 0, 0, containers, 2)
			p.ResourceVersion = rv
			return p
		}
		live, forged := build(liveFlags, liveContainers, "100"), build(eventFlags, eventContainers, "99")
		fx := newFixture(t, false, live.DeepCopy())
		out, err := fx.rec.Reconcile(context.Background(), forged)
		if err != nil {
			require.ErrorIs(t, err, handlers.ErrConcurrentWriter, "only the guard may refuse")
			return
		}
		if !out.Applied {
			got, err := fx.client.CoreV1().Pods(live.Namespace).Get(context.Background(), live.Name, metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, live.Finalizers, got.Finalizers, "not applied: finalizers unchanged")
			require.Equal(t, live.Annotations, got.Annotations, "not applied: annotations unchanged")
			return
		}
		want := drain.Decide(live, fx.rec.CurrentConfig(), now)
		require.Equal(t, want.Action, out.Decision.Action, "applied %s, the live pod calls for %s (%s)", out.Decision.Action, want.Action, want.Reason)
		require.Equal(t, live.ResourceVersion, out.Pod.ResourceVersion, "decided on the live pod")
		require.Equal(t, "get", fx.client.Actions()[0].GetVerb(), "read before the write")
	})
}
