//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	fhttp "knative.dev/func-go/http"

	"function"
	"function/config"
	"function/handlers"
	"function/handlers/drain"
	"function/names"
	"function/test/cluster"
)

// An event is a hint, never the truth: a forged copy of a pod, whatever field it changes,
// posted over real HTTP to the function (func-go's runtime, as kn func serves it) on a real
// API server, leaves the live pod as it was, writes no Kubernetes Event and costs at most one
// read. For each decision input (owner references, conditions and their times, deletion fields,
// container states, annotations, labels, finalizers), a forged copy of a held (draining) pod, of
// a running managed pod and of an unmanaged pod.
func TestForgedEventsWriteNothing(t *testing.T) {
	f := newFixture(t, testConfig())
	client, reqs, err := cluster.CountingClient(cp.Config)
	require.NoError(t, err)
	fn := function.New(function.WithClient(client), function.WithLogger(slog.New(slog.DiscardHandler)), function.WithoutSweeps())
	require.NoError(t, fn.Start(context.Background(), map[string]string{
		config.KeyConfigDir: t.TempDir(), config.KeyWorkloadDefaults: `{"Pod":{"manage":true}}`, config.KeyHoldOn: "all",
		config.KeyGracePeriodSeconds: "300", config.KeyDrainTimeoutSeconds: "600",
	}))
	t.Cleanup(func() { _ = fn.Stop(context.Background()) })
	srv := httptest.NewServer(fhttp.New(fn).Handler)
	t.Cleanup(srv.Close)

	// The live pods: held (evicted through the real Eviction API, its drain stamped, its grace
	// period running), running (managed, finalizer added) and unmanaged.
	held := f.managedAndEvicted("held")
	running := f.create("running", true)
	require.Equal(t, drain.AddFinalizer, f.reconcile(running).Decision.Action)
	running = f.get("running")
	unmanaged := f.create("unmanaged", false)

	hourAgo := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	forgeries := []struct {
		name  string
		forge func(p *corev1.Pod)
	}{
		{"owner references: a StatefulSet", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "0b5e1c1e-9d6b-4c8e-9a37-1c3f0f0c2a11", Controller: ptr.To(true)}}
		}},
		{"owner references: a DaemonSet (not managed)", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "6f1d7d36-1c2b-4a0e-8f77-3a0f4b0b9e22", Controller: ptr.To(true)}}
		}},
		{"conditions: evicted an hour ago", func(p *corev1.Pod) {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				Reason: drain.ReasonEvictionByEvictionAPI, LastTransitionTime: hourAgo})
		}},
		{"deletion: requested an hour ago, grace 0", func(p *corev1.Pod) {
			p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &hourAgo, ptr.To[int64](0)
		}},
		{"containers: all terminated, phase Succeeded", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodSucceeded
			for i := range p.Status.ContainerStatuses {
				p.Status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
			}
		}},
		{"annotations: opted out", func(p *corev1.Pod) { setAnnotation(p, "vpa-managed", "false") }},
		{"annotations: opted in", func(p *corev1.Pod) { setAnnotation(p, "vpa-managed", "true") }},
		{"annotations: drain started and due an hour ago", func(p *corev1.Pod) {
			setAnnotation(p, names.AnnotationDrainStarted, hourAgo.UTC().Format(time.RFC3339))
			setAnnotation(p, names.AnnotationDrainDeadline, hourAgo.UTC().Format(time.RFC3339))
		}},
		{"annotations: grace 0, timeout 1 s", func(p *corev1.Pod) {
			setAnnotation(p, names.AnnotationGracePeriod, "0")
			setAnnotation(p, names.AnnotationDrainTimeout, "1")
		}},
		{"labels: changed", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }},
		{"finalizers: ours removed", func(p *corev1.Pod) { p.Finalizers = nil }},
		{"finalizers: ours added", func(p *corev1.Pod) { p.Finalizers = []string{names.Finalizer} }},
	}
	for _, base := range []*corev1.Pod{held, running, unmanaged} {
		for _, tt := range forgeries {
			t.Run(base.Name+"/"+tt.name, func(t *testing.T) {
				before := f.get(base.Name)
				events := f.events(before)
				forged := before.DeepCopy()
				tt.forge(forged)
				reqs.List()

				status, body := postPodEvent(t, srv.URL, forged)
				assert.Less(t, status, 300, "a well-formed event is answered: %s", body)
				// Requests for this pod: at most one read. Another pod's re-check (the held
				// pod's, brought forward by an earlier row's forged copy) may run meanwhile; it
				// reads that pod, and nothing writes.
				calls := reqs.Paths()
				own := "GET /api/v1/namespaces/" + base.Namespace + "/pods/" + base.Name
				reads := 0
				for _, c := range calls {
					assert.True(t, strings.HasPrefix(c, "GET /api/v1/namespaces/"+base.Namespace+"/pods/"), "reads of pods only: %v", calls)
					if c == own {
						reads++
					}
				}
				assert.LessOrEqual(t, reads, 1, "at most one read of the pod: %v", calls)
				after := f.get(base.Name)
				assert.Equal(t, before.ResourceVersion, after.ResourceVersion, "the live pod is unchanged")
				assert.Equal(t, before.Finalizers, after.Finalizers)
				assert.Equal(t, before.Annotations, after.Annotations)
				assert.Equal(t, events, f.events(after), "no Kubernetes Event")
			})
		}
	}

	t.Run("a pod that does not exist", func(t *testing.T) {
		ghost := running.DeepCopy() // managed, no finalizer: its decision would write
		ghost.Name, ghost.UID, ghost.Finalizers = "ghost", "3d6f0c8e-2b1a-4e5f-9c7d-8a9b0c1d2e3f", nil
		reqs.List()
		status, body := postPodEvent(t, srv.URL, ghost)
		assert.Less(t, status, 300, body)
		assert.Equal(t, []string{"GET pods"}, reqs.List(), "one read (404), no write")
	})
}

// podEventRequest is pod as the ApiServerSource adapter sends an update (binary mode), to url.
func podEventRequest(t *testing.T, url string, pod *corev1.Pod) *http.Request {
	t.Helper()
	pod = pod.DeepCopy()
	pod.APIVersion, pod.Kind = "v1", "Pod"
	body, err := json.Marshal(pod)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "forged-" + pod.Name, "Ce-Source": "https://127.0.0.1:6443",
		"Ce-Type": "dev.knative.apiserver.resource.update", "Ce-Subject": "/apis/v1/namespaces/" + pod.Namespace + "/pods/" + pod.Name,
		"Ce-Kind": "Pod", "Ce-Apiversion": "v1", "Ce-Name": pod.Name, "Ce-Namespace": pod.Namespace, "Content-Type": "application/json",
	} {
		req.Header.Set(k, v)
	}
	return req
}

func setAnnotation(p *corev1.Pod, k, v string) {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[k] = v
}

// postPodEvent posts pod as the ApiServerSource adapter sends an update (binary mode).
func postPodEvent(t *testing.T, url string, pod *corev1.Pod) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(podEventRequest(t, url, pod))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// A replica whose clock is 10 minutes ahead times a drain on the API server's clock (learned
// from the real API server's Date headers): the grace period still runs, where its own clock
// would have released the pod at once as timed out.
func TestIntegrationDrainTimedOnTheAPIServersClock(t *testing.T) {
	f := newFixture(t, testConfig())
	held := f.managedAndEvicted("skewed")

	local := clocktesting.NewFakeClock(time.Now().Add(10 * time.Minute))
	server := &handlers.ServerClock{Local: local}
	cfg := rest.CopyConfig(cp.Config)
	cfg.Wrap(server.WrapTransport)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	rec := handlers.NewReconciler(handlers.Deps{Client: client, Clock: local, Log: slog.New(slog.DiscardHandler)}.UseServerClock(server), f.cfg)
	t.Cleanup(rec.Stop)

	live, err := client.CoreV1().Pods(f.ns).Get(f.ctx, held.Name, metav1.GetOptions{}) // one answer teaches the offset
	require.NoError(t, err)
	assert.InDelta(t, -10*time.Minute.Seconds(), server.Offset().Seconds(), 1.5, "offset learned from one answer")

	out, err := rec.ReconcileLive(f.ctx, live)
	require.NoError(t, err)
	assert.Equal(t, drain.Wait, out.Decision.Action, "the grace period runs on the API server's clock: %s", out.Decision.Reason)
	assert.Equal(t, "grace period", out.Decision.Reason)
	assert.Equal(t, []string{names.Finalizer}, f.get(held.Name).Finalizers)

	assert.Equal(t, names.ReasonTimeout, drain.Decide(live, f.cfg, local.Now()).Reason, "on its own clock the drain would be over")
}
