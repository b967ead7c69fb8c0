//go:build e2e

package surge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"function/eventing"
	"function/handlers/surge"
	"function/names"
	"function/test/cluster"
)

// metricsText is the function's /metrics page.
func (b *surgeBed) metricsText() string {
	b.t.Helper()
	resp, err := http.Get(strings.TrimSuffix(b.stack.Function.URL, "/") + "/metrics")
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return string(body)
}

// The VPA's update is the trigger, as eventing/knative.yaml wires it: the real adapter's event
// about the VerticalPodAutoscaler starts the rollout (answered with a rollout.started reply)
// with no sweep due for 10 minutes; the replica follows the rollout to its end, with a capacity
// gap of 0 in the state and the metric.
func TestSurgeRolloutStartsOnTheVPAEvent(t *testing.T) {
	b := newSurgeBed(t, func(o *bedOptions) { o.vpaEvents, o.env = true, []string{"sweepIntervalSeconds=600"} })
	b.deploy(1)
	ready := watchReady(b.ctx, t, b.ns, "web")
	vpaPath := eventing.ObjectPath(eventing.ObjectVPA, b.ns, "web")
	recommended := time.Now()
	b.recommend("500m")

	var started cluster.Exchange
	require.Eventually(t, func() bool {
		for _, x := range b.stack.Proxy.Replies(names.ReplyRolloutStarted, vpaPath) {
			started = x
			return true
		}
		return false
	}, time.Minute, 100*time.Millisecond, "the VPA's event starts the rollout")
	assert.Equal(t, "dev.knative.apiserver.resource.update", started.Type)
	assert.Equal(t, "VerticalPodAutoscaler", started.Header.Get("Ce-Kind"), "as the adapter sends it")
	var data eventing.RolloutData
	require.NoError(t, json.Unmarshal(started.ReplyBody, &data))
	assert.Equal(t, "web", data.Name)
	assert.True(t, equality.Semantic.DeepEqual(map[string]corev1.ResourceList{"app": requests("500m")}, data.Requests), "the prediction: %v", data.Requests)
	if req, err := http.NewRequest(http.MethodPost, "/", strings.NewReader(string(started.Body))); err == nil {
		req.Header = started.Header
		dump, _ := httputil.DumpRequest(req, true)
		t.Logf("the adapter's VPA event (recommendation to reply %s):\n%s", started.At.Sub(recommended).Round(time.Millisecond), dump)
	}

	done, st := b.waitEnded()
	took := time.Since(recommended)
	require.Equal(t, surge.PhaseCompleted, st.Phase, "completed, not aborted: %s", st.Reason)
	t.Logf("recommendation to completed rollout %s, no sweep due; fewest Ready pods %d; capacity gap in the state %d",
		took.Round(100*time.Millisecond), ready.Min(), st.Gap)
	assert.Equal(t, 1, ready.Min(), "the single replica stayed served")
	assert.Zero(t, st.Gap, "no capacity gap")
	metrics := b.metricsText()
	assert.Contains(t, metrics, `vpagracefuldrain_surge_rollout_capacity_gap_bucket{outcome="completed",le="0"} 1`)
	assert.Contains(t, metrics, `vpagracefuldrain_surge_rollout_capacity_gap_count{outcome="completed"} 1`)
	b.noSecondRolloutAfter(done, 10*time.Second)
}
