//go:build e2e

package workloads

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"function/eventing"
	"function/handlers/advice"
	"function/names"
	"function/test/cluster"
)

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	vpaGVR = schema.GroupVersionResource{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}
)

// installVPACRD installs a minimal VerticalPodAutoscaler CRD (the real one's group, version
// and names; any spec), as a cluster running VPA has it.
func installVPACRD(ctx context.Context, t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "verticalpodautoscalers.autoscaling.k8s.io",
			// As the real CRD carries it (a *.k8s.io group needs it).
			"annotations": map[string]any{"api-approved.kubernetes.io": "https://github.com/kubernetes/kubernetes/pull/63797"}},
		"spec": map[string]any{
			"group": "autoscaling.k8s.io", "scope": "Namespaced",
			"names": map[string]any{"plural": "verticalpodautoscalers", "singular": "verticalpodautoscaler", "kind": "VerticalPodAutoscaler", "shortNames": []any{"vpa"}},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		_, err := dyn.Resource(vpaGVR).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the VerticalPodAutoscaler CRD is served")
}

// ownerEvents lists the DrainNotGraceful Events about one owner object.
func ownerEvents(ctx context.Context, t *testing.T, ns, kind, name string) []string {
	t.Helper()
	list, err := cp.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.kind", kind), fields.OneTermEqualSelector("involvedObject.name", name)).String()})
	require.NoError(t, err)
	var out []string
	for _, e := range list.Items {
		if e.Reason == names.EventDrainNotGraceful {
			out = append(out, e.Type+"/"+e.Reason+": "+e.Message)
		}
	}
	return out
}

// adviceReplies decodes the advice replies the function sent, by owner name.
func adviceReplies(t *testing.T, s *cluster.Stack) map[string][]eventing.ReplyData {
	t.Helper()
	out := map[string][]eventing.ReplyData{}
	for _, x := range s.Proxy.Exchanges() {
		if x.ReplyType != names.ReplyAdvice {
			continue
		}
		var d eventing.ReplyData
		require.NoError(t, json.Unmarshal(x.ReplyBody, &d))
		out[d.Owner] = append(out[d.Owner], d)
	}
	return out
}

func findingIDs(d eventing.ReplyData) []string {
	var ids []string
	for _, f := range d.Findings {
		ids = append(ids, f.ID)
	}
	slices.Sort(ids)
	return ids
}

// Advice fires once per owner, whatever its number of pods, with each finding: a Warning
// Event DrainNotGraceful on the owner and one advice reply with the fixes.
func TestAdviceOncePerOwnerWithEachFinding(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	dyn, err := dynamic.NewForConfig(cp.Config)
	require.NoError(t, err)
	installVPACRD(ctx, t, dyn)
	// A Deployment grace period (45 s) longer than the pods' terminationGracePeriodSeconds (30 s).
	s, _, _ := startStack(t, cluster.KubeletOptions{}, `workloadDefaults={"Deployment":{"gracePeriodSeconds":45}}`)
	c, ns := cp.Client, s.Namespace

	// solo: 1 replica, no probes or hooks, a VPA in Recreate mode.
	vpa := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
		"metadata": map[string]any{"name": "solo-vpa", "namespace": ns},
		"spec": map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "solo"},
			"updatePolicy": map[string]any{"updateMode": "Recreate"}},
	}}
	_, err = dyn.Resource(vpaGVR).Namespace(ns).Create(ctx, vpa, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.AppsV1().Deployments(ns).Create(ctx, cluster.DeploymentSpec(ns, "solo", 1, managedPods), metav1.CreateOptions{})
	require.NoError(t, err)
	// pair: 2 replicas and no PodDisruptionBudget; it is then scaled to 4 (more pods, no more advice).
	_, err = c.AppsV1().Deployments(ns).Create(ctx, cluster.DeploymentSpec(ns, "pair", 2, managedPods), metav1.CreateOptions{})
	require.NoError(t, err)
	pods, err := cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("pair"), 2)
	require.NoError(t, err)
	waitHeld(ctx, t, ns, pods...)
	scale, err := c.AppsV1().Deployments(ns).GetScale(ctx, "pair", metav1.GetOptions{})
	require.NoError(t, err)
	scale.Spec.Replicas = 4
	_, err = c.AppsV1().Deployments(ns).UpdateScale(ctx, "pair", scale, metav1.UpdateOptions{})
	require.NoError(t, err)
	pods, err = cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("pair"), 4)
	require.NoError(t, err)
	waitHeld(ctx, t, ns, pods...)
	solo, err := cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("solo"), 1)
	require.NoError(t, err)
	waitHeld(ctx, t, ns, solo...)

	var replies map[string][]eventing.ReplyData
	require.Eventually(t, func() bool {
		replies = adviceReplies(t, s)
		return len(replies["solo"]) > 0 && len(replies["pair"]) > 0
	}, 30*time.Second, 50*time.Millisecond, "an advice reply for each owner")
	require.Len(t, replies["solo"], 1, "once per owner")
	require.Len(t, replies["pair"], 1, "once per owner, not per pod (4 pods)")
	assert.Equal(t, []string{advice.FindingNoPreStopHook, advice.FindingNoReadinessProbe, advice.FindingSingleReplica,
		advice.FindingShortTermination, advice.FindingUseInPlaceOrRecreate}, findingIDs(replies["solo"][0]))
	assert.Equal(t, []string{advice.FindingNoPDB, advice.FindingNoPreStopHook, advice.FindingNoReadinessProbe,
		advice.FindingShortTermination}, findingIDs(replies["pair"][0]))
	for _, f := range append(replies["solo"][0].Findings, replies["pair"][0].Findings...) {
		assert.NotEmpty(t, f.Message, f.ID)
		assert.NotEmpty(t, f.Fix, "%s: a fix", f.ID)
	}

	for _, owner := range []string{"solo", "pair"} {
		var events []string
		require.Eventually(t, func() bool {
			events = ownerEvents(ctx, t, ns, "Deployment", owner)
			return len(events) > 0
		}, 10*time.Second, 50*time.Millisecond, "a DrainNotGraceful Event on Deployment %s", owner)
		require.Len(t, events, 1, "one Event on %s: %v", owner, events)
		assert.Contains(t, events[0], "Warning/DrainNotGraceful: ")
		for _, f := range replies[owner][0].Findings {
			assert.Contains(t, events[0], f.ID, "the Event names each finding")
		}
	}
}
