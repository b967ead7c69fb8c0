//go:build integration

package knative_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"function/test/cluster"
	"function/test/knative"
)

// The namespace knative.yaml's objects live in.
const namespace = "vpa-graceful-drain"

var (
	cp *cluster.ControlPlane
	// resources maps the kinds of the installed Eventing CRDs to their resources.
	resources map[schema.GroupVersionKind]schema.GroupVersionResource
)

// TestMain starts a real etcd and kube-apiserver (no function, no adapter: nothing runs but
// the API server), installs the Eventing CRDs from the knative.dev/eventing module and creates
// the manifests' namespace.
func TestMain(m *testing.M) {
	os.Exit(cluster.ControlPlaneMain(m, &cp, func(*cluster.ControlPlane) error { return setup() }))
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if resources, err = installCRDs(ctx); err != nil {
		return err
	}
	if _, err := cp.NewNamespace(ctx, metav1.ObjectMeta{Name: namespace}); err != nil {
		return err
	}
	return nil
}

// installCRDs creates the CustomResourceDefinitions of knative.CRDFiles, read from the module
// cache, and waits until each is established.
func installCRDs(ctx context.Context) (map[schema.GroupVersionKind]schema.GroupVersionResource, error) {
	files, err := knative.CRDFiles()
	if err != nil {
		return nil, err
	}
	client, err := apiextensionsclient.NewForConfig(cp.Config)
	if err != nil {
		return nil, err
	}
	gvrs := map[schema.GroupVersionKind]schema.GroupVersionResource{}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s: a %s, not a CustomResourceDefinition", f, crd.Kind)
		}
		if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("installing %s from %s: %w", crd.Name, filepath.Base(f), err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Served {
				gvrs[schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}] =
					schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural}
			}
		}
		names = append(names, crd.Name)
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return nil, fmt.Errorf("waiting for CRD %s to be established: %w", name, err)
		}
	}
	return gvrs, nil
}

// warnings collects the API server's warning headers.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

func dynamicClient(t *testing.T) (dynamic.Interface, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandler = w
	c, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	return c, w
}

// dryRun creates doc with server-side dry-run (dryRun=All) and strict field validation: the
// API server decodes, defaults and validates it against the CRD's openAPIV3Schema, runs
// admission, and stores nothing.
func dryRun(ctx context.Context, c dynamic.Interface, doc knative.Document) (*unstructured.Unstructured, error) {
	var u unstructured.Unstructured
	if err := yaml.Unmarshal(doc.YAML, &u.Object); err != nil {
		return nil, err
	}
	gvr, ok := resources[u.GroupVersionKind()]
	if !ok {
		return nil, fmt.Errorf("%s %q: no installed CRD serves %s", doc.Kind, doc.Name, u.GroupVersionKind())
	}
	return c.Resource(gvr).Namespace(u.GetNamespace()).Create(ctx, &u, metav1.CreateOptions{
		DryRun:          []string{metav1.DryRunAll},
		FieldValidation: metav1.FieldValidationStrict,
	})
}

func manifest(t *testing.T, examples ...string) []knative.Document {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "eventing", "knative.yaml"))
	require.NoError(t, err)
	for _, e := range examples {
		b, err = knative.Uncomment(b, e)
		require.NoError(t, err)
	}
	docs, err := knative.Documents(b)
	require.NoError(t, err)
	require.NotEmpty(t, docs)
	return docs
}

// Every document of eventing/knative.yaml, as shipped and with its commented-out examples
// switched on, is accepted by a real kube-apiserver serving the Eventing CRDs of
// knative.dev/eventing, with server-side dry-run: no rejection, no warning, nothing stored.
func TestManifestsServerSideDryRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, w := dynamicClient(t)
	for name, examples := range map[string][]string{"as shipped": nil, "with the examples": {"timeouts", "dead-letter"}} {
		t.Run(name, func(t *testing.T) {
			for _, doc := range manifest(t, examples...) {
				require.Equal(t, namespace, doc.Namespace, "%s %s", doc.Kind, doc.Name)
				out, err := dryRun(ctx, c, doc)
				require.NoError(t, err, "%s %s rejected", doc.Kind, doc.Name)
				assert.Equal(t, doc.Name, out.GetName())
				assert.Empty(t, w.take(), "%s %s: API server warnings", doc.Kind, doc.Name)
			}
		})
	}
	for _, gvr := range resources {
		l, err := c.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		assert.Empty(t, l.Items, "dry-run stored no %s", gvr.Resource)
	}
}

// The dry-run is not vacuous: the CRDs' schemas reject a wrongly typed field and a malformed
// name. They do not reject an unknown field in a Trigger's or a source's spec (the CRDs
// preserve unknown fields there, for experimental features, and leave them to the eventing
// webhook): that is caught by eventing/'s strict decoding into the Go types (see
// TestKnativeManifestsRejectMistakes), shown here on the same edit.
func TestServerSideDryRunCatchesMistakes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _ := dynamicClient(t)
	edit := func(t *testing.T, kind, name, old, new string) knative.Document {
		t.Helper()
		for _, d := range manifest(t) {
			if d.Kind == kind && d.Name == name {
				require.Contains(t, string(d.YAML), old, "precondition: %s %s has the text to edit", kind, name)
				d.YAML = []byte(strings.Replace(string(d.YAML), old, new, 1))
				return d
			}
		}
		t.Fatalf("no %s %s in knative.yaml", kind, name)
		return knative.Document{}
	}

	for _, tt := range []struct {
		name, kind, docName, old, new string
	}{
		{"retry not an integer", "Trigger", "vpa-graceful-drain", "retry: 8", `retry: "eight"`},
		{"schedule not a string", "PingSource", "vpa-graceful-drain-sweep", `schedule: "* * * * *"`, "schedule: [1]"},
		{"invalid name", "Broker", "vpa-graceful-drain", "name: vpa-graceful-drain", "name: VPA_Graceful_Drain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dryRun(ctx, c, edit(t, tt.kind, tt.docName, tt.old, tt.new))
			require.Error(t, err)
			t.Log(err)
			assert.True(t, apierrors.IsInvalid(err) || apierrors.IsBadRequest(err), "%v", err)
		})
	}

	t.Run("unknown spec field: accepted by the CRD schema, rejected by the strict decoding", func(t *testing.T) {
		d := edit(t, "Trigger", "vpa-graceful-drain", "    retry: 8\n", "    retry: 8\n    retries: 8\n")
		_, err := knative.Decode(d)
		require.ErrorContains(t, err, `unknown field "spec.delivery.retries"`)
		_, err = dryRun(ctx, c, d)
		t.Logf("server-side dry-run of the same Trigger: %v", err)
	})
}
