//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"function/names"
	"function/test/cluster"
)

// policyPod creates, as the admin, a pod as the function finds it: labelled, managed, with
// someone else's annotation and finalizer (and, when held, the function's finalizer and its
// drain annotations). The test's cleanup removes it.
func policyPod(t *testing.T, ns, name string, held bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := cluster.PodSpec(ns, name, true)
	pod.Annotations["example.com/keep"] = "1"
	pod.Finalizers = []string{"example.com/keep"}
	if held {
		pod.Finalizers = append(pod.Finalizers, names.Finalizer)
		pod.Annotations[names.AnnotationDrainStarted] = "2030-01-01T00:00:00Z"
		pod.Annotations[names.AnnotationDrainDeadline] = "2030-01-01T00:10:00Z"
	}
	pod, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		pods := cp.Client.CoreV1().Pods(ns)
		_, _ = pods.Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		_ = pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
	return pod
}

// jsonPatch encodes RFC 6902 operations, each given as op, path and (but for remove) value.
func jsonPatch(t *testing.T, ops ...[]any) []byte {
	t.Helper()
	var out []map[string]any
	for _, o := range ops {
		m := map[string]any{"op": o[0], "path": o[1]}
		if len(o) > 2 {
			m["value"] = o[2]
		}
		out = append(out, m)
	}
	b, err := json.Marshal(out)
	require.NoError(t, err)
	return b
}

// The function's ServiceAccount and its client, once RBAC grants it patch on pods.
func functionClient(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	cfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	require.NoError(t, err)
	require.NoError(t, cluster.WaitAuthorized(ctx, cfg, authorizationv1.ResourceAttributes{Verb: "patch", Resource: "pods", Namespace: ns}))
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return client
}

// config/admission-policy.yaml, applied to a real API server: the function's ServiceAccount may
// change only its own finalizer and its own vpagracefuldrain.dev/ annotations on a pod; any
// other change it makes is refused with the policy's message, and nobody else is affected.
func TestIntegrationAdmissionPolicy(t *testing.T) {
	ctx := context.Background()
	require.NoError(t, cp.ApplyRBAC(ctx)) // rbac.yaml, then the policy and its binding
	ns := cp.Namespace(t, "vap")
	fn := functionClient(t, ns)
	_, binding, err := cluster.AdmissionPolicyObjects()
	require.NoError(t, err)
	admission := cp.Client.AdmissionregistrationV1()

	image := jsonPatch(t, []any{"replace", "/spec/containers/0/image", "evil.example.com/miner"})

	// Without the binding, RBAC alone lets the function's token change the image: the policy is
	// what refuses it below.
	require.NoError(t, admission.ValidatingAdmissionPolicyBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}))
	t.Cleanup(func() { require.NoError(t, cluster.CreateAdmissionPolicy(context.Background(), cp.Client)) })
	before := policyPod(t, ns, "before", false)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := fn.CoreV1().Pods(ns).Patch(ctx, before.Name, types.JSONPatchType, image, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		assert.NoError(c, err)
	}, 30*time.Second, 50*time.Millisecond, "the binding's deletion reaches the API server's cache")
	patched, err := fn.CoreV1().Pods(ns).Patch(ctx, before.Name, types.JSONPatchType, image, metav1.PatchOptions{})
	require.NoError(t, err, "RBAC's patch pods alone allows an image change")
	require.Equal(t, "evil.example.com/miner", patched.Spec.Containers[0].Image)

	require.NoError(t, cluster.CreateAdmissionPolicy(ctx, cp.Client))
	fnCfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	require.NoError(t, err)
	require.NoError(t, cluster.WaitAdmissionPolicy(ctx, cp.Client, fnCfg))

	annotation := func(key string) string { return "/metadata/annotations/" + jsonPointerEscape(key) }
	tests := []struct {
		name  string
		held  bool   // the pod holds the function's finalizer and drain annotations
		patch []byte // a JSON patch
		// refused is the policy's message when the function's ServiceAccount is refused; ""
		// when it may.
		refused string
	}{
		// What the function writes (handlers.Patch: test ops first).
		{name: "add its finalizer, guarded", patch: jsonPatch(t,
			[]any{"test", "/metadata/finalizers", []string{"example.com/keep"}},
			[]any{"test", annotation("vpa-managed"), "true"},
			[]any{"add", "/metadata/finalizers/-", names.Finalizer})},
		{name: "add its finalizer first", patch: jsonPatch(t, []any{"add", "/metadata/finalizers/0", names.Finalizer})},
		{name: "stamp the drain", patch: jsonPatch(t,
			[]any{"test", annotation(names.AnnotationDrainStarted), nil},
			[]any{"add", annotation(names.AnnotationDrainStarted), "2030-01-01T00:00:00Z"},
			[]any{"add", annotation(names.AnnotationDrainDeadline), "2030-01-01T00:10:00Z"})},
		{name: "re-stamp the drain", held: true, patch: jsonPatch(t,
			[]any{"replace", annotation(names.AnnotationDrainStarted), "2030-01-01T00:01:00Z"})},
		{name: "remove its finalizer", held: true, patch: jsonPatch(t,
			[]any{"test", "/metadata/finalizers/1", names.Finalizer},
			[]any{"remove", "/metadata/finalizers/1"})},
		{name: "remove its finalizer and annotations", held: true, patch: jsonPatch(t,
			[]any{"remove", "/metadata/finalizers/1"},
			[]any{"remove", annotation(names.AnnotationDrainStarted)},
			[]any{"remove", annotation(names.AnnotationDrainDeadline)})},
		{name: "a patch that changes nothing", patch: jsonPatch(t, []any{"test", "/spec/containers/0/image", "busybox"})},

		// What a stolen token would write.
		{name: "image", patch: image, refused: "vpa-graceful-drain may not change a pod's spec"},
		{name: "another spec field", patch: jsonPatch(t, []any{"add", "/spec/activeDeadlineSeconds", 1}),
			refused: "vpa-graceful-drain may not change a pod's spec"},
		{name: "image, with its finalizer", patch: jsonPatch(t, []any{"add", "/metadata/finalizers/-", names.Finalizer},
			[]any{"replace", "/spec/containers/0/image", "evil.example.com/miner"}), refused: "vpa-graceful-drain may not change a pod's spec"},
		{name: "add a label", patch: jsonPatch(t, []any{"add", "/metadata/labels/evil", "1"}),
			refused: "vpa-graceful-drain may not change a pod's labels"},
		{name: "change a label", patch: jsonPatch(t, []any{"replace", "/metadata/labels/app", "db"}),
			refused: "vpa-graceful-drain may not change a pod's labels"},
		{name: "remove the labels", patch: jsonPatch(t, []any{"remove", "/metadata/labels"}),
			refused: "vpa-graceful-drain may not change a pod's labels"},
		{name: "add another annotation", patch: jsonPatch(t, []any{"add", annotation("example.com/evil"), "1"}),
			refused: "vpa-graceful-drain may set or remove only its own vpagracefuldrain.dev/ annotations"},
		{name: "a lookalike annotation prefix", patch: jsonPatch(t, []any{"add", annotation("vpagracefuldrain.dev.example.com/x"), "1"}),
			refused: "vpa-graceful-drain may set or remove only its own vpagracefuldrain.dev/ annotations"},
		{name: "opt the pod out of VPA's management", patch: jsonPatch(t, []any{"replace", annotation("vpa-managed"), "false"}),
			refused: "vpa-graceful-drain may set or remove only its own vpagracefuldrain.dev/ annotations"},
		{name: "remove another annotation", held: true, patch: jsonPatch(t, []any{"remove", annotation("example.com/keep")}),
			refused: "vpa-graceful-drain may set or remove only its own vpagracefuldrain.dev/ annotations"},
		{name: "add another finalizer", patch: jsonPatch(t, []any{"add", "/metadata/finalizers/-", "example.com/evil"}),
			refused: "vpa-graceful-drain may add or remove only its own finalizer vpagracefuldrain.dev/drain"},
		{name: "remove another finalizer", held: true, patch: jsonPatch(t, []any{"remove", "/metadata/finalizers/0"}),
			refused: "vpa-graceful-drain may add or remove only its own finalizer vpagracefuldrain.dev/drain"},
		{name: "add an owner", patch: jsonPatch(t, []any{"add", "/metadata/ownerReferences", []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: "evil", UID: "6b1c0a7e-7a35-4c2c-9a57-3f6f3ad1a001"}}}),
			refused: "vpa-graceful-drain may not change a pod's ownerReferences"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("pod-%d", i)
			pod := policyPod(t, ns, name, tt.held)
			_, err := fn.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.JSONPatchType, tt.patch, metav1.PatchOptions{FieldManager: names.Component})
			if tt.refused == "" {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.True(t, apierrors.IsForbidden(err), "403, not a 422 the function would take for a failed guard: %v", err)
				assert.True(t, cluster.IsAdmissionPolicyRefusal(err), "refused by the policy: %v", err)
				assert.Contains(t, err.Error(), "denied request: "+tt.refused)
				live, err := cp.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, pod.ResourceVersion, live.ResourceVersion, "the pod is unchanged")
			}

			// The admin is not affected: the same patch, on a pod as it was, passes.
			admin := policyPod(t, ns, name+"-admin", tt.held)
			_, err = cp.Client.CoreV1().Pods(ns).Patch(ctx, admin.Name, types.JSONPatchType, tt.patch, metav1.PatchOptions{})
			require.NoError(t, err, "as the admin")
		})
	}
}

// Writes to a pod other than a patch of the pod itself (creating, deleting or evicting pods,
// writing pods/status or pods/ephemeralcontainers): RBAC does not grant them to the function's
// ServiceAccount, and were a careless RoleBinding to grant them, the policy still refuses them.
func TestIntegrationAdmissionPolicyRefusesEveryOtherPodWrite(t *testing.T) {
	ctx := context.Background()
	require.NoError(t, cp.ApplyRBAC(ctx))
	ns := cp.Namespace(t, "vap")
	fn := functionClient(t, ns)
	fnCfg, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	require.NoError(t, err)
	require.NoError(t, cluster.WaitAdmissionPolicy(ctx, cp.Client, fnCfg))

	writes := []struct {
		name, refused string
		access        authorizationv1.ResourceAttributes
		write         func(pod *corev1.Pod) error
	}{
		{"create a pod", "vpa-graceful-drain may only patch pods, not CREATE pods",
			authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: ns},
			func(pod *corev1.Pod) error {
				_, err := fn.CoreV1().Pods(ns).Create(ctx, cluster.PodSpec(ns, pod.Name+"-new", false), metav1.CreateOptions{})
				return err
			}},
		{"delete a pod", "vpa-graceful-drain may only patch pods, not DELETE pods",
			authorizationv1.ResourceAttributes{Verb: "delete", Resource: "pods", Namespace: ns},
			func(pod *corev1.Pod) error { return fn.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}) }},
		{"evict a pod", "vpa-graceful-drain may only patch pods, not CREATE pods/eviction",
			authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Subresource: "eviction", Namespace: ns},
			func(pod *corev1.Pod) error {
				return fn.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: ns}})
			}},
		{"patch pods/status", "vpa-graceful-drain may only patch pods, not UPDATE pods/status",
			authorizationv1.ResourceAttributes{Verb: "patch", Resource: "pods", Subresource: "status", Namespace: ns},
			func(pod *corev1.Pod) error {
				_, err := fn.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, []byte(`{"status":{"phase":"Failed"}}`), metav1.PatchOptions{}, "status")
				return err
			}},
		{"patch pods/ephemeralcontainers", "vpa-graceful-drain may only patch pods, not UPDATE pods/ephemeralcontainers",
			authorizationv1.ResourceAttributes{Verb: "patch", Resource: "pods", Subresource: "ephemeralcontainers", Namespace: ns},
			func(pod *corev1.Pod) error {
				_, err := fn.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType,
					[]byte(`{"spec":{"ephemeralContainers":[{"name":"debug","image":"evil.example.com/shell","terminationMessagePolicy":"File"}]}}`),
					metav1.PatchOptions{}, "ephemeralcontainers")
				return err
			}},
	}

	// RBAC refuses them first (its 403, not the policy's).
	for i, w := range writes {
		pod := policyPod(t, ns, fmt.Sprintf("rbac-%d", i), false)
		err := w.write(pod)
		assert.True(t, apierrors.IsForbidden(err), "%s: %v", w.name, err)
		assert.False(t, cluster.IsAdmissionPolicyRefusal(err), "%s: RBAC refuses it: %v", w.name, err)
	}

	// A careless grant of all of them, in this namespace.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "careless", Namespace: ns}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"pods", "pods/status", "pods/eviction", "pods/ephemeralcontainers"},
		Verbs: []string{"create", "delete", "patch"},
	}}}
	_, err = cp.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "careless", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: cluster.FunctionNamespace, Name: cluster.FunctionServiceAccount}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	var accesses []authorizationv1.ResourceAttributes
	for _, w := range writes {
		accesses = append(accesses, w.access)
	}
	require.NoError(t, cluster.WaitAuthorized(ctx, fnCfg, accesses...))

	for i, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			pod := policyPod(t, ns, fmt.Sprintf("granted-%d", i), false)
			err := w.write(pod)
			require.Error(t, err)
			assert.True(t, apierrors.IsForbidden(err), "%v", err)
			assert.True(t, cluster.IsAdmissionPolicyRefusal(err), "refused by the policy: %v", err)
			assert.Contains(t, err.Error(), "denied request: "+w.refused)
			live, err := cp.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, pod.ResourceVersion, live.ResourceVersion, "the pod is unchanged")
		})
	}
}

// jsonPointerEscape escapes a key for a JSON pointer (RFC 6901).
func jsonPointerEscape(key string) string {
	out := make([]rune, 0, len(key))
	for _, r := range key {
		switch r {
		case '~':
			out = append(out, '~', '0')
		case '/':
			out = append(out, '~', '1')
		default:
			out = append(out, r)
		}
	}
	return string(out)
}
