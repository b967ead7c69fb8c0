package function_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"function"
	"function/internal/testutil"
)

// An event about a VerticalPodAutoscaler is a hint to evaluate the Deployment it targets: the
// event's data is never used (the VPA is read), nothing is read with surge rollouts off, a
// repeat within its bound reads nothing, and without a cluster it is refused.
func TestHandleVPAEvents(t *testing.T) {
	const data = `{"apiVersion":"autoscaling.k8s.io/v1","kind":"VerticalPodAutoscaler","metadata":{"name":"web","namespace":"default","uid":"6b1c7e0a-3f0e-4a55-9d7e-0c6a4f3b2d11"},` +
		`"spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"updatePolicy":{"updateMode":"Initial"}},"status":{}}`
	ext := []string{"kind", "VerticalPodAutoscaler", "apiversion", "autoscaling.k8s.io/v1", "name", "web", "namespace", "default"}
	update := newEvent("dev.knative.apiserver.resource.update", data, ext...)
	deleted := newEvent("dev.knative.apiserver.resource.delete", data, ext...)
	vpa := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
		"metadata": map[string]any{"name": "web", "namespace": "default"},
		"spec":     map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
	}}
	notOptedIn := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web", ResourceVersion: "1"}}

	t.Run("without a cluster: refused", func(t *testing.T) {
		f := function.New(function.WithLogger(discard), function.WithoutSweeps())
		require.NoError(t, f.Start(context.Background(), map[string]string{"CONFIG_DIR": t.TempDir(), "surgeRollout": "true"}))
		t.Cleanup(func() { _ = f.Stop(context.Background()) })
		reply, err := f.HandleEvent(context.Background(), update)
		assert.Nil(t, reply)
		status, msg := result(t, err)
		assert.Equal(t, http.StatusUnprocessableEntity, status)
		assert.Contains(t, msg, "VerticalPodAutoscaler event for default/web")
	})
	tests := []struct {
		name      string
		surge     string
		event     string
		wantTyped []string
		wantVPAs  []string
	}{
		{name: "surge rollouts off: nothing read", surge: "false", event: "update", wantTyped: []string{}, wantVPAs: []string{}},
		{name: "the VPA read, then the Deployment it targets (not opted in: nothing more)", surge: "true", event: "update",
			wantTyped: []string{"get deployments"}, wantVPAs: []string{"list verticalpodautoscalers"}},
		{name: "deleted: nothing to do", surge: "true", event: "delete", wantTyped: []string{}, wantVPAs: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(notOptedIn)
			dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
				map[schema.GroupVersionResource]string{{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}: "VerticalPodAutoscalerList"}, vpa)
			f := started(t, c, map[string]string{"surgeRollout": tt.surge}, function.WithDynamic(testutil.Dynamic(c, dyn)))
			c.ClearActions()
			e := update
			if tt.event == "delete" {
				e = deleted
			}
			for i := range 2 {
				reply, err := f.HandleEvent(context.Background(), e)
				require.NoError(t, err)
				assert.Nil(t, reply, "nothing started")
				if i == 0 {
					assert.Equal(t, tt.wantTyped, testutil.Verbs(c))
					assert.Equal(t, tt.wantVPAs, testutil.Verbs(dyn))
					c.ClearActions()
					dyn.ClearActions()
				} else {
					assert.Empty(t, testutil.Verbs(c), "a repeat within its bound reads nothing")
					assert.Empty(t, testutil.Verbs(dyn))
				}
			}
		})
	}
}
