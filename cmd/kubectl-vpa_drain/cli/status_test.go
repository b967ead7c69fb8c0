package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
)

func TestFormatLeft(t *testing.T) {
	tests := []struct {
		left time.Duration
		want string
	}{
		{4*time.Minute + 12*time.Second, "4m12s"},
		{4*time.Minute + 12*time.Second + 900*time.Millisecond, "4m12s"},
		{59 * time.Second, "59s"},
		{0, "0s"},
		{-300 * time.Millisecond, "0s"},
		{-12 * time.Second, "overdue 12s"},
		{-(time.Minute + 5*time.Second), "overdue 1m5s"},
		{23*time.Hour + 59*time.Minute + 59*time.Second, "23h59m59s"},
		{time.Hour, "1h0m0s"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, formatLeft(tt.left), tt.left.String())
	}
}

func TestGatesCell(t *testing.T) {
	assert.Equal(t, "-", gatesCell(nil))
	assert.Equal(t, "+grace-period +containers-stopped -replacement-ready(1/2 Ready)", gatesCell([]drain.Gate{
		{Name: names.GateGracePeriod, Open: true, Detail: "30s"},
		{Name: names.GateContainers, Open: true, Detail: "all containers terminated"},
		{Name: names.GateReplacement, Detail: "1/2 Ready"},
	}))
	assert.Equal(t, "-grace-period(12s left of 30s) -containers-stopped -replacement-ready -endpoints-gone", gatesCell([]drain.Gate{
		{Name: names.GateGracePeriod, Detail: "12s left of 30s"},
		{Name: names.GateContainers, Detail: "containers running"},
		{Name: names.GateReplacement, Detail: "not looked at yet"},
		{Name: names.GateEndpoints},
	}))
}

func TestWaitingFor(t *testing.T) {
	tests := []struct {
		d    drain.Decision
		want string
	}{
		{drain.Decision{Action: drain.Wait, Reason: "waiting for replacement-ready (1/2 Ready)"}, "replacement-ready (1/2 Ready)"},
		{drain.Decision{Action: drain.Wait, Reason: "grace period"}, "grace period"},
		{drain.Decision{Action: drain.StartDrain, Reason: "containers running"}, "containers running"},
		{drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonTimeout}, "release due (timeout)"},
		{drain.Decision{Action: drain.None, Reason: "finalizer in place, pod not deleting"}, "an eviction (not deleting)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, waitingFor(tt.d))
	}
}

// t0 is the tests' now: whole seconds, as API times are.
var t0 = time.Date(2026, 3, 4, 10, 20, 30, 0, time.UTC)

func rs(name, hash string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-" + hash, UID: types.UID("rs-" + name), Controller: ptr.To(true)}
}

// deploymentPod is a managed, Ready pod of the Deployment name (ReplicaSet name-abc).
func deploymentPod(ns, podName, deployment string, finalizer bool) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: podName, UID: types.UID("uid-" + podName),
			Labels:          map[string]string{"app": deployment, appsv1.DefaultDeploymentUniqueLabelKey: "abc"},
			Annotations:     map[string]string{names.AnnotationManaged: "true"},
			OwnerReferences: []metav1.OwnerReference{rs(deployment, "abc")}},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](30), Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour))}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	if finalizer {
		pod.Finalizers = []string{names.Finalizer}
	}
	return pod
}

// evictedAgo makes pod evicted (the Eviction API's DisruptionTarget) ago, with a 30 s grace.
func evictedAgo(pod *corev1.Pod, ago time.Duration, stopped bool) *corev1.Pod {
	at := t0.Add(-ago)
	pod.DeletionTimestamp = ptr.To(metav1.NewTime(at.Add(30 * time.Second)))
	pod.DeletionGracePeriodSeconds = ptr.To[int64](30)
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: drain.ReasonEvictionByEvictionAPI, LastTransitionTime: metav1.NewTime(at)})
	if stopped {
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, FinishedAt: metav1.NewTime(at.Add(5 * time.Second))}}}}
	}
	return pod
}

// stamped gives pod the drain-started stamp the function writes (its DisruptionTarget time).
func stamped(pod *corev1.Pod) *corev1.Pod {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget {
			pod.Annotations[names.AnnotationDrainStarted] = c.LastTransitionTime.UTC().Format(time.RFC3339)
		}
	}
	return pod
}

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}}}
}

// statusFixture: in "shop", web (3 replicas) has web-held (held, Ready), web-old (evicted 40 s
// ago, containers stopped: waits for its replacement, 2/3 Ready) and web-new (a Ready pod
// without the finalizer); api-old was evicted 10 s ago (grace period). In "blog", a bare pod
// (opted in with pod manage) evicted 6 minutes ago: overdue.
func statusFixture(t *testing.T) (*fake.Clientset, *handlers.Reconciler) {
	t.Helper()
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "blog", Name: "solo", UID: "uid-solo",
		Annotations: map[string]string{names.AnnotationManaged: "true"}, Finalizers: []string{"example.com/keep", names.Finalizer}},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](30)}}
	objs := []runtime.Object{
		deployment("shop", "web", 3), deployment("shop", "api", 1),
		deploymentPod("shop", "web-held", "web", true),
		stamped(evictedAgo(deploymentPod("shop", "web-old", "web", true), 40*time.Second, true)),
		deploymentPod("shop", "web-new", "web", false),
		evictedAgo(deploymentPod("shop", "api-old", "api", true), 10*time.Second, false),
		evictedAgo(bare, 6*time.Minute, false),
	}
	client := fake.NewClientset(objs...)
	cfg := config.Default()
	cfg.Workloads = map[config.Kind]config.WorkloadOverride{config.KindPod: {Manage: ptr.To(true)}}
	rec := handlers.NewReconciler(handlers.Deps{Client: client, Dynamic: testutil.Dynamic(client, nil), DryRun: true, Clock: clocktesting.NewFakeClock(t0), Log: slog.New(slog.DiscardHandler)}, cfg)
	return client, rec
}

func statusRows(t *testing.T, namespace string) []row {
	t.Helper()
	client, rec := statusFixture(t)
	pods, err := listHeld(context.Background(), client, namespace)
	require.NoError(t, err)
	return collect(context.Background(), rec, pods, func() time.Time { return t0 })
}

// tableCells splits a table into its lines' cells (separated by 3 or more spaces) and checks
// the columns are aligned: each cell starts where its header does.
func tableCells(t *testing.T, table string) [][]string {
	t.Helper()
	sep := regexp.MustCompile(` {3,}`)
	var out [][]string
	var starts []int
	for n, line := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
		cells := sep.Split(line, -1)
		var at []int
		for _, loc := range sep.FindAllStringIndex(line, -1) {
			at = append(at, loc[1])
		}
		if n == 0 {
			starts = at
		} else {
			assert.Equal(t, starts, at, "columns aligned: %q", line)
		}
		out = append(out, cells)
	}
	return out
}

// The table: one row per pod that holds the finalizer, as the function decides it (the
// Deployment's replicas read for the drain whose other gates are open), sorted.
func TestStatusTable(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, writeTable(&out, statusRows(t, "shop"), false))
	assert.Equal(t, [][]string{
		{"POD", "OWNER", "PHASE", "STARTED", "DEADLINE", "LEFT", "GATES", "WAITING FOR"},
		{"api-old", "Deployment/api", "draining", "2026-03-04T10:20:20Z", "2026-03-04T10:25:20Z", "4m50s", "-grace-period(20s left of 30s) -containers-stopped -replacement-ready", "grace period"},
		{"web-held", "Deployment/web", "held", "-", "-", "-", "-", "an eviction (not deleting)"},
		{"web-old", "Deployment/web", "draining", "2026-03-04T10:19:50Z", "2026-03-04T10:24:50Z", "4m20s", "+grace-period +containers-stopped -replacement-ready(2/3 Ready)", "replacement-ready (2/3 Ready)"},
	}, tableCells(t, out.String()))
	assert.True(t, strings.HasPrefix(out.String(), "POD        OWNER            PHASE      STARTED "), "kubectl's spacing:\n%s", out.String())
}

func TestStatusTableAllNamespaces(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, writeTable(&out, statusRows(t, ""), true))
	rows := tableCells(t, out.String())
	require.Len(t, rows, 5)
	assert.Equal(t, []string{"NAMESPACE", "POD", "OWNER", "PHASE", "STARTED", "DEADLINE", "LEFT", "GATES", "WAITING FOR"}, rows[0])
	assert.Equal(t, []string{"blog", "solo", "Pod", "draining", "2026-03-04T10:14:30Z", "2026-03-04T10:19:30Z", "overdue 59s",
		"+grace-period -containers-stopped", "release due (timeout)"}, rows[1])
	for i, name := range []string{"api-old", "web-held", "web-old"} {
		assert.Equal(t, []string{"shop", name}, rows[i+2][:2])
	}
}

// -o json: an array of objects with exactly these fields; times in RFC 3339 UTC, null where
// a pod is not draining.
func TestStatusJSONShape(t *testing.T) {
	var out bytes.Buffer
	p := printer{out: &out, errOut: &out, json: true, namespace: "shop"}
	require.NoError(t, p.print(statusRows(t, "shop"), false))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	require.Len(t, got, 3)
	for _, obj := range got {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		assert.Equal(t, []string{"action", "deadline", "deleting", "gates", "name", "namespace", "owner", "ownerKind", "phase", "reason", "secondsLeft", "started", "uid", "waitingFor"}, keys)
	}
	assert.Equal(t, map[string]any{
		"namespace": "shop", "name": "web-old", "uid": "uid-web-old", "ownerKind": "Deployment", "owner": "web",
		"deleting": true, "phase": "draining", "action": "wait",
		"started": "2026-03-04T10:19:50Z", "deadline": "2026-03-04T10:24:50Z", "secondsLeft": 260.0,
		"gates": []any{
			map[string]any{"name": "grace-period", "open": true, "detail": "30s"},
			map[string]any{"name": "containers-stopped", "open": true, "detail": "all containers terminated"},
			map[string]any{"name": "replacement-ready", "open": false, "detail": "2/3 Ready"},
		},
		"waitingFor": "replacement-ready (2/3 Ready)", "reason": "waiting for replacement-ready (2/3 Ready)",
	}, got[2])
	held := got[1]
	assert.Equal(t, "web-held", held["name"])
	assert.Equal(t, false, held["deleting"])
	assert.Equal(t, "held", held["phase"])
	assert.Nil(t, held["started"])
	assert.Nil(t, held["deadline"])
	assert.Nil(t, held["secondsLeft"])
	assert.Equal(t, []any{}, held["gates"])

	out.Reset()
	require.NoError(t, p.print([]row{}, false))
	assert.Equal(t, "[]\n", out.String())
}

// An empty table is said on stderr, like kubectl's "No resources found" (on stdout while
// watching, so each change shows).
func TestStatusEmpty(t *testing.T) {
	var out, errOut bytes.Buffer
	p := printer{out: &out, errOut: &errOut, namespace: "shop"}
	require.NoError(t, p.print(nil, false))
	assert.Empty(t, out.String())
	assert.Equal(t, "No pods hold the finalizer vpagracefuldrain.dev/drain in namespace shop.\n", errOut.String())
	p.allNamespaces = true
	require.NoError(t, p.print(nil, true))
	assert.Equal(t, "No pods hold the finalizer vpagracefuldrain.dev/drain in any namespace.\n", out.String())
}

// The configuration is the ConfigMap's (its keys over the defaults, the uninstalling mark);
// one warning line and the defaults when it cannot be read or is invalid.
func TestLoadConfig(t *testing.T) {
	cm := func(data map[string]string, annotations map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "vpa-graceful-drain", Name: "vpa-graceful-drain", Annotations: annotations}, Data: data}
	}
	ref := "vpa-graceful-drain/vpa-graceful-drain"
	tests := []struct {
		name    string
		objs    []runtime.Object
		ref     string
		grace   time.Duration
		uninst  bool
		warning string
	}{
		{"no ConfigMap", nil, ref, 30 * time.Second, false, "warning: cannot read the function's ConfigMap vpa-graceful-drain/vpa-graceful-drain (configmaps \"vpa-graceful-drain\" not found): showing decisions with the default configuration\n"},
		{"none asked for", nil, "", 30 * time.Second, false, ""},
		{"its keys", []runtime.Object{cm(map[string]string{config.KeyGracePeriodSeconds: " 7\n"}, nil)}, ref, 7 * time.Second, false, ""},
		{"invalid", []runtime.Object{cm(map[string]string{config.KeyGracePeriodSeconds: "abc"}, nil)}, ref, 30 * time.Second, false, "is invalid (config key gracePeriodSeconds=\"abc\""},
		{"uninstalling", []runtime.Object{cm(nil, map[string]string{names.AnnotationUninstalling: "true"})}, ref, 30 * time.Second, true, "is marked vpagracefuldrain.dev/uninstalling=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			cfg := loadConfig(context.Background(), fake.NewClientset(tt.objs...), tt.ref, &errOut)
			assert.Equal(t, tt.grace, cfg.GracePeriod)
			assert.Equal(t, tt.uninst, cfg.Uninstalling)
			if tt.warning == "" {
				assert.Empty(t, errOut.String())
			} else {
				assert.Contains(t, errOut.String(), tt.warning)
				assert.Equal(t, 1, strings.Count(errOut.String(), "\n"), "one line")
			}
		})
	}
}

// The status help names what is read for the gates of drain.Gates, wrapped as the rest: for
// today's gates, the text as it was written by hand.
func TestStatusHelpNamesTheGates(t *testing.T) {
	assert.Equal(t, `kubectl vpa-drain status: the pods that hold the finalizer `+names.Finalizer+`.

Usage:
  kubectl vpa-drain status [-n NAMESPACE | -A] [-o table|json] [--watch] [--config-map NS/NAME]

Each pod is shown as the function decides it now (the same policy, with the same reads of the
owner's replicas and the endpoints for a draining pod whose grace period is over): its owner,
PHASE (held: the finalizer is in place, the pod is not deleting; draining: deleting, held until
its gates open or its deadline), when the drain STARTED, its DEADLINE, the time LEFT, each gate
(+ open, - closed, with why) and what it is WAITING FOR ("release due (REASON)": the function
removes the finalizer at its next look; a pod that stays so means the function is not running).
The configuration comes from the function's ConfigMap (--config-map); when it cannot be read,
the defaults, with a warning.

Examples:
  kubectl vpa-drain status
  kubectl vpa-drain status -A
  kubectl vpa-drain status -n shop -o json | jq '.[] | select(.deleting) | .name'
  kubectl vpa-drain status -n shop --watch
`, statusHelp)
	flat := strings.Join(strings.Fields(statusHelp), " ")
	for _, g := range drain.Gates() {
		assert.Contains(t, flat, g.Reads, "the help names what %s reads", g.Name)
	}
	for _, line := range strings.Split(statusHelp, "\n") {
		assert.LessOrEqual(t, len(line), helpWidth, line)
	}
	assert.Equal(t, "a b\nccc\ndd e", wrap(4, "a b ccc  dd\ne"))
}
