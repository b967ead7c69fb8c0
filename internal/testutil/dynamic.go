package testutil

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
)

// Dynamic is a dynamic client over two fakes: the built-in resources are typed's (a
// Deployment created there is read here, as unstructured; each call is made on typed, so it
// is recorded there and goes through typed's reactors, an injected failure too), every other
// resource (a CRD's) is other's (nil: none).
func Dynamic(typed *fake.Clientset, other dynamic.Interface) dynamic.Interface {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err) // the built-in types always register
	}
	builtIn := map[schema.GroupVersionResource]bool{}
	for gvk := range scheme.AllKnownTypes() {
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		builtIn[plural] = true
	}
	d := dynamicfake.NewSimpleDynamicClient(scheme)
	d.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := typed.Invokes(a, nil)
		if err != nil || obj == nil {
			return true, obj, err
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return true, nil, err
		}
		u := &unstructured.Unstructured{Object: m}
		if gvks, _, err := scheme.ObjectKinds(obj); err == nil {
			u.SetGroupVersionKind(gvks[0])
		}
		return true, u, nil
	})
	if other == nil {
		other = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	}
	return routed{builtIn: builtIn, typed: d, other: other}
}

// routed sends each resource to the client that serves it.
type routed struct {
	builtIn      map[schema.GroupVersionResource]bool
	typed, other dynamic.Interface
}

func (r routed) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	if r.builtIn[gvr] {
		return r.typed.Resource(gvr)
	}
	return r.other.Resource(gvr)
}
