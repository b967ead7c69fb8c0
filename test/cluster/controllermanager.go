package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
)

// ControllerManagerControllers are the only controllers the test kube-controller-manager
// runs: the workload controllers, EndpointSlices, PodDisruptionBudgets and the garbage
// collector. Without the node lifecycle controller nothing taints or evicts pods of Nodes that
// no kubelet heartbeats; without the pod garbage collector nothing force-deletes pods of
// missing nodes; without the service account controllers namespaces get no tokens (the
// harness creates their default ServiceAccount itself).
var ControllerManagerControllers = []string{
	"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
	"endpointslice-controller", "disruption-controller", "garbage-collector-controller",
}

// ControllerManager is a real kube-controller-manager (bin/kube-controller-manager) running
// against a ControlPlane.
type ControllerManager struct {
	*Process
	// Addr is its secure serving address (https, a self-signed certificate).
	Addr    string
	certDir string
}

// StartControllerManager starts kube-controller-manager against cp and waits until it is
// healthy; it is stopped when the test ends, and its output logged if the test failed.
func StartControllerManager(tb testing.TB, cp *ControlPlane) *ControllerManager {
	tb.Helper()
	cm, err := NewControllerManager(cp)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("kube-controller-manager output (tail):\n%s", tail(cm.Output(), 40))
		}
		require.NoError(tb, cm.Stop())
	})
	return cm
}

// NewControllerManager starts kube-controller-manager against cp with the admin kubeconfig,
// on a free loopback port, and waits until its /healthz answers 200; call Stop to end it.
//
// Measured on a 2-core machine (kube-controller-manager v1.37.2, 7 controllers): /healthz
// answers 200 0.3 to 0.55 s after the process starts; a Deployment created before it started
// has its first pod 0.15 to 0.2 s later (informers synced, controllers running); Stop takes
// 10 to 25 ms.
func NewControllerManager(cp *ControlPlane) (*ControllerManager, error) {
	bin, err := Binary("kube-controller-manager")
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	certDir, err := os.MkdirTemp("", "vpagd-kcm-")
	if err != nil {
		return nil, fmt.Errorf("creating kube-controller-manager cert dir: %w", err)
	}
	args := []string{
		"--kubeconfig=" + cp.Kubeconfig,
		// Delegated authentication and authorization of its own endpoints go to the same API
		// server; /healthz is always allowed (--authorization-always-allow-paths).
		"--authentication-kubeconfig=" + cp.Kubeconfig,
		"--authorization-kubeconfig=" + cp.Kubeconfig,
		"--authentication-skip-lookup=true",
		"--bind-address=127.0.0.1",
		"--secure-port=" + port,
		// It writes a self-signed serving certificate here (default /var/run/kubernetes).
		"--cert-dir=" + certDir,
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--controllers=" + strings.Join(ControllerManagerControllers, ","),
		"-v=2",
	}
	p, err := StartProcess("kube-controller-manager", bin, args, nil)
	if err != nil {
		_ = os.RemoveAll(certDir)
		return nil, err
	}
	cm := &ControllerManager{Process: p, Addr: addr, certDir: certDir}
	if err := cm.waitHealthy(context.Background(), 60*time.Second); err != nil {
		_ = cm.Stop()
		return nil, fmt.Errorf("kube-controller-manager not healthy: %w\n%s", err, tail(p.Output(), 40))
	}
	return cm, nil
}

// waitHealthy polls https://Addr/healthz (self-signed certificate) until it answers 200.
func (cm *ControllerManager) waitHealthy(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // its own self-signed certificate
	}
	defer client.CloseIdleConnections()
	url := "https://" + cm.Addr + "/healthz"
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		if cm.Exited() {
			return false, fmt.Errorf("exited before %s answered: %v", url, cm.err)
		}
		return false, nil
	})
	if wait.Interrupted(err) && ctx.Err() == nil {
		return fmt.Errorf("%s did not answer 200 within %s (last error: %v)", url, timeout, last)
	}
	return err
}

// Stop ends kube-controller-manager and removes its cert dir.
func (cm *ControllerManager) Stop() error {
	err := cm.Process.Stop()
	return errors.Join(err, os.RemoveAll(cm.certDir))
}

// MainOption adds a component to MainWith: it starts after the control plane and returns how
// to stop it.
type MainOption func(cp *ControlPlane) (stop func() error, err error)

// WithControllerManager makes MainWith run kube-controller-manager for the whole package and
// store it in *cm.
func WithControllerManager(cm **ControllerManager) MainOption {
	return func(cp *ControlPlane) (func() error, error) {
		var err error
		if *cm, err = NewControllerManager(cp); err != nil {
			return nil, err
		}
		return (*cm).Stop, nil
	}
}
