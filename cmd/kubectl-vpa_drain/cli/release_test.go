package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"function/names"
)

func heldPod(finalizers ...string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", UID: "uid-1", Finalizers: finalizers}}
}

var (
	podsResource = schema.GroupResource{Resource: "pods"}
	podsGVR      = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// releaseRun runs release against client and returns its exit code, stdout and stderr.
func releaseRun(client *fake.Clientset, reason string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := release(context.Background(), client, "shop", "web-1", "alice", reason, &out, &errOut)
	return code, out.String(), errOut.String()
}

func events(t *testing.T, client *fake.Clientset) []corev1.Event {
	t.Helper()
	list, err := client.CoreV1().Events("shop").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	return list.Items
}

// The patch is the function's guarded one (uid and the finalizer at its index); only our
// finalizer goes; the Event says who and why.
func TestReleasePatchAndEvent(t *testing.T) {
	client := fake.NewClientset(heldPod("example.com/keep", names.Finalizer))
	var patches []string
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		assert.Equal(t, types.JSONPatchType, p.GetPatchType())
		patches = append(patches, string(p.GetPatch()))
		return false, nil, nil
	})
	code, out, errOut := releaseRun(client, "INC-1234")
	assert.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "pod shop/web-1 released: finalizer vpagracefuldrain.dev/drain removed\n", out)
	assert.Contains(t, errOut, "note: pod shop/web-1 is not deleting")
	require.Len(t, patches, 1)
	var ops []map[string]any
	require.NoError(t, json.Unmarshal([]byte(patches[0]), &ops))
	assert.Equal(t, []map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": "uid-1"},
		{"op": "test", "path": "/metadata/finalizers/1", "value": names.Finalizer},
		{"op": "remove", "path": "/metadata/finalizers/1", "value": nil},
	}, ops)
	pod, err := client.CoreV1().Pods("shop").Get(context.Background(), "web-1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"example.com/keep"}, pod.Finalizers)
	evs := events(t, client)
	require.Len(t, evs, 1)
	assert.Equal(t, names.EventFinalizerRemoved, evs[0].Reason)
	assert.Equal(t, corev1.EventTypeNormal, evs[0].Type)
	assert.Equal(t, "Finalizer vpagracefuldrain.dev/drain released by hand with kubectl vpa-drain by alice: INC-1234", evs[0].Message)
	assert.Equal(t, types.UID("uid-1"), evs[0].InvolvedObject.UID)
}

// A 409 or 422 (the pod changed) is followed by a re-read and one more patch, built on the
// live pod; a second refusal is an error.
func TestReleaseRetriesOnceWhenThePodChanged(t *testing.T) {
	for _, refusal := range []error{
		apierrors.NewConflict(podsResource, "web-1", nil),
		apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "web-1", nil),
	} {
		client := fake.NewClientset(heldPod(names.Finalizer))
		refusals := 1
		client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			if refusals > 0 {
				refusals--
				// Meanwhile another finalizer came first: the index moved.
				require.NoError(t, client.Tracker().Update(podsGVR, heldPod("example.com/first", names.Finalizer), "shop"))
				return true, nil, refusal
			}
			return false, nil, nil
		})
		code, out, errOut := releaseRun(client, "")
		assert.Equal(t, exitOK, code, errOut)
		assert.Contains(t, out, "released")
		pod, err := client.CoreV1().Pods("shop").Get(context.Background(), "web-1", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, []string{"example.com/first"}, pod.Finalizers)
		evs := events(t, client)
		require.Len(t, evs, 1)
		assert.Equal(t, "Finalizer vpagracefuldrain.dev/drain released by hand with kubectl vpa-drain by alice: no reason given", evs[0].Message)
	}

	client := fake.NewClientset(heldPod(names.Finalizer))
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(podsResource, "web-1", nil)
	})
	code, out, errOut := releaseRun(client, "")
	assert.Equal(t, exitError, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, `error: cannot patch pods "web-1" in namespace shop: `)
	assert.Empty(t, events(t, client))
}

func TestReleaseRefusesAndTolerates(t *testing.T) {
	// A pod without our finalizer: refused, nothing written.
	client := fake.NewClientset(heldPod("example.com/keep"))
	code, out, errOut := releaseRun(client, "")
	assert.Equal(t, exitError, code)
	assert.Empty(t, out)
	assert.Equal(t, "error: pod shop/web-1 does not hold the finalizer vpagracefuldrain.dev/drain: nothing to release (its finalizers: example.com/keep)\n", errOut)
	assert.Empty(t, events(t, client))

	// Gone: nothing to do.
	code, out, _ = releaseRun(fake.NewClientset(), "")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "pod shop/web-1 not found: already gone, nothing to release\n", out)

	// Gone between the read and the patch.
	client = fake.NewClientset(heldPod(names.Finalizer))
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(podsResource, "web-1")
	})
	code, out, _ = releaseRun(client, "")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "already gone")

	// Released by the function meanwhile: done.
	client = fake.NewClientset(heldPod(names.Finalizer))
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		require.NoError(t, client.Tracker().Update(podsGVR, heldPod(), "shop"))
		return true, nil, apierrors.NewConflict(podsResource, "web-1", nil)
	})
	code, out, _ = releaseRun(client, "")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "already removed meanwhile")

	// Replaced by a new pod of the same name: not released.
	client = fake.NewClientset(heldPod(names.Finalizer))
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		p := heldPod(names.Finalizer)
		p.UID = "uid-2"
		require.NoError(t, client.Tracker().Update(podsGVR, p, "shop"))
		return true, nil, apierrors.NewConflict(podsResource, "web-1", nil)
	})
	code, _, errOut = releaseRun(client, "")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "was replaced by a new pod of the same name (uid uid-2, was uid-1): not released")

	// Forbidden: the verb and the resource are named.
	client = fake.NewClientset(heldPod(names.Finalizer))
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(podsResource, "web-1", nil)
	})
	code, _, errOut = releaseRun(client, "")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `error: forbidden: cannot patch pods "web-1" in namespace shop (needs RBAC: patch on pods): `)
}

// The Event is only a record: a release whose Event cannot be written still succeeds, warned.
func TestReleaseEventRefused(t *testing.T) {
	client := fake.NewClientset(heldPod(names.Finalizer))
	client.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", nil)
	})
	code, out, errOut := releaseRun(client, "")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "released")
	assert.Contains(t, errOut, "warning: the pod is released, but its FinalizerRemoved Event was not recorded")
}
