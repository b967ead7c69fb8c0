//go:build e2e

package faults

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/names"
	"function/test/cluster"
)

// patchKind names what a function's JSON patch of a pod did: "add-finalizer", "stamp",
// "remove-finalizer", or "other".
func patchKind(t *testing.T, body []byte) string {
	t.Helper()
	var ops []struct {
		Op   string `json:"op"`
		Path string `json:"path"`
	}
	require.NoError(t, json.Unmarshal(body, &ops), "a JSON patch: %s", body)
	stamp := "/metadata/annotations/" + strings.ReplaceAll(names.AnnotationDrainStarted, "/", "~1")
	for _, o := range ops {
		switch {
		case o.Op == "test":
		case o.Op == "add" && (o.Path == "/metadata/finalizers" || o.Path == "/metadata/finalizers/-"):
			return "add-finalizer"
		case o.Op == "add" && o.Path == stamp:
			return "stamp"
		case o.Op == "remove" && strings.HasPrefix(o.Path, "/metadata/finalizers/"):
			return "remove-finalizer"
		}
	}
	return "other"
}

func sweepsDone(output string) int {
	return strings.Count(output, `"message":"sweep done"`)
}

// TestFaultsThreeReplicas runs three function processes that all receive every event (a
// fan-out proxy between the adapter and them) and all sweep: 20 pods through add, eviction and
// drain. Each pod must be written exactly three times in all (finalizer added, drain stamped,
// finalizer removed: PATCHes counted at the API server's door), carry one DrainStarted and one
// DrainCompleted Event, and no replica may answer an event with a 5xx: the conflicts between
// them are handled by the guards, not surfaced.
func TestFaultsThreeReplicas(t *testing.T) {
	ctx := context.Background()
	// The replicas reach the API server through a counting proxy: they are separate processes,
	// so their writes are counted where they arrive.
	api, err := cluster.StartAPIProxy(cp.Config)
	require.NoError(t, err)
	t.Cleanup(func() { _ = api.Close() })
	kubeconfig, err := api.Kubeconfig(t.TempDir())
	require.NoError(t, err)
	env := append(slices.Clone(functionEnv), "KUBECONFIG="+kubeconfig) // wins over the stack's own

	s := cluster.StartStack(t, cp, bin, "Resource", env...)
	replicas := []*cluster.Function{s.Function}
	for range 2 {
		addr, err := cluster.FreeAddr()
		require.NoError(t, err)
		fn, err := cluster.StartFunction(ctx, bin, addr, cp.Kubeconfig, env...)
		require.NoError(t, err)
		replicas = append(replicas, fn)
	}
	t.Cleanup(func() {
		for i, fn := range replicas[1:] {
			if t.Failed() {
				t.Logf("replica %d output (tail):\n%s", i+1, tail(fn.Output(), 40))
			}
			_ = fn.Stop()
		}
	})
	urls := make([]string, len(replicas))
	for i, fn := range replicas {
		urls[i] = fn.URL
	}
	fan, err := cluster.StartFanout(urls...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fan.Close() })
	s.Proxy.SetTarget(fan.URL) // from now on every event reaches all three
	releases := cluster.WatchReleases(t, s, names.Finalizer)
	k := cluster.NewKubelet(cp.Client)
	t.Cleanup(k.Stop)

	podNames := createPods(t, s.Namespace, "web", 20)
	waitForFinalizers(t, s.Namespace, podNames, 30*time.Second)
	// The containers stop 0 to 5.7 s after the grace period, so the releases spread over the
	// replicas' next sweeps (10 s after they started): events, re-checks and sweeps of three
	// processes race for the same pods.
	for i, name := range podNames {
		k.SetLate(name, time.Duration(i)*300*time.Millisecond)
	}
	evict(t, s.Namespace, k, podNames)
	waitStamped(t, s.Namespace, podNames)
	waitReleased(t, releases, podNames, 60*time.Second)
	require.Empty(t, k.Failures())

	// Every replica sweeps once more after the last release: the sweeps, too, must find
	// nothing left to write.
	swept := make([]int, len(replicas))
	for i, fn := range replicas {
		swept[i] = sweepsDone(fn.Output())
	}
	require.Eventually(t, func() bool {
		for i, fn := range replicas {
			if sweepsDone(fn.Output()) <= swept[i] {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "every replica sweeps again (sweepIntervalSeconds=10)")

	// Writes per pod, counted at the API server's door: exactly one add, one stamp, one removal.
	podPath := "/api/v1/namespaces/" + s.Namespace + "/pods/"
	writes := map[string]map[string]int{} // pod -> kind -> successful PATCHes
	statuses := map[int]int{}             // status -> PATCHes of this namespace's pods
	for _, r := range api.Requests() {
		name, ok := strings.CutPrefix(r.Path, podPath)
		if r.Method != http.MethodPatch || !ok || strings.Contains(name, "/") {
			continue
		}
		statuses[r.Status]++
		if r.Status < 200 || r.Status > 299 {
			continue
		}
		if writes[name] == nil {
			writes[name] = map[string]int{}
		}
		writes[name][patchKind(t, r.Body)]++
	}
	worst := 0
	for _, name := range podNames {
		total := 0
		for _, n := range writes[name] {
			total += n
		}
		worst = max(worst, total)
		assert.LessOrEqual(t, total, 3, "successful PATCHes of %s: %v", name, writes[name])
		assert.Equal(t, map[string]int{"add-finalizer": 1, "stamp": 1, "remove-finalizer": 1}, writes[name],
			"%s: finalizer added once, drain stamped once, released once", name)
	}

	// No replica surfaced a conflict (or anything else) as a server error.
	var served, failed int
	for _, x := range fan.Exchanges() {
		for i, st := range x.Statuses {
			served++
			if st >= 500 {
				failed++
				assert.Failf(t, "a replica answered an event with a server error", "replica %d: %d for %s %s", i, st, x.Type, x.Subject)
			}
		}
	}
	require.NotZero(t, served)

	// One Kubernetes Event of each milestone per pod, whichever replica made it.
	for _, name := range podNames {
		pod := getPod(t, s.Namespace, name)
		var got []string
		var listErr error
		assert.Eventually(t, func() bool {
			got, listErr = cluster.EventReasons(ctx, cp.Client, s.Namespace, string(pod.UID))
			slices.Sort(got)
			return listErr == nil && slices.Equal(got, []string{"Normal/DrainCompleted", "Normal/DrainStarted"})
		}, 10*time.Second, 50*time.Millisecond, "events of %s: want DrainStarted and DrainCompleted once each, got %v (%v)", name, &got, &listErr)
	}
	finishAll(t, s.Namespace, podNames)

	t.Logf("3 replicas, %d pods: at most %d successful writes per pod lifecycle; PATCHes by status %v; %d answers by the replicas, %d of them 5xx",
		len(podNames), worst, statuses, served, failed)
	for i, fn := range replicas {
		t.Logf("replica %d: %d sweeps, %d guard failures re-read", i, sweepsDone(fn.Output()),
			strings.Count(fn.Output(), "live pod differs from the event"))
	}
}
