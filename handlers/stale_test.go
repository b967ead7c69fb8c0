package handlers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
)

// An event older than this process's own last write to the pod (a burst of update events at
// pod start, a redelivery) costs no write and no read.
func TestStaleEventCostsNothing(t *testing.T) {
	pod := newPod(managed, deployment, func(p *corev1.Pod) { p.ResourceVersion = "1000" })
	f := newFixture(t, false, pod)
	f.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		written := pod.DeepCopy()
		written.ResourceVersion, written.Finalizers = "1003", []string{names.Finalizer}
		return true, written, nil
	})
	out, err := f.rec.Reconcile(context.Background(), pod)
	require.NoError(t, err)
	require.Equal(t, drain.AddFinalizer, out.Decision.Action)
	require.Equal(t, []string{"get pods", "patch pods", "get deployments"}, testutil.Verbs(f.client), "the write, and advice's read of the owner")

	tests := []struct {
		rv        string
		stale     bool
		wantVerbs []string
	}{
		{"1001", true, []string{}},  // the scheduler's update, before our write: skipped
		{"1002", true, []string{}},  // the kubelet's: skipped
		{"999", true, []string{}},   // older still
		{"1003", false, []string{}}, // our write's own echo: decided, nothing to do
		{"not-a-number", false, []string{"get pods", "patch pods", "get deployments"}}, // not comparable: decided as usual
	}
	for _, tt := range tests {
		t.Run(tt.rv, func(t *testing.T) {
			f.client.ClearActions()
			old := pod.DeepCopy()
			old.ResourceVersion = tt.rv
			if tt.rv == "1003" {
				old.Finalizers = []string{names.Finalizer}
			}
			out, err := f.rec.Reconcile(context.Background(), old)
			require.NoError(t, err)
			assert.Equal(t, tt.stale, strings.Contains(out.Decision.Reason, "stale"), "reason %q", out.Decision.Reason)
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(f.client))
		})
	}
}
