// Package cluster is the real-cluster test bed: a real etcd and kube-apiserver (started with
// controller-runtime's envtest from the binaries `make binaries` builds into bin/), the real
// Knative ApiServerSource receive adapter, and the function served by func-go as `make run`
// serves it. Every process runs on free loopback ports and is stopped, with its temp dir
// removed, when the test ends, also when it fails.
package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot is the module root (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BinDir is where `make binaries` puts etcd, kube-apiserver and the adapter.
func BinDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "bin")
}

// Binary returns the path of a built component, or an error that says how to build it.
func Binary(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found in %s: run `make binaries` (builds the real components from Go modules, about 10 minutes the first time, then cached)", name, BinDir())
	}
	return p, nil
}

// ControlPlane is a running etcd + kube-apiserver.
type ControlPlane struct {
	env *envtest.Environment
	// Config is an admin client config.
	Config *rest.Config
	// Client is an admin clientset.
	Client kubernetes.Interface
	// Kubeconfig is the path of an admin kubeconfig file, for child processes.
	Kubeconfig string

	// rbacMu guards rbacApplied and fnKubeconfig (see ApplyRBAC, FunctionKubeconfig).
	rbacMu       sync.Mutex
	rbacApplied  bool
	fnKubeconfig string
}

// StartControlPlane starts etcd and kube-apiserver; they are stopped when the test ends.
func StartControlPlane(tb testing.TB) *ControlPlane {
	tb.Helper()
	cp, err := NewControlPlane()
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, cp.Stop()) })
	return cp
}

// NewControlPlane starts etcd and kube-apiserver; call Stop to end them.
func NewControlPlane() (*ControlPlane, error) {
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := Binary(b); err != nil {
			return nil, err
		}
	}
	env := &envtest.Environment{BinaryAssetsDirectory: BinDir(), ControlPlaneStartTimeout: time.Minute, ControlPlaneStopTimeout: time.Minute}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", BinDir(), err)
	}
	cp := &ControlPlane{env: env, Config: cfg}
	if err := cp.setup(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) setup() error {
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating admin client: %w", err)
	}
	cp.Client = client
	user, err := cp.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing admin kubeconfig: %w", err)
	}
	dir, err := os.MkdirTemp("", "vpagd-kubeconfig-")
	if err != nil {
		return fmt.Errorf("creating kubeconfig dir: %w", err)
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// Stop ends kube-apiserver and etcd and removes their files.
func (cp *ControlPlane) Stop() error {
	if cp.Kubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(cp.Kubeconfig))
	}
	if err := cp.env.Stop(); err != nil {
		return fmt.Errorf("stopping control plane: %w", err)
	}
	return nil
}

// Namespace creates a namespace named prefix-XXXXX for a test (see NewNamespace).
func (cp *ControlPlane) Namespace(tb testing.TB, prefix string) string {
	tb.Helper()
	ns, err := cp.NewNamespace(context.Background(), metav1.ObjectMeta{GenerateName: prefix + "-"})
	require.NoError(tb, err)
	return ns
}

// NewNamespace creates a namespace with a default ServiceAccount (there is no controller
// manager to make one) and returns its name.
func (cp *ControlPlane) NewNamespace(ctx context.Context, meta metav1.ObjectMeta) (string, error) {
	ns, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: meta}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("creating namespace: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := cp.Client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating the default service account of %s: %w", ns.Name, err)
	}
	return ns.Name, nil
}

// StopOnAbort stops the control plane and exits if the process gets SIGINT or SIGTERM, or
// when its -test.timeout is about to kill it (a test binary killed that way runs no cleanup,
// and etcd and kube-apiserver would outlive it). Call the returned func once done normally.
func (cp *ControlPlane) StopOnAbort() (disarm func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	var timeout <-chan time.Time
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > time.Minute {
			timeout = time.After(d - 20*time.Second)
		}
	}
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "%s: stopping etcd and kube-apiserver\n", s)
		case <-timeout:
			fmt.Fprintln(os.Stderr, "test timeout is near: stopping etcd and kube-apiserver before the test binary is killed")
		case <-done:
			return
		}
		_ = cp.Stop()
		os.Exit(1)
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}
