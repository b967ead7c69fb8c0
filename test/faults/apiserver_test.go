//go:build e2e

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	fhttp "knative.dev/func-go/http"

	"function"
	"function/config"
	"function/eventing"
	"function/internal/testutil"
	"function/names"
	"function/test/cluster"
)

const (
	// away is how long the API server is unreachable for the function.
	away = 20 * time.Second
	// recheckBackoffMax is the re-check workqueue's longest retry interval (2 s, 4 s, ... 30 s).
	recheckBackoffMax = 30 * time.Second
)

// TestFaultsAPIServerAway takes the API server away from the function (a TCP proxy that refuses
// connections) for 20 s while 10 drains fall due and the adapter keeps sending the pods' events:
// the function answers them 503, never 500, and does not panic; once the API server is back,
// every drain is released within the re-check backoff bound (30 s) + `slack`.
func TestFaultsAPIServerAway(t *testing.T) {
	// The function reaches the API server through a TCP proxy that passes TLS through; the
	// adapter (and this test) talk to it directly.
	server, _, err := rest.DefaultServerUrlFor(cp.Config)
	require.NoError(t, err)
	tp, err := cluster.StartTCPProxy(server.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tp.Close() })
	kubeconfig, err := cluster.KubeconfigVia(cp.Kubeconfig, "https://"+tp.Addr, t.TempDir())
	require.NoError(t, err)
	env := append(slices.Clone(functionEnv), "KUBECONFIG="+kubeconfig)
	s := cluster.StartStack(t, cp, bin, "Resource", env...)
	releases := cluster.WatchReleases(t, s, names.Finalizer)
	k := cluster.NewKubelet(cp.Client)
	t.Cleanup(k.Stop)

	podNames := createPods(t, s.Namespace, "web", 10)
	waitForFinalizers(t, s.Namespace, podNames, 30*time.Second)
	for _, name := range podNames {
		// After the grace period (3 s from the end of the eviction's second), so that the
		// containers' stop event calls for a release, which needs the live pod.
		k.SetLate(name, 1500*time.Millisecond)
	}
	evict(t, s.Namespace, k, podNames)
	waitStamped(t, s.Namespace, podNames)

	// The drains fall due (grace 3 s, the kubelet stops the containers 1.5 s after the
	// deletionTimestamp) while the API server is away; the adapter keeps sending the pods'
	// events.
	require.NoError(t, tp.Pause())
	paused := time.Now()
	<-time.After(away) // the length of the outage, not a synchronisation
	require.NoError(t, tp.Resume())
	resumed := time.Now()

	waitReleased(t, releases, podNames, recheckBackoffMax+15*time.Second)
	require.Empty(t, k.Failures())
	var worst time.Duration
	for _, name := range podNames {
		pod := getPod(t, s.Namespace, name)
		due := drainDue(t, pod, k)
		require.True(t, due.Before(resumed), "%s was due while the API server was away (due %s)", name, due.Format("15:04:05.000"))
		released, _ := releases.At(name)
		assert.True(t, released.After(resumed), "%s released at %s, while the API server was away", name, released.Format("15:04:05.000"))
		late := released.Sub(later(due, resumed))
		worst = max(worst, late)
		assert.LessOrEqual(t, late, recheckBackoffMax+slack, "%s released %s after the API server came back", name, late)
	}

	// Meanwhile the function answered 503 (the sender retries), never 500.
	var during, unavailable int
	for _, x := range s.Proxy.Exchanges() {
		assert.NotEqual(t, http.StatusInternalServerError, x.Status, "%s %s answered 500: %s", x.Type, x.Subject, x.ReplyBody)
		if x.At.Before(paused) || x.At.After(resumed) {
			continue
		}
		during++
		if x.Status == http.StatusServiceUnavailable {
			unavailable++
			assert.Contains(t, string(x.ReplyBody), "unavailable")
		}
	}
	assert.NotZero(t, unavailable, "the function answered 503 to the events sent while the API server was away")
	assert.NotContains(t, s.Function.Output(), "panic")
	finishAll(t, s.Namespace, podNames)
	t.Logf("API server away for %s: %d events sent meanwhile, %d answered 503; %d drains released after it came back, the last %s after max(due, back) (bound %s)",
		away, during, unavailable, len(podNames), worst.Round(time.Millisecond), recheckBackoffMax+slack)
}

// eventRequest is the request ApiServerSource sends for a pod added: Resource mode (the pod
// as the data) or Reference mode (a reference to it).
func eventRequest(t *testing.T, url string, pod *corev1.Pod, reference bool, id int) *http.Request {
	t.Helper()
	typ := "dev.knative.apiserver.resource.add"
	p := pod.DeepCopy()
	p.APIVersion, p.Kind = "v1", "Pod"
	body, err := json.Marshal(p)
	require.NoError(t, err)
	if reference {
		typ = "dev.knative.apiserver.ref.add"
		body, err = json.Marshal(map[string]string{"kind": "Pod", "namespace": pod.Namespace, "name": pod.Name, "apiVersion": "v1"})
		require.NoError(t, err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": fmt.Sprintf("slow-%d", id), "Ce-Source": cp.Config.Host, "Ce-Type": typ,
		"Ce-Subject": eventing.PodPath(pod.Namespace, pod.Name), "Ce-Apiversion": "v1", "Ce-Kind": "Pod",
		"Ce-Name": pod.Name, "Ce-Namespace": pod.Namespace, "Content-Type": "application/json",
	} {
		req.Header.Set(k, v)
	}
	return req
}

type answer struct {
	status    int
	replyType string
	took      time.Duration
	err       error
}

// TestFaultsSlowAPIServer runs the function in this process against an API server that takes
// 2 s longer to answer anything, and posts 50 events, 8 at a time: each is answered (200 or
// 503) within the function's 25 s bound on an event, and once the load is over the process has
// no more goroutines than before it, give or take 20.
func TestFaultsSlowAPIServer(t *testing.T) {
	const (
		events, concurrency = 50, 8
		apiDelay            = 2 * time.Second
		eventBound          = 25 * time.Second // the function's bound on one event
		clientTimeout       = 30 * time.Second
	)
	ctx := context.Background()
	ns := cp.Namespace(t, "slow")
	api, err := cluster.StartAPIProxy(cp.Config)
	require.NoError(t, err)
	t.Cleanup(func() { _ = api.Close() })
	api.SetDelay(apiDelay)

	// The function in this process, so its goroutines can be counted, served by func-go's http
	// runtime; its client goes through the slow proxy.
	toAPI := &http.Transport{MaxIdleConnsPerHost: 100}
	cfg := api.RESTConfig()
	cfg.Transport, cfg.QPS, cfg.Burst, cfg.UserAgent = toAPI, 50, 100, names.Component
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	logs := &testutil.SyncBuffer{}
	f := function.New(function.WithClient(client),
		function.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, f.Start(ctx, map[string]string{
		config.KeyConfigDir: t.TempDir(), config.KeyGracePeriodSeconds: "3", config.KeyDrainTimeoutSeconds: "30",
		config.KeySweepIntervalSeconds: "900", config.KeyNamespaceSelector: `{"include":["` + ns + `"]}`,
		// Bare pods, as cluster.BarePods.
		config.KeyWorkloadDefaults: `{"Pod":{"manage":true}}`, config.KeyHoldOn: "all",
	}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("function logs (tail):\n%s", tail(logs.String(), 60))
		}
		_ = f.Stop(context.Background())
	})
	srv := httptest.NewServer(fhttp.New(f).Handler)
	t.Cleanup(srv.Close)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"msg":"sweep done"`) },
		20*time.Second, 50*time.Millisecond, "the start sweep ends")

	pods, err := cluster.CreateRunningPods(ctx, cp.Client, ns, "web", events, true)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Later functions would find these pods holding the finalizer outside their namespace
		// selection, and release them (reason unmanaged): take them away first.
		for _, pod := range pods {
			_, _ = cp.Client.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
			_ = cp.Client.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
	})
	toFunction := &http.Transport{MaxIdleConnsPerHost: concurrency}
	hc := &http.Client{Timeout: clientTimeout, Transport: toFunction}
	closeIdle := func() {
		toFunction.CloseIdleConnections()
		toAPI.CloseIdleConnections()
		api.CloseIdleConnections()
	}
	closeIdle()
	baseline := runtime.NumGoroutine()

	// 50 events, 8 at a time, half of them in Reference mode (a GET, then the PATCH).
	reqs := make([]*http.Request, events)
	for i, pod := range pods {
		reqs[i] = eventRequest(t, srv.URL, pod, i%2 == 1, i)
	}
	answers := make([]answer, events)
	work := make(chan int)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for i := range work {
				start := time.Now()
				resp, err := hc.Do(reqs[i])
				a := answer{err: err}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					a.status, a.replyType = resp.StatusCode, resp.Header.Get("Ce-Type")
				}
				a.took = time.Since(start)
				answers[i] = a
			}
		})
	}
	for i := range events {
		work <- i
	}
	close(work)
	wg.Wait()

	var slowest time.Duration
	counts := map[int]int{}
	for i, a := range answers {
		name := pods[i].Name
		if !assert.NoError(t, a.err, "%s: the request ended without an answer", name) {
			continue
		}
		counts[a.status]++
		slowest = max(slowest, a.took)
		assert.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, a.status, name)
		assert.LessOrEqual(t, a.took, eventBound+slack, "%s answered after %s", name, a.took)
		if a.status == http.StatusOK {
			assert.Equal(t, names.ReplyFinalizerAdded, a.replyType, name)
			assert.True(t, hasFinalizer(getPod(t, ns, name)), "%s answered 200 but has no finalizer", name)
		}
	}

	closeIdle()
	var after int
	if !assert.Eventually(t, func() bool {
		closeIdle()
		after = runtime.NumGoroutine()
		return after <= baseline+20
	}, 30*time.Second, 100*time.Millisecond, "goroutines back to within 20 of the %d before the load", baseline) {
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Logf("goroutines after the load:\n%s", stacks.String())
	}
	t.Logf("API answers delayed %s: %d events, %d at a time: answers by status %v, slowest %s (bound %s); goroutines %d before, %d after",
		apiDelay, events, concurrency, counts, slowest.Round(time.Millisecond), eventBound, baseline, after)
}
