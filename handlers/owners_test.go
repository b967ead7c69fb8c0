package handlers_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers"
	"function/internal/testutil"
)

// One generic reader serves every kind the table of kinds marks Read, at the API the table
// gives it: each built-in workload is read with its replicas (for a Replicated kind), selector
// and template; a kind the table does not read is refused without a call.
func TestOwnersReadEveryReadKind(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"vpa-managed": "true"}}}
	meta := func(kind string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "web", Namespace: "default", UID: k8stypes.UID("uid-" + kind)}
	}
	c := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: meta("Deployment"), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: sel, Template: tpl}},
		&appsv1.ReplicaSet{ObjectMeta: meta("ReplicaSet"), Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tpl}}, // replicas unset: 1
		&appsv1.StatefulSet{ObjectMeta: meta("StatefulSet"), Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), Selector: sel, Template: tpl}},
		&appsv1.DaemonSet{ObjectMeta: meta("DaemonSet"), Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tpl}},
	)
	owners := &handlers.Owners{Deps: handlers.Deps{Client: c, Dynamic: testutil.Dynamic(c, nil)}}
	want := map[config.Kind]*int32{config.KindDeployment: ptr.To[int32](3), config.KindReplicaSet: ptr.To[int32](1),
		config.KindStatefulSet: ptr.To[int32](2), config.KindDaemonSet: nil}
	read := 0
	for _, k := range config.Kinds() {
		uid, replicas, selector, template, err := owners.ReadWorkload(context.Background(), "default", k.Spec(), "web")
		if !k.Spec().Read {
			require.Error(t, err, "%s is not read", k)
			continue
		}
		read++
		require.NoError(t, err, "%s", k)
		assert.Equal(t, "uid-"+string(k), string(uid), "%s", k)
		assert.Equal(t, want[k], replicas, "%s: replicas", k)
		assert.Equal(t, sel, selector, "%s", k)
		assert.Equal(t, tpl, template, "%s", k)
	}
	assert.Equal(t, len(want), read, "every Read kind was read")
	assert.Equal(t, []string{"get deployments", "get replicasets", "get statefulsets", "get daemonsets"}, testutil.Verbs(c))
}

// A kind added to the table is one entry: the generic reader reads a custom resource (an
// argoproj.io Rollout, say, which has a scale subresource) at the API its entry gives, with no
// reader of its own.
func TestOwnersReadACustomResourceKind(t *testing.T) {
	gvr := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	rollout := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "shop", "namespace": "default", "uid": "uid-shop"},
		"spec": map[string]any{"replicas": int64(4), "selector": map[string]any{"matchLabels": map[string]any{"app": "shop"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "shop"}}}},
	}}
	crds := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "RolloutList"}, rollout)
	c := fake.NewClientset()
	owners := &handlers.Owners{Deps: handlers.Deps{Client: c, Dynamic: testutil.Dynamic(c, crds)}}
	spec := config.KindSpec{Kind: "Rollout", Controller: true, Manage: true, Replicated: true, Read: true,
		Group: gvr.Group, Version: gvr.Version, Resource: gvr.Resource}
	uid, replicas, selector, template, err := owners.ReadWorkload(context.Background(), "default", spec, "shop")
	require.NoError(t, err)
	assert.Equal(t, "uid-shop", string(uid))
	assert.Equal(t, ptr.To[int32](4), replicas)
	assert.Equal(t, map[string]string{"app": "shop"}, selector.MatchLabels)
	assert.Equal(t, map[string]string{"app": "shop"}, template.Labels)
	assert.Equal(t, []string{"get rollouts"}, testutil.Verbs(crds))
	assert.Empty(t, testutil.Verbs(c), "no built-in read")
	assert.True(t, spec.InGroup("argoproj.io/v1alpha1"), "pacing and advice take its group from the entry")
	assert.Equal(t, "argoproj.io/v1alpha1", spec.APIVersion())
}
