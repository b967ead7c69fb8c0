package testutil_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"function/internal/testutil"
)

func TestVerbs(t *testing.T) {
	c := fake.NewClientset()
	assert.Equal(t, []string{}, testutil.Verbs(c), "never nil")
	_, _ = c.CoreV1().Pods("default").Get(context.Background(), "x", metav1.GetOptions{})
	_, _ = c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	assert.Equal(t, []string{"get pods", "list pods"}, testutil.Verbs(c))

	gvr := schema.GroupVersionResource{Group: "autoscaling.k8s.io", Version: "v1", Resource: "verticalpodautoscalers"}
	d := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "VerticalPodAutoscalerList"})
	_, _ = d.Resource(gvr).Namespace("default").List(context.Background(), metav1.ListOptions{})
	assert.Equal(t, []string{"list verticalpodautoscalers"}, testutil.Verbs(d))
}

func TestSyncBuffer(t *testing.T) {
	var b testutil.SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, strings.Repeat("x", 800), b.String())
}
