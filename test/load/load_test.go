//go:build e2e

package load_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/test/cluster"
	"function/test/load"
	"function/test/samples"
)

// The receive path, through the same main kn func's http scaffolding builds
// (cmd/vpa-graceful-drain), served over loopback in dry-run (no cluster).
//
// VPA_DRAIN_BINARY runs these tests against another build of the function instead (for
// example an older commit's, to compare).

const concurrency = 32

// answerWithin is the longest any event may wait for its answer.
const answerWithin = time.Second

func binary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("VPA_DRAIN_BINARY"); bin != "" {
		return bin
	}
	bin, err := cluster.BuildFunction(t.TempDir())
	require.NoError(t, err)
	return bin
}

// serve starts the function without a cluster and returns its URL.
func serve(t *testing.T) string {
	t.Helper()
	addr, err := cluster.FreeAddr()
	require.NoError(t, err)
	home := t.TempDir() // no ~/.kube/config: dry-run
	p, err := cluster.StartProcess("function", binary(t), nil, []string{
		"LISTEN_ADDRESS=" + addr, "HOME=" + home, "KUBECONFIG=" + filepath.Join(home, "none"),
		"CONFIG_DIR=" + filepath.Join(home, "no-config"), "LOG_LEVEL=error",
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("function output:\n%s", p.Output())
		}
		_ = p.Stop()
	})
	require.NoError(t, cluster.WaitHTTP(context.Background(), p, "http://"+addr+"/health/readiness", 60*time.Second))
	return "http://" + addr + "/"
}

func sample(t *testing.T) load.Request {
	t.Helper()
	s, err := samples.Read(samples.Path("managed-pod-added.http"))
	require.NoError(t, err)
	return load.Request{Header: s.Header, Body: s.Body}
}

// healthy asserts that url's health endpoints answer 200.
func healthy(t *testing.T, url string) {
	t.Helper()
	for _, path := range []string{"health/liveness", "health/readiness"} {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

// A burst of concurrent events, a third of them cancelled by the sender at random moments
// (before, while and after the body is sent), must leave every later event answered at once.
// With the CloudEvents SDK's shared receive channel (cloudevents/sdk-go#1224) a cancelled
// request left each later request waiting for the next one.
func TestNoEventWaitsForAnother(t *testing.T) {
	url, req := serve(t), sample(t)
	client := load.NewClient(concurrency)

	burst, err := load.Run(context.Background(), client, load.Options{
		URL: url, Request: req, Concurrency: concurrency, Total: 20000,
		CancelShare: 0.3, CancelWithin: 3 * time.Millisecond, Timeout: 5 * time.Second,
	})
	require.NoError(t, err)
	t.Logf("burst with cancellations: %s", burst)
	assert.Empty(t, burst.Failures, "every request not cancelled by its sender is answered")
	assert.Greater(t, burst.Cancelled, 1000, "the sender did cancel requests in flight")
	assert.Equal(t, map[int]int{http.StatusOK: burst.Answered}, burst.Statuses)

	for i := range 100 {
		one, err := load.Run(context.Background(), client, load.Options{
			URL: url, Request: req, Concurrency: 1, Total: 1, Timeout: answerWithin,
		})
		require.NoError(t, err)
		require.Equal(t, 1, one.Answered, "sequential event %d after the burst got no answer within %s: %v", i, answerWithin, one.Failures)
		require.Equal(t, map[int]int{http.StatusOK: 1}, one.Statuses, "sequential event %d", i)
	}
	healthy(t, url)
}

// At least 50,000 events at concurrency 32: every one answered 200, none later than 1 s.
func TestEveryEventAnsweredUnderLoad(t *testing.T) {
	const total = 50000
	url, req := serve(t), sample(t)
	res, err := load.Run(context.Background(), load.NewClient(concurrency), load.Options{
		URL: url, Request: req, Concurrency: concurrency, Total: total, Timeout: 5 * time.Second,
	})
	require.NoError(t, err)
	t.Logf("load: %s", res)
	assert.Equal(t, total, res.Sent)
	assert.Empty(t, res.Failures)
	assert.Equal(t, map[int]int{http.StatusOK: total}, res.Statuses)
	assert.Less(t, res.Max(), answerWithin, "the slowest answer")
	healthy(t, url)
}
