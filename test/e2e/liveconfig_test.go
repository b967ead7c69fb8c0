//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"function/config"
	"function/config/live"
	"function/handlers"
	"function/names"
	"function/test/cluster"
)

// createConfigMap creates the function's ConfigMap in a new namespace and returns its
// CONFIG_MAP reference. The function runs as its own ServiceAccount, whose Role for its
// ConfigMap and sweep Lease config/rbac.yaml binds in vpa-graceful-drain only: the Role is bound
// in the new namespace too, as a deployer who keeps the ConfigMap elsewhere would.
func createConfigMap(t *testing.T, data map[string]string) (*corev1.ConfigMap, string) {
	t.Helper()
	ns := cp.Namespace(t, "cfg")
	require.NoError(t, cp.BindConfigRole(context.Background(), ns))
	cm, err := cp.Client.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain", Namespace: ns}, Data: data}, metav1.CreateOptions{})
	require.NoError(t, err)
	return cm, ns + "/vpa-graceful-drain"
}

// startFunctions starts n function processes (no event source: their sweeps do the work), with
// the credentials of the function's own ServiceAccount.
func startFunctions(t *testing.T, n int, env ...string) []*cluster.Function {
	t.Helper()
	kubeconfig, err := cp.FunctionKubeconfig()
	require.NoError(t, err)
	var fns []*cluster.Function
	for i := range n {
		addr, err := cluster.FreeAddr()
		require.NoError(t, err)
		f, err := cluster.StartFunction(context.Background(), bin, addr, kubeconfig, append(slices.Clone(cluster.BarePods), env...)...)
		require.NoError(t, err)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("function %d output (tail):\n%s", i, tailLines(f.Output(), 40))
			}
			_ = f.Stop()
		})
		fns = append(fns, f)
	}
	return fns
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// finalizerLog records, per pod, every change of whether it holds our finalizer.
type finalizerLog struct {
	mu      sync.Mutex
	changes map[string][]bool
}

func watchFinalizers(t *testing.T, ns string) *finalizerLog {
	t.Helper()
	l := &finalizerLog{changes: map[string][]bool{}}
	w, err := cp.Client.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			has := slices.Contains(pod.Finalizers, names.Finalizer)
			l.mu.Lock()
			if c := l.changes[pod.Name]; len(c) == 0 || c[len(c)-1] != has {
				l.changes[pod.Name] = append(c, has)
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *finalizerLog) get(name string) []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes[name])
}

func holding(t *testing.T, ns string) int {
	t.Helper()
	list, err := cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, p := range list.Items {
		if slices.Contains(p.Finalizers, names.Finalizer) {
			n++
		}
	}
	return n
}

// Two replicas follow the ConfigMap live: a change of namespaceSelector reaches both without a
// restart, they converge, and no pod flaps (each pod gets the finalizer once and loses it once).
func TestE2ELiveConfigTwoReplicas(t *testing.T) {
	podNS := cp.Namespace(t, "live")
	cm, ref := createConfigMap(t, map[string]string{
		config.KeyNamespaceSelector: fmt.Sprintf(`{"include":[%q]}`, podNS), config.KeySweepIntervalSeconds: "900",
	})
	const n = 10
	names := make([]string, n)
	for i := range n {
		pod, err := cp.Client.CoreV1().Pods(podNS).Create(context.Background(), cluster.PodSpec(podNS, fmt.Sprintf("web-%02d", i), true), metav1.CreateOptions{})
		require.NoError(t, err)
		names[i] = pod.Name
	}
	log := watchFinalizers(t, podNS)
	fns := startFunctions(t, 2, "CONFIG_MAP="+ref)
	require.Eventually(t, func() bool { return holding(t, podNS) == n }, 30*time.Second, 50*time.Millisecond, "the start sweeps add the finalizer")

	cm.Data[config.KeyNamespaceSelector] = `{"include":["elsewhere"]}`
	changed := time.Now()
	cm, err := cp.Client.CoreV1().ConfigMaps(cm.Namespace).Update(context.Background(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return holding(t, podNS) == 0 }, 60*time.Second, 50*time.Millisecond, "the change applies without a restart")
	t.Logf("every pod released %s after the ConfigMap changed", time.Since(changed).Round(time.Millisecond))
	for i, f := range fns {
		require.Eventually(t, func() bool { return strings.Contains(f.Output(), `"elsewhere"`) }, 10*time.Second, 50*time.Millisecond,
			"replica %d applied the new configuration", i)
	}
	// Both replicas have swept with the new configuration (they sweep when it changes): a
	// replica still on the old one would add the finalizer back. None does.
	require.Never(t, func() bool { return holding(t, podNS) > 0 }, 2*time.Second, 50*time.Millisecond)
	for _, name := range names {
		assert.Equal(t, []bool{false, true, false}, log.get(name), "%s: added once, removed once", name)
	}

	// An invalid change keeps the last good configuration and says why on the ConfigMap.
	cm.Data[config.KeyDrainTimeoutSeconds] = "soon"
	_, err = cp.Client.CoreV1().ConfigMaps(cm.Namespace).Update(context.Background(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		evs, err := cp.Client.CoreV1().Events(cm.Namespace).List(context.Background(), metav1.ListOptions{})
		require.NoError(t, err)
		for _, e := range evs.Items {
			if e.Reason == live.EventInvalidConfiguration && strings.Contains(e.Message, "drainTimeoutSeconds") {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "a Warning Event on the ConfigMap")
	for _, f := range fns {
		resp, err := httpGet(f.URL + "health/readiness")
		require.NoError(t, err)
		assert.Equal(t, 200, resp, "still ready on the last good configuration")
	}
}

// Uninstall as docs/install.md says, with the function running and sweeping every 5 s: 1,000 held
// pods (some draining) end with no finalizer, and no sweep puts one back. Before it,
// release-finalizers -namespace a releases a's drains and nothing else: namespace b's held
// pods and drains keep the finalizer, and the ConfigMap is not marked (the function stays out
// of uninstall mode).
func TestE2EUninstallWhileTheFunctionRuns(t *testing.T) {
	nsA, podNS := cp.Namespace(t, "uninstall-a"), cp.Namespace(t, "uninstall")
	cm, ref := createConfigMap(t, map[string]string{
		config.KeyNamespaceSelector: fmt.Sprintf(`{"include":[%q,%q]}`, nsA, podNS), config.KeySweepIntervalSeconds: "5",
	})
	const n, draining, inA = 1000, 50, 20
	ctx := context.Background()
	for i := range n {
		pod := cluster.PodSpec(podNS, fmt.Sprintf("web-%04d", i), true)
		pod.Finalizers = []string{names.Finalizer}
		_, err := cp.Client.CoreV1().Pods(podNS).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	// Evicted, as the VPA updater evicts: drains the function holds for its grace period
	// (240 s, longer than this test needs to get to the end of -namespace a).
	for i := range draining {
		require.NoError(t, cluster.Evict(ctx, cp.Client, podNS, fmt.Sprintf("web-%04d", i), nil))
	}
	for i := range inA {
		pod := cluster.PodSpec(nsA, fmt.Sprintf("web-%04d", i), true)
		pod.Finalizers = []string{names.Finalizer}
		_, err := cp.Client.CoreV1().Pods(nsA).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		// Every pod of a drains: once deletion started no finalizer can be added, so what
		// release-finalizers releases stays released though the function still manages a.
		require.NoError(t, cluster.Evict(ctx, cp.Client, nsA, pod.Name, nil))
	}
	fns := startFunctions(t, 1, "CONFIG_MAP="+ref, "gracePeriodSeconds=240", "drainTimeoutSeconds=300")
	require.Eventually(t, func() bool { return strings.Contains(fns[0].Output(), "sweep done") }, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, inA, holding(t, nsA))
	require.Equal(t, n, holding(t, podNS), "the function holds b's drains")

	tool := filepath.Join(t.TempDir(), "release-finalizers")
	build := exec.Command("go", "build", "-o", tool, "./cmd/release-finalizers")
	build.Dir = cluster.RepoRoot()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	// release-finalizers -namespace a: a's drains released, b and the ConfigMap untouched.
	run := exec.Command(tool, "-namespace", nsA, "-config-map", ref, "-settle", "1s")
	run.Env = []string{"KUBECONFIG=" + cp.Kubeconfig, "HOME=" + t.TempDir()}
	out, err = run.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), fmt.Sprintf("released %d pod(s) in namespace %s\n", inA, nsA))
	assert.Contains(t, string(out), "vpa-graceful-drain is still installed")
	assert.NotContains(t, string(out), "marked ConfigMap")
	assert.NotContains(t, string(out), "PodDisruptionBudget(s) vpa-graceful-drain created")
	assert.Zero(t, holding(t, nsA))
	assert.Equal(t, n, holding(t, podNS), "b's held pods and drains keep the finalizer")
	live, err := cp.Client.CoreV1().ConfigMaps(cm.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotContains(t, live.Annotations, names.AnnotationUninstalling, "the ConfigMap is not marked")
	assert.NotContains(t, fns[0].Output(), `"uninstalling":true`, "the function is not in uninstall mode")

	// 1. The event source would be deleted here (this test has none). 2. release-finalizers,
	// as docs/install.md runs it: every namespace.
	run = exec.Command(tool, "-config-map", ref, "-settle", "2s")
	run.Env = []string{"KUBECONFIG=" + cp.Kubeconfig, "HOME=" + t.TempDir()}
	start := time.Now()
	out, err = run.CombinedOutput()
	took := time.Since(start)
	require.NoError(t, err, "%s", out)
	t.Logf("release-finalizers on %d pods took %s:\n%s", n, took.Round(time.Millisecond), tailLines(string(out), 4))
	assert.Contains(t, string(out), "marked ConfigMap "+ref)
	assert.Zero(t, holding(t, podNS))

	// The function is still up and sweeping: its next sweeps must not put a finalizer back.
	sweeps := strings.Count(fns[0].Output(), "sweep done")
	require.Eventually(t, func() bool { return strings.Count(fns[0].Output(), "sweep done") >= sweeps+2 }, 40*time.Second, 100*time.Millisecond,
		"two more sweeps ran")
	assert.Zero(t, holding(t, podNS), "no sweep re-added a finalizer")
	assert.Zero(t, holding(t, nsA))
	assert.Contains(t, fns[0].Output(), `"uninstalling":true`)

	// 3. the function, 4. the ConfigMap.
	require.NoError(t, fns[0].Stop())
	assert.Zero(t, holding(t, podNS))
}

func httpGet(url string) (int, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func sweepsDone(fns []*cluster.Function) int {
	n := 0
	for _, f := range fns {
		n += strings.Count(f.Output(), `"message":"sweep done"`)
	}
	return n
}

// Replicas share one sweep schedule through the Lease: two replicas sweeping every 10 s make
// one sweep per interval between them, not two; a sweep event (a PingSource tick) makes the
// replica that receives it sweep at once.
func TestE2ESweepsSharedBetweenReplicas(t *testing.T) {
	// Only a namespace of its own: other tests' pods stay out of these sweeps.
	own := cp.Namespace(t, "sweeps")
	cm, ref := createConfigMap(t, map[string]string{config.KeySweepIntervalSeconds: "10",
		config.KeyNamespaceSelector: fmt.Sprintf(`{"include":[%q]}`, own)})
	fns := startFunctions(t, 2, "CONFIG_MAP="+ref)
	require.Eventually(t, func() bool { return sweepsDone(fns) >= 1 }, 30*time.Second, 50*time.Millisecond)
	first := time.Now()
	require.Eventually(t, func() bool { return sweepsDone(fns) >= 3 }, 40*time.Second, 50*time.Millisecond)
	took := time.Since(first)
	t.Logf("3 sweeps between two replicas took %s (each replica alone would sweep every 10 s)", took.Round(time.Millisecond))
	assert.GreaterOrEqual(t, took, 15*time.Second, "one sweep per interval between the replicas (two each would take about 10 s)")
	lease, err := cp.Client.CoordinationV1().Leases(cm.Namespace).Get(context.Background(), "vpa-graceful-drain-sweep", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, lease.Spec.HolderIdentity)

	// A tick delivered to the second replica once no replica swept within handlers.MinSweepGap
	// (a tick sooner is not repeated): it sweeps now. The interval goes up first, so that no
	// timer sweep lands in between.
	cm.Data[config.KeySweepIntervalSeconds] = "600"
	_, err = cp.Client.CoreV1().ConfigMaps(cm.Namespace).Update(context.Background(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		l, err := cp.Client.CoordinationV1().Leases(cm.Namespace).Get(context.Background(), "vpa-graceful-drain-sweep", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil && *l.Spec.LeaseDurationSeconds == 600 &&
			time.Since(l.Spec.RenewTime.Time) > handlers.MinSweepGap+time.Second
	}, 30*time.Second, 100*time.Millisecond, "the new interval's sweep, then the gap")
	before := strings.Count(fns[1].Output(), `"message":"sweep done"`)
	req, err := http.NewRequest(http.MethodPost, fns[1].URL, strings.NewReader(`{"sweep":true}`))
	require.NoError(t, err)
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "tick-1", "Ce-Type": "dev.knative.sources.ping",
		"Ce-Source": "/apis/v1/namespaces/vpa-graceful-drain/pingsources/vpa-graceful-drain-sweep", "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Eventually(t, func() bool { return strings.Count(fns[1].Output(), `"message":"sweep done"`) > before }, 5*time.Second, 20*time.Millisecond,
		"the replica that got the tick sweeps at once")
}
