//go:build e2e

// Package surge tests surge rollouts on the real-cluster test bed with VPA's real
// admission controller (one for the package) (bin/vpa-admission-controller, registered by URL on loopback with a CA
// the harness makes) and VPA's real CRDs, beside a real kube-controller-manager and the
// harness's workload kubelet.
package surge

import (
	"context"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"function/test/cluster"
)

var (
	cp  *cluster.ControlPlane
	kcm *cluster.ControllerManager
	vac *cluster.VPAAdmissionController
	bin string
)

// vpaNamespace is where the package's VPA admission controller runs, as VPA's official chart
// installs it (in its release namespace): its status Lease is there, not in kube-system, so
// every bed's function is told so (admissionControllerStatusLeaseNamespace) unless a test
// checks the default.
const vpaNamespace = "vpa-system"

func TestMain(m *testing.M) {
	os.Exit(cluster.MainWith(m, &cp, &bin, withControllerManager,
		cluster.WithVPAAdmissionController(&vac, cluster.VPANamespace(vpaNamespace))))
}

// withControllerManager runs kube-controller-manager for the package, and at the end stops the
// one running then (holdDeploymentController replaces it).
func withControllerManager(cp *cluster.ControlPlane) (func() error, error) {
	var err error
	if kcm, err = cluster.NewControllerManager(cp); err != nil {
		return nil, err
	}
	return func() error { return kcm.Stop() }, nil
}

// testContext is a context that ends after d or with the test.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func appSelector(name string) labels.Selector { return labels.SelectorFromSet(labels.Set{"app": name}) }
