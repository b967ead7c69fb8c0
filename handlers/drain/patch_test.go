package drain_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"function/handlers/drain"
	"function/names"
)

// s40 is a drain start 40 s before now (grace over, deadline ahead), as an annotation reads.

func TestPatchGolden(t *testing.T) {
	s40s, d40s := stamp(s40), stamp(s40.Add(300*time.Second))
	tests := []struct {
		name   string
		pod    *corev1.Pod
		action drain.Action
		reason string
		golden string
	}{
		{
			name:   "add finalizer, no finalizers yet",
			pod:    newPod(managed),
			action: drain.AddFinalizer,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/annotations/vpa-managed","value":"true"},
				{"op":"test","path":"/metadata/finalizers","value":null},
				{"op":"add","path":"/metadata/finalizers","value":["vpagracefuldrain.dev/drain"]}]`,
		},
		{
			name:   "add finalizer, empty finalizer list",
			pod:    newPod(ann("vpaUpdates", "x"), finalizers()),
			action: drain.AddFinalizer,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/annotations/vpaUpdates","value":"x"},
				{"op":"test","path":"/metadata/finalizers","value":null},
				{"op":"add","path":"/metadata/finalizers","value":["vpagracefuldrain.dev/drain"]}]`,
		},
		{
			name:   "add finalizer, existing finalizers, slash in annotation key escaped",
			pod:    newPod(ann("vpa.k8s.io/resource-name", "web"), finalizers("example.com/a", "example.com/b")),
			action: drain.AddFinalizer,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/annotations/vpa.k8s.io~1resource-name","value":"web"},
				{"op":"test","path":"/metadata/finalizers","value":["example.com/a","example.com/b"]},
				{"op":"add","path":"/metadata/finalizers/-","value":"vpagracefuldrain.dev/drain"}]`,
		},
		{
			name:   "start drain",
			pod:    newPod(ours, managed, deleting),
			action: drain.StartDrain,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/0","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/deletionTimestamp","value":"2026-11-26T05:11:00Z"},
				{"op":"test","path":"/metadata/annotations/vpa-managed","value":"true"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-timeout-seconds","value":null},
				{"op":"add","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"2026-11-26T05:10:30Z"},
				{"op":"add","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-deadline","value":"2026-11-26T05:15:30Z"}]`,
		},
		{
			name:   "start drain again over an invalid stamp",
			pod:    newPod(finalizers("example.com/a", names.Finalizer), ann("vpaObservedContainers", "app"), deleting, ann(names.AnnotationDrainStarted, "garbage")),
			action: drain.StartDrain,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/1","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/deletionTimestamp","value":"2026-11-26T05:11:00Z"},
				{"op":"test","path":"/metadata/annotations/vpaObservedContainers","value":"app"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"garbage"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-timeout-seconds","value":null},
				{"op":"add","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"2026-11-26T05:10:30Z"},
				{"op":"add","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-deadline","value":"2026-11-26T05:15:30Z"}]`,
		},
		{
			name:   "remove drained: all containers terminated",
			pod:    newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainDeadline, d40s), statuses(terminated("app", 0), terminated("sidecar", 137))),
			action: drain.RemoveFinalizer, reason: names.ReasonDrained,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/0","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"` + s40s + `"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-deadline","value":"` + d40s + `"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1grace-period-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-timeout-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-replacement","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-endpoints","value":null},
				{"op":"test","path":"/status/containerStatuses/0/name","value":"app"},
				{"op":"test","path":"/status/containerStatuses/0/state/terminated/exitCode","value":0},
				{"op":"test","path":"/status/containerStatuses/1/name","value":"sidecar"},
				{"op":"test","path":"/status/containerStatuses/1/state/terminated/exitCode","value":137},
				{"op":"remove","path":"/metadata/finalizers/0","value":null}]`,
		},
		{
			name:   "remove drained: phase Failed",
			pod:    newPod(ours, managed, deleting, started(s40), phase(corev1.PodFailed)),
			action: drain.RemoveFinalizer, reason: names.ReasonDrained,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/0","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"` + s40s + `"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-deadline","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1grace-period-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-timeout-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-replacement","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-endpoints","value":null},
				{"op":"test","path":"/status/phase","value":"Failed"},
				{"op":"remove","path":"/metadata/finalizers/0","value":null}]`,
		},
		{
			name:   "remove drained: phase Succeeded, per-pod overrides guarded",
			pod:    newPod(ours, managed, deleting, started(s40), phase(corev1.PodSucceeded), ann(names.AnnotationGracePeriod, "20", names.AnnotationDrainTimeout, "120")),
			action: drain.RemoveFinalizer, reason: names.ReasonDrained,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/0","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"` + s40s + `"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-deadline","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1grace-period-seconds","value":"20"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-timeout-seconds","value":"120"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-replacement","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-endpoints","value":null},
				{"op":"test","path":"/status/phase","value":"Succeeded"},
				{"op":"remove","path":"/metadata/finalizers/0","value":null}]`,
		},
		{
			name:   "remove drained: deletionGracePeriodSeconds=0",
			pod:    newPod(ours, managed, deleting, graceZero, started(s40), ann(names.AnnotationDrainDeadline, d40s)),
			action: drain.RemoveFinalizer, reason: names.ReasonDrained,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/0","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"` + s40s + `"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-deadline","value":"` + d40s + `"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1grace-period-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-timeout-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-replacement","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-endpoints","value":null},
				{"op":"test","path":"/metadata/deletionGracePeriodSeconds","value":0},
				{"op":"remove","path":"/metadata/finalizers/0","value":null}]`,
		},
		{
			name:   "remove timeout: no evidence guarded, finalizer at index 1",
			pod:    newPod(finalizers("example.com/a", names.Finalizer), managed, deleting, started(now.Add(-6*time.Minute))),
			action: drain.RemoveFinalizer, reason: names.ReasonTimeout,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/1","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-started","value":"2026-11-26T05:04:30Z"},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-deadline","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1grace-period-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1drain-timeout-seconds","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-replacement","value":null},
				{"op":"test","path":"/metadata/annotations/vpagracefuldrain.dev~1wait-for-endpoints","value":null},
				{"op":"remove","path":"/metadata/finalizers/1","value":null}]`,
		},
		{
			name:   "remove unmanaged: no annotations at all",
			pod:    newPod(ours),
			action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/0","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/annotations","value":null},
				{"op":"remove","path":"/metadata/finalizers/0","value":null}]`,
		},
		{
			name:   "remove unmanaged: opted out, every managing annotation guarded",
			pod:    newPod(ours, ann(names.AnnotationManaged, "false", "vpaUpdates", "u")),
			action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged,
			golden: `[
				{"op":"test","path":"/metadata/uid","value":"uid-1"},
				{"op":"test","path":"/metadata/resourceVersion","value":"100"},
				{"op":"test","path":"/metadata/finalizers/0","value":"vpagracefuldrain.dev/drain"},
				{"op":"test","path":"/metadata/annotations/vpa-managed","value":"false"},
				{"op":"test","path":"/metadata/annotations/vpaObservedContainers","value":null},
				{"op":"test","path":"/metadata/annotations/vpaUpdates","value":"u"},
				{"op":"test","path":"/metadata/annotations/vpa-updater.client.k8s.io~1last-updated","value":null},
				{"op":"test","path":"/metadata/annotations/vpa.k8s.io~1resource-name","value":null},
				{"op":"remove","path":"/metadata/finalizers/0","value":null}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := drain.Decide(tt.pod, bareConfig(), now)
			require.Equal(t, tt.action, d.Action, "decision precondition (reason %q)", d.Reason)
			if tt.reason != "" {
				require.Equal(t, tt.reason, d.Reason)
			}
			got, err := drain.Patch(tt.pod, d)
			require.NoError(t, err)
			assert.JSONEq(t, tt.golden, string(got))
			var ops []map[string]any
			require.NoError(t, json.Unmarshal(got, &ops), "a JSON array of operations")
		})
	}
}

func TestPatchEscapesAnnotationKeys(t *testing.T) {
	pod := newPod(ann("example.com/a~b", "v"))
	got, err := drain.Patch(pod, drain.Decision{Action: drain.AddFinalizer, ManagedBy: "example.com/a~b", FinalizerIndex: -1})
	require.NoError(t, err)
	var ops []struct{ Op, Path string }
	require.NoError(t, json.Unmarshal(got, &ops))
	require.Len(t, ops, 5)
	// RFC 6901: "~" becomes "~0" first, then "/" becomes "~1".
	assert.Equal(t, "/metadata/annotations/example.com~1a~0b", ops[2].Path)
}

func TestPatchRefusesNonWritingActions(t *testing.T) {
	for _, a := range []drain.Action{drain.None, drain.Wait, drain.Action(42)} {
		t.Run(a.String(), func(t *testing.T) {
			got, err := drain.Patch(newPod(managed), drain.Decision{Action: a, FinalizerIndex: -1})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "writes nothing")
			assert.Nil(t, got)
		})
	}
}

// Each patch applies to the pod it was decided on and is refused once that pod has changed
// in a value the decision read (applied by the fake clientset's JSON patch implementation).
func TestPatchAppliesOnlyToTheStateItWasDecidedOn(t *testing.T) {
	tests := []struct {
		name   string
		pod    *corev1.Pod
		check  func(t *testing.T, p *corev1.Pod)
		change func(p *corev1.Pod)
	}{
		{
			name:   "add finalizer",
			pod:    newPod(managed),
			check:  func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
			change: func(p *corev1.Pod) { p.Finalizers = []string{"example.com/other"} },
		},
		{
			name: "add finalizer after others",
			pod:  newPod(managed, finalizers("example.com/a")),
			check: func(t *testing.T, p *corev1.Pod) {
				assert.Equal(t, []string{"example.com/a", names.Finalizer}, p.Finalizers)
			},
			change: func(p *corev1.Pod) { p.Annotations[names.AnnotationManaged] = "false" },
		},
		{
			name: "start drain",
			pod:  newPod(ours, managed, deleting),
			check: func(t *testing.T, p *corev1.Pod) {
				assert.Equal(t, stamp(drainStamp), p.Annotations[names.AnnotationDrainStarted])
				assert.Equal(t, stamp(drainStamp.Add(5*time.Minute)), p.Annotations[names.AnnotationDrainDeadline])
				assert.Equal(t, []string{names.Finalizer}, p.Finalizers)
			},
			change: func(p *corev1.Pod) { p.Annotations[names.AnnotationDrainStarted] = stamp(now) },
		},
		{
			name:   "remove drained (all terminated)",
			pod:    newPod(finalizers("example.com/a", names.Finalizer), managed, deleting, started(s40), statuses(terminated("app", 0))),
			check:  func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{"example.com/a"}, p.Finalizers) },
			change: func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{running("app")} },
		},
		{
			name:  "remove drained (app and native sidecar terminated)",
			pod:   newPod(ours, managed, deleting, started(s40), statuses(terminated("app", 0)), initContainer(terminated("migrate", 0)), sidecar(terminated("envoy", 0))),
			check: func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
			change: func(p *corev1.Pod) {
				p.Status.InitContainerStatuses[1] = running("envoy") // the sidecar restarted
			},
		},
		{
			name:   "remove drained (grace zero)",
			pod:    newPod(ours, managed, deleting, started(s40), graceZero),
			check:  func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
			change: func(p *corev1.Pod) { g := int64(5); p.DeletionGracePeriodSeconds = &g },
		},
		{
			name:   "remove timeout",
			pod:    newPod(ours, managed, deleting, started(now.Add(-6*time.Minute))),
			check:  func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
			change: func(p *corev1.Pod) { p.Annotations[names.AnnotationDrainStarted] = stamp(now) },
		},
		{
			name:   "remove unmanaged",
			pod:    newPod(ours, ann("app", "web")),
			check:  func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
			change: func(p *corev1.Pod) { p.Annotations["vpaUpdates"] = "now managed" },
		},
		{
			name:   "remove unmanaged, pod without annotations",
			pod:    newPod(ours),
			check:  func(t *testing.T, p *corev1.Pod) { assert.Empty(t, p.Finalizers) },
			change: func(p *corev1.Pod) { p.Annotations = map[string]string{names.AnnotationManaged: "true"} },
		},
		{
			name:   "replaced pod (other uid)",
			pod:    newPod(managed),
			check:  func(t *testing.T, p *corev1.Pod) { assert.Equal(t, []string{names.Finalizer}, p.Finalizers) },
			change: func(p *corev1.Pod) { p.UID = "uid-2" },
		},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := drain.Decide(tt.pod, bareConfig(), now)
			require.True(t, d.Action.Writes(), "precondition: %s", d.Action)
			patch, err := drain.Patch(tt.pod, d)
			require.NoError(t, err)

			c := fake.NewClientset(tt.pod.DeepCopy())
			got, err := c.CoreV1().Pods(tt.pod.Namespace).Patch(ctx, tt.pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
			require.NoError(t, err)
			tt.check(t, got)

			changed := tt.pod.DeepCopy()
			tt.change(changed)
			c = fake.NewClientset(changed)
			_, err = c.CoreV1().Pods(tt.pod.Namespace).Patch(ctx, tt.pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
			require.Error(t, err, "the guard must refuse a changed pod")
			assert.Contains(t, err.Error(), "test")
			live, err := c.CoreV1().Pods(tt.pod.Namespace).Get(ctx, tt.pod.Name, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, changed.Finalizers, live.Finalizers, "a refused patch changes nothing")
		})
	}
}

func BenchmarkPatch(b *testing.B) {
	pods := []*corev1.Pod{
		newPod(managed),
		newPod(ours, managed, deleting),
		newPod(ours, managed, deleting, started(s40), statuses(terminated("a", 0), terminated("b", 0))),
	}
	decisions := make([]drain.Decision, len(pods))
	for i, p := range pods {
		decisions[i] = drain.Decide(p, bareConfig(), now)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := drain.Patch(pods[i%len(pods)], decisions[i%len(pods)]); err != nil {
			b.Fatal(err)
		}
	}
}
