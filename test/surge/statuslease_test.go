//go:build e2e

package surge

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/status"

	"function/handlers/surge"
	"function/names"
)

// admissionControllerDown is what the SurgeRolloutSkipped Event says when VPA's admission
// controller's status Lease is not valid (handlers/surge/safe.go, CondAdmissionControllerDown).
const admissionControllerDown = "VPA's admission controller is not reporting itself alive"

// VPA's admission controller installed in its own namespace, as VPA's official chart installs
// it (the package's runs with NAMESPACE=vpa-system: its status Lease is there, none in
// kube-system). The function told so (admissionControllerStatusLeaseNamespace: vpa-system, with
// config/rbac-surge.yaml's Role there) finds it alive and runs the rollout; left at its default,
// kube-system, it takes the admission controller for down: no rollout, one SurgeRolloutSkipped
// Event that says so.
func TestSurgeRolloutFindsTheAdmissionControllerInItsNamespace(t *testing.T) {
	ctx := testContext(t, time.Minute)
	_, err := cp.Client.CoordinationV1().Leases(vpaNamespace).Get(ctx, status.AdmissionControllerStatusName, metav1.GetOptions{})
	require.NoError(t, err, "the admission controller's status Lease in %s", vpaNamespace)
	_, err = cp.Client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, status.AdmissionControllerStatusName, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "no status Lease in kube-system: %v", err)

	tests := []struct {
		name         string
		defaultLease bool
		rolls        bool
	}{
		{name: "told its namespace", rolls: true},
		{name: "the default, kube-system", defaultLease: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSurgeBed(t, func(o *bedOptions) { o.defaultLease = tt.defaultLease })
			first := b.deploy(1)
			deployed, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			recommended := time.Now()
			b.recommend("500m")

			if tt.rolls {
				_, st := b.waitEnded()
				require.Equal(t, surge.PhaseCompleted, st.Phase, "completed, not aborted: %s", st.Reason)
				t.Logf("recommendation to completed rollout %s", time.Since(recommended).Round(100*time.Millisecond))
				var pods []corev1.Pod
				require.Eventually(t, func() bool {
					pods = ownPods(b.ctx, b.ns, "web", false)
					return len(pods) == 1 && pods[0].Name != first[0].Name
				}, 30*time.Second, 100*time.Millisecond, "the old pod gone")
				assert.True(t, equality.Semantic.DeepEqual(requests("500m"), pods[0].Spec.Containers[0].Resources.Requests),
					"sized by VPA: %v", pods[0].Spec.Containers[0].Resources.Requests)
				assert.Empty(t, b.skippedAsDown(), "never taken for down")
				return
			}
			require.Eventually(t, func() bool { return len(b.skippedAsDown()) > 0 }, time.Minute, 200*time.Millisecond,
				"a SurgeRolloutSkipped Event: the admission controller is down")
			t.Logf("recommendation to the SurgeRolloutSkipped Event %s: %q", time.Since(recommended).Round(100*time.Millisecond), b.skippedAsDown())
			d, err := cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			st, err := surge.ReadState(d)
			require.NoError(t, err)
			assert.Equal(t, surge.CondAdmissionControllerDown, st.Skipped, "the condition recorded in the state")
			b.waitSweeps(2)
			d, err = cp.Client.AppsV1().Deployments(b.ns).Get(b.ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			assert.True(t, equality.Semantic.DeepEqual(deployed.Spec.Template, d.Spec.Template), "not restarted: the pod template as deployed")
			rss, err := cp.Client.AppsV1().ReplicaSets(b.ns).List(b.ctx, metav1.ListOptions{})
			require.NoError(t, err)
			assert.Len(t, rss.Items, 1, "no new ReplicaSet")
			assert.NotContains(t, b.eventReasons(), names.EventSurgeRolloutStarted)
			assert.Len(t, b.skippedAsDown(), 1, "said once")
		})
	}
}

// skippedAsDown are the messages of the SurgeRolloutSkipped Events on the Deployment that say
// VPA's admission controller is down.
func (b *surgeBed) skippedAsDown() []string {
	b.t.Helper()
	var down []string
	for _, m := range b.eventMessages(names.EventSurgeRolloutSkipped) {
		if strings.Contains(m, admissionControllerDown) {
			down = append(down, m)
		}
	}
	return down
}

// waitSweeps waits until the function has done n more sweeps.
func (b *surgeBed) waitSweeps(n int) {
	b.t.Helper()
	sweeps := func() int { return strings.Count(b.stack.Function.Output(), "surge rollouts: sweep done") }
	after := sweeps()
	require.Eventually(b.t, func() bool { return sweeps() >= after+n }, 30*time.Second, 200*time.Millisecond, "%d more sweeps", n)
}

// eventMessages are the messages of the Events on the Deployment with reason.
func (b *surgeBed) eventMessages(reason string) []string {
	b.t.Helper()
	events, err := cp.Client.CoreV1().Events(b.ns).List(b.ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Deployment,reason=" + reason})
	require.NoError(b.t, err)
	var msgs []string
	for _, e := range events.Items {
		msgs = append(msgs, strings.TrimSpace(e.Message))
	}
	return msgs
}
