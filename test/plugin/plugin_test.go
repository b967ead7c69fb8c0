//go:build integration

// Package plugin runs the kubectl plugin (`kubectl vpa-drain`, cmd/kubectl-vpa_drain) in-process
// against a real kube-apiserver and etcd, and checks its output against known pods: the table
// and -o json list exactly the pods that hold the finalizer, with the phase and gates the
// function's policy gives them (read from the real API: the ConfigMap, the Deployment and its
// pods); release removes the finalizer with the guarded patch and records the Event; --watch
// prints again on a change.
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"function/cmd/kubectl-vpa_drain/cli"
	"function/config"
	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
	"function/test/cluster"
)

var cp *cluster.ControlPlane

// TestMain starts etcd and kube-apiserver only, as test/integration does: the plugin needs
// neither the function nor the adapter (cluster.Main would build and check both).
func TestMain(m *testing.M) {
	os.Exit(cluster.ControlPlaneMain(m, &cp))
}

// plugin runs `kubectl vpa-drain args...` in-process with the admin kubeconfig.
func plugin(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Run(context.Background(), append(args, "--kubeconfig", cp.Kubeconfig), &out, &errOut)
	return code, out.String(), errOut.String()
}

// Drain settings in the test namespaces' ConfigMap: bare pods managed, a 10-minute grace
// period, a 15-minute timeout.
const (
	grace   = 10 * time.Minute
	timeout = 15 * time.Minute
)

// fixture is one test's namespace with the function's ConfigMap in it.
type fixture struct {
	t   *testing.T
	ctx context.Context
	ns  string
	// configMap is the --config-map flag for this namespace's ConfigMap.
	configMap []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), ns: cp.Namespace(t, "plugin")}
	_, err := cp.Client.CoreV1().ConfigMaps(f.ns).Create(f.ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vpa-graceful-drain"},
		Data: map[string]string{
			config.KeyGracePeriodSeconds:  fmt.Sprint(int(grace.Seconds())),
			config.KeyDrainTimeoutSeconds: fmt.Sprint(int(timeout.Seconds())),
			config.KeyWorkloadDefaults:    `{"Pod":{"manage":true}}`,
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	f.configMap = []string{"--config-map", f.ns + "/vpa-graceful-drain"}
	return f
}

// status runs `kubectl vpa-drain status -n NS --config-map NS/vpa-graceful-drain args...`.
func (f *fixture) status(args ...string) (int, string, string) {
	f.t.Helper()
	return plugin(f.t, append(append([]string{"status", "-n", f.ns}, f.configMap...), args...)...)
}

// pod creates a running pod (managed with vpa-managed: "true" when managed); with hold, the
// finalizer is then added by a JSON patch, as the function adds it.
func (f *fixture) pod(pod *corev1.Pod, hold bool) *corev1.Pod {
	f.t.Helper()
	created, err := cp.Client.CoreV1().Pods(f.ns).Create(f.ctx, pod, metav1.CreateOptions{})
	require.NoError(f.t, err)
	created, err = cluster.MarkRunning(f.ctx, cp.Client, created)
	require.NoError(f.t, err)
	if hold {
		patch := fmt.Sprintf(`[{"op":"test","path":"/metadata/uid","value":%q},{"op":"add","path":"/metadata/finalizers","value":[%q]}]`, created.UID, names.Finalizer)
		created, err = cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, created.Name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(f.t, err)
	}
	return created
}

// evict evicts the pod through the Eviction API (30 s grace: it stays deleting, no kubelet
// ends it) and stamps drain-started as the function does, with the eviction's time.
func (f *fixture) evict(name string, stamp bool) *corev1.Pod {
	f.t.Helper()
	require.NoError(f.t, cluster.Evict(f.ctx, cp.Client, f.ns, name, nil))
	pod := f.get(name)
	require.NotNil(f.t, pod.DeletionTimestamp)
	if stamp {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, names.AnnotationDrainStarted, evictedAt(f.t, pod).Format(time.RFC3339))
		var err error
		pod, err = cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(f.t, err)
	}
	return pod
}

func (f *fixture) get(name string) *corev1.Pod {
	f.t.Helper()
	pod, err := cp.Client.CoreV1().Pods(f.ns).Get(f.ctx, name, metav1.GetOptions{})
	require.NoError(f.t, err)
	return pod
}

// evictedAt is the DisruptionTarget time the API server recorded for the eviction.
func evictedAt(t *testing.T, pod *corev1.Pod) time.Time {
	t.Helper()
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Reason == drain.ReasonEvictionByEvictionAPI {
			return c.LastTransitionTime.UTC()
		}
	}
	require.Fail(t, "no DisruptionTarget condition", "%s", pod.Name)
	return time.Time{}
}

// webPod is a pod of the Deployment web (its ReplicaSet web-abc, pod-template-hash abc).
func (f *fixture) webPod(name string) *corev1.Pod {
	pod := cluster.PodSpec(f.ns, name, true)
	pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "abc"
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "rs-web-abc", Controller: ptr.To(true)}}
	return pod
}

// ready reports the pod Ready, as the kubelet does once its readiness probe passes.
func (f *fixture) ready(name string) {
	f.t.Helper()
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"Ready","status":"True","lastTransitionTime":%q}]}}`, time.Now().UTC().Format(time.RFC3339))
	_, err := cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	require.NoError(f.t, err)
}

// knownPods creates, in f's namespace:
//   - held: managed, holds the finalizer, not deleting;
//   - draining: managed, holds the finalizer, evicted (stamped): in its grace period;
//   - plain: no finalizer (not managed);
//   - web-old: a pod of the Deployment web (2 replicas), its grace period overridden to 0,
//     evicted and its containers stopped: waits for the replacement, 1/2 Ready;
//   - web-new: web's other pod, Ready, no finalizer.
func (f *fixture) knownPods() {
	f.t.Helper()
	f.pod(cluster.PodSpec(f.ns, "held", true), true)
	f.pod(cluster.PodSpec(f.ns, "draining", true), true)
	f.evict("draining", true)
	f.pod(cluster.PodSpec(f.ns, "plain", false), false)

	_, err := cp.Client.AppsV1().Deployments(f.ns).Create(f.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}},
	}, metav1.CreateOptions{})
	require.NoError(f.t, err)
	old := f.webPod("web-old")
	old.Annotations[names.AnnotationGracePeriod] = "0"
	f.pod(old, true)
	evicted := f.evict("web-old", true)
	_, err = cluster.MarkStopped(f.ctx, cp.Client, evicted)
	require.NoError(f.t, err)
	// Its grace of 0 is over at the end of the eviction's whole second: drains are timed from
	// the latest moment an API time stands for, never early.
	over := evictedAt(f.t, evicted).Add(time.Second)
	require.Eventually(f.t, func() bool { return time.Now().After(over) }, 3*time.Second, 10*time.Millisecond,
		"the second of web-old's eviction is over")
	f.pod(f.webPod("web-new"), false)
	f.ready("web-new")
}

// cells splits a table into its lines' cells (separated by 3 or more spaces).
func cells(table string) [][]string {
	sep := regexp.MustCompile(` {3,}`)
	var out [][]string
	for _, line := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
		out = append(out, sep.Split(line, -1))
	}
	return out
}

var left = regexp.MustCompile(`^(\d+m)?\d+s$`)

// The table lists exactly the pods that hold the finalizer, as the function decides them: the
// held pod waits for an eviction, the draining pod is in its grace period (from the ConfigMap),
// the Deployment's pod waits for its replacement (the Deployment and its pods read from the
// API).
func TestStatusTable(t *testing.T) {
	f := newFixture(t)
	f.knownPods()
	draining, webOld := f.get("draining"), f.get("web-old")

	code, out, errOut := f.status()
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Empty(t, errOut)
	t.Logf("kubectl vpa-drain status -n %s:\n%s", f.ns, out)
	rows := cells(out)
	require.Len(t, rows, 4, out)
	assert.Equal(t, []string{"POD", "OWNER", "PHASE", "STARTED", "DEADLINE", "LEFT", "GATES", "WAITING FOR"}, rows[0])

	started := evictedAt(t, draining)
	assert.Equal(t, []string{"draining", "Pod", "draining", started.Format(time.RFC3339), started.Add(timeout).Format(time.RFC3339)}, rows[1][:5])
	assert.Regexp(t, left, rows[1][5])
	assert.Regexp(t, `^-grace-period\(\d+m\d+s left of 10m0s\) -containers-stopped$`, rows[1][6])
	assert.Equal(t, "grace period", rows[1][7])

	assert.Equal(t, []string{"held", "Pod", "held", "-", "-", "-", "-", "an eviction (not deleting)"}, rows[2])

	webStarted := evictedAt(t, webOld)
	assert.Equal(t, []string{"web-old", "Deployment/web", "draining", webStarted.Format(time.RFC3339), webStarted.Add(timeout).Format(time.RFC3339)}, rows[3][:5])
	assert.Regexp(t, left, rows[3][5])
	assert.Equal(t, []string{"+grace-period +containers-stopped -replacement-ready(1/2 Ready)", "replacement-ready (1/2 Ready)"}, rows[3][6:])

	// Without -n: the kubeconfig's namespace (none set: default), where nothing is held.
	code, out, errOut = plugin(t, "status", "--config-map", "")
	assert.Equal(t, cli.ExitOK, code)
	assert.Empty(t, out)
	assert.Equal(t, "No pods hold the finalizer vpagracefuldrain.dev/drain in namespace default.\n", errOut)
}

// -o json parses and says the same as the table.
func TestStatusJSON(t *testing.T) {
	f := newFixture(t)
	f.knownPods()
	code, out, errOut := f.status("-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var got []struct {
		Namespace, Name, UID, OwnerKind, Owner, Phase, Action, WaitingFor, Reason string
		Deleting                                                                  bool
		Started, Deadline                                                         *time.Time
		SecondsLeft                                                               *int64
		Gates                                                                     []drain.Gate
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, got, 3)

	d := got[0]
	pod := f.get("draining")
	assert.Equal(t, []string{f.ns, "draining", string(pod.UID), "Pod", "", "draining", "wait", "grace period", "grace period"},
		[]string{d.Namespace, d.Name, d.UID, d.OwnerKind, d.Owner, d.Phase, d.Action, d.WaitingFor, d.Reason})
	assert.True(t, d.Deleting)
	require.NotNil(t, d.Started)
	require.NotNil(t, d.Deadline)
	assert.Equal(t, evictedAt(t, pod), *d.Started)
	assert.Equal(t, evictedAt(t, pod).Add(timeout), *d.Deadline)
	require.NotNil(t, d.SecondsLeft)
	assert.InDelta(t, timeout.Seconds(), float64(*d.SecondsLeft), 60)
	require.Len(t, d.Gates, 2)
	assert.Equal(t, names.GateGracePeriod, d.Gates[0].Name)
	assert.False(t, d.Gates[0].Open)
	assert.Equal(t, drain.Gate{Name: names.GateContainers, Open: false, Detail: "containers running"}, d.Gates[1])

	h := got[1]
	assert.Equal(t, []string{"held", "Pod", "held", "none"}, []string{h.Name, h.OwnerKind, h.Phase, h.Action})
	assert.False(t, h.Deleting)
	assert.Nil(t, h.Started)
	assert.Nil(t, h.Deadline)
	assert.Nil(t, h.SecondsLeft)
	assert.Empty(t, h.Gates)

	w := got[2]
	assert.Equal(t, []string{"web-old", "Deployment", "web", "draining", "wait"}, []string{w.Name, w.OwnerKind, w.Owner, w.Phase, w.Action})
	assert.Equal(t, []drain.Gate{
		{Name: names.GateGracePeriod, Open: true, Detail: "0s"},
		{Name: names.GateContainers, Open: true, Detail: "all containers terminated"},
		{Name: names.GateReplacement, Open: false, Detail: "1/2 Ready"},
	}, w.Gates)
}

// -A: every namespace, with the NAMESPACE column.
func TestStatusAllNamespaces(t *testing.T) {
	f := newFixture(t)
	f.knownPods()
	other := newFixture(t)
	other.pod(cluster.PodSpec(other.ns, "elsewhere", true), true)

	code, out, errOut := plugin(t, "status", "-A", "--config-map", f.ns+"/vpa-graceful-drain")
	require.Equal(t, cli.ExitOK, code, errOut)
	rows := cells(out)
	assert.Equal(t, []string{"NAMESPACE", "POD", "OWNER"}, rows[0][:3])
	var mine []string
	for _, r := range rows[1:] {
		if r[0] == f.ns || r[0] == other.ns {
			mine = append(mine, r[0]+"/"+r[1]+" "+r[3])
		}
	}
	want := []string{f.ns + "/draining draining", f.ns + "/held held", f.ns + "/web-old draining", other.ns + "/elsewhere held"}
	slices.Sort(want) // rows come by namespace, then pod: the random namespace names decide which first
	assert.Equal(t, want, mine)
}

// release removes the finalizer from the draining pod (the API server then lets the kubelet's
// grace-0 DELETE end it), records the Event, refuses a pod that does not hold the finalizer,
// and finds a gone pod gone.
func TestRelease(t *testing.T) {
	f := newFixture(t)
	f.knownPods()
	pod := f.get("draining")

	code, out, errOut := plugin(t, "release", "draining", "-n", f.ns, "--reason", "INC-42: stuck drain")
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, fmt.Sprintf("pod %s/draining released: finalizer %s removed\n", f.ns, names.Finalizer), out)
	assert.Empty(t, errOut)
	released := f.get("draining")
	assert.Empty(t, released.Finalizers)
	assert.NotNil(t, released.DeletionTimestamp, "still deleting: only the kubelet's grace-0 DELETE ends it")

	events, err := cp.Client.CoreV1().Events(f.ns).List(f.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String(),
	})
	require.NoError(t, err)
	require.Len(t, events.Items, 1)
	ev := events.Items[0]
	assert.Equal(t, []string{corev1.EventTypeNormal, names.EventFinalizerRemoved, "Pod", "draining"},
		[]string{ev.Type, ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name})
	assert.Equal(t, "Finalizer vpagracefuldrain.dev/drain released by hand with kubectl vpa-drain by admin: INC-42: stuck drain", ev.Message)

	require.NoError(t, cluster.FinishDeletion(f.ctx, cp.Client, released))
	_, err = cp.Client.CoreV1().Pods(f.ns).Get(f.ctx, "draining", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the pod is gone once nothing holds it: %v", err)

	code, out, _ = plugin(t, "release", "pod/draining", "-n", f.ns)
	assert.Equal(t, cli.ExitOK, code)
	assert.Equal(t, fmt.Sprintf("pod %s/draining not found: already gone, nothing to release\n", f.ns), out)

	code, out, errOut = plugin(t, "release", "plain", "-n", f.ns)
	assert.Equal(t, cli.ExitError, code)
	assert.Empty(t, out)
	assert.Equal(t, fmt.Sprintf("error: pod %s/plain does not hold the finalizer %s: nothing to release (its finalizers: none)\n", f.ns, names.Finalizer), errOut)

	// The held pod (not deleting) is released too, with a note: the function puts it back.
	code, _, errOut = plugin(t, "release", "held", "-n", f.ns)
	assert.Equal(t, cli.ExitOK, code)
	assert.Contains(t, errOut, "is not deleting: the function adds the finalizer again")
	assert.Empty(t, f.get("held").Finalizers)

	// What is left: the Deployment's pod only.
	code, out, errOut = f.status()
	require.Equal(t, cli.ExitOK, code, errOut)
	rows := cells(out)
	require.Len(t, rows, 2, out)
	assert.Equal(t, "web-old", rows[1][0])
}

// A user without permissions gets an error naming the verb and the resource (exit code 1);
// the ConfigMap it cannot read is one warning line.
func TestStatusForbidden(t *testing.T) {
	f := newFixture(t)
	cfg, err := cp.UserConfig("nobody-" + f.ns)
	require.NoError(t, err)
	kubeconfig := writeKubeconfig(t, cfg)

	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"status", "-n", f.ns, "--kubeconfig", kubeconfig}, f.configMap...), &out, &errOut)
	assert.Equal(t, cli.ExitError, code)
	assert.Empty(t, out.String())
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	require.Len(t, lines, 2, errOut.String())
	assert.Contains(t, lines[0], "warning: cannot read the function's ConfigMap "+f.ns+"/vpa-graceful-drain (configmaps \"vpa-graceful-drain\" is forbidden")
	assert.Contains(t, lines[1], fmt.Sprintf(`error: forbidden: cannot list pods in namespace %s (needs RBAC: list on pods): pods is forbidden: User "nobody-%s" cannot list resource "pods"`, f.ns, f.ns))

	// --watch says so too, and ends, rather than retrying for ever.
	out.Reset()
	errOut.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = cli.Run(ctx, []string{"status", "--watch", "-n", f.ns, "--kubeconfig", kubeconfig, "--config-map", ""}, &out, &errOut)
	require.NoError(t, ctx.Err(), "ended before the timeout")
	assert.Equal(t, cli.ExitError, code)
	assert.Contains(t, errOut.String(), fmt.Sprintf(`error: forbidden: cannot list and watch pods in namespace %s (needs RBAC: list and watch on pods)`, f.ns))

	out.Reset()
	errOut.Reset()
	code = cli.Run(context.Background(), []string{"release", "x", "-n", f.ns, "--kubeconfig", kubeconfig}, &out, &errOut)
	assert.Equal(t, cli.ExitError, code)
	assert.Contains(t, errOut.String(), fmt.Sprintf(`error: forbidden: cannot get pods "x" in namespace %s (needs RBAC: get on pods)`, f.ns))
}

// writeKubeconfig writes a kubeconfig file for a client config (the test control plane's
// certificates).
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "user"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}

// tables splits --watch output into its tables.
func tables(out string) []string {
	var ts []string
	for _, t := range strings.Split(out, "\n\n") {
		if strings.TrimSpace(t) != "" {
			ts = append(ts, t)
		}
	}
	return ts
}

// --watch prints the table, then a new one when a held pod changes (here: it is evicted), and
// ends with exit code 0 when interrupted.
func TestStatusWatch(t *testing.T) {
	f := newFixture(t)
	f.pod(cluster.PodSpec(f.ns, "held", true), true)
	f.pod(cluster.PodSpec(f.ns, "plain", false), false)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, append([]string{"status", "-n", f.ns, "--watch", "--kubeconfig", cp.Kubeconfig}, f.configMap...), &out, &errOut)
	}()
	require.Eventually(t, func() bool { return len(tables(out.String())) == 1 }, 30*time.Second, 50*time.Millisecond, "the first table: %q %q", out.String(), errOut.String())
	first := cells(tables(out.String())[0])
	require.Len(t, first, 2)
	assert.Equal(t, []string{"held", "Pod", "held"}, first[1][:3])

	// A pod without the finalizer changes: no new table.
	_, err := cp.Client.CoreV1().Pods(f.ns).Patch(f.ctx, "plain", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond)
	assert.Len(t, tables(out.String()), 1, "no table for a pod without the finalizer")

	// The held pod is evicted (a status update, then the deletion): a new table, at most one a
	// second, the last showing it draining.
	evictedAt := time.Now()
	f.evict("held", false)
	last := func() []string {
		ts := tables(out.String())
		if len(ts) < 2 {
			return nil
		}
		rows := cells(ts[len(ts)-1])
		if len(rows) != 2 {
			return nil
		}
		return rows[1]
	}
	require.Eventually(t, func() bool { r := last(); return r != nil && r[2] == "draining" }, 30*time.Second, 50*time.Millisecond, "a table with the pod draining: %q", out.String())
	took := time.Since(evictedAt)
	assert.Equal(t, []string{"held", "Pod", "draining"}, last()[:3])
	assert.Equal(t, "grace period", last()[7])
	n := len(tables(out.String()))
	assert.LessOrEqual(t, n-1, int(took/time.Second)+1, "at most one table a second: %d tables in %s", n-1, took)
	time.Sleep(1500 * time.Millisecond) // nothing else changes: no other table
	assert.Len(t, tables(out.String()), n)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, cli.ExitOK, code)
	case <-time.After(10 * time.Second):
		t.Fatal("--watch did not end when interrupted")
	}
	assert.Empty(t, errOut.String())
}
