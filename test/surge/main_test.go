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

func TestMain(m *testing.M) {
	os.Exit(cluster.MainWith(m, &cp, &bin, cluster.WithControllerManager(&kcm), cluster.WithVPAAdmissionController(&vac)))
}

// testContext is a context that ends after d or with the test.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func appSelector(name string) labels.Selector { return labels.SelectorFromSet(labels.Set{"app": name}) }
