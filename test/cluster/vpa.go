package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/status"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// VPAWebhookConfig is the MutatingWebhookConfiguration VPA's admission controller registers.
const VPAWebhookConfig = "vpa-webhook-config"

// VPAModuleDir is where the Go module cache holds k8s.io/autoscaler/vertical-pod-autoscaler,
// at the version the function's go.mod pins (its CRDs are in deploy/).
func VPAModuleDir() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/autoscaler/vertical-pod-autoscaler")
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the VPA module (go list -m): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// InstallVPACRDs installs VPA's CRDs (VerticalPodAutoscaler, VerticalPodAutoscalerCheckpoint)
// from the pinned module's deploy/vpa-v1-crd-gen.yaml and waits until they are served.
func InstallVPACRDs(cp *ControlPlane) error {
	dir, err := VPAModuleDir()
	if err != nil {
		return err
	}
	_, err = envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(dir, "deploy", "vpa-v1-crd-gen.yaml")}, ErrorIfPathMissing: true,
	})
	if err != nil {
		return fmt.Errorf("installing VPA's CRDs: %w", err)
	}
	return nil
}

// VPAAdmissionController is VPA's real admission controller (bin/vpa-admission-controller)
// against a ControlPlane (WithVPAAdmissionController runs one for a test package): it registers its mutating webhook by URL on loopback, with a CA
// made for it, and sizes every new pod a VerticalPodAutoscaler targets from its
// recommendation; it renews its status Lease vpa-admission-controller in LeaseNamespace
// (kube-system unless VPANamespace says otherwise).
type VPAAdmissionController struct {
	*Process
	// LeaseNamespace is the namespace of its status Lease: the one the function's
	// admissionControllerStatusLeaseNamespace must name.
	LeaseNamespace string
	cp             *ControlPlane
	dir            string
}

// VPAOption configures NewVPAAdmissionController.
type VPAOption func(*vpaOptions)

type vpaOptions struct {
	namespace string
}

// vpaStatusRole is config/rbac-surge.yaml's Role (and RoleBinding) that lets the function read
// the admission controller's status Lease; the file has it in kube-system.
const vpaStatusRole = "vpa-graceful-drain-vpa-status"

// VPANamespace runs the admission controller as installed in namespace ns, as VPA's official
// chart installs it in its release namespace: with NAMESPACE=ns and no --status-lease-namespace,
// so that VPA v1.8.1 writes its status Lease in ns (pkg/admission-controller/main.go: the
// --status-lease-namespace flag, else $NAMESPACE, else kube-system). The namespace is created,
// and in it config/rbac-surge.yaml's Role vpaStatusRole and its RoleBinding to the function's
// ServiceAccount (what a deployer does who sets admissionControllerStatusLeaseNamespace: ns),
// granted before the admission controller starts.
func VPANamespace(ns string) VPAOption {
	return func(o *vpaOptions) { o.namespace = ns }
}

// NewVPAAdmissionController starts the admission controller (VPA's CRDs must be installed)
// and waits until its webhook is registered and listening and its status Lease written; call
// Stop to end it. It registers the webhook 10 s after it starts (a fixed delay in VPA's main),
// so this takes about 11 s.
func NewVPAAdmissionController(cp *ControlPlane, opts ...VPAOption) (*VPAAdmissionController, error) {
	o := vpaOptions{namespace: status.AdmissionControllerStatusNamespace}
	for _, opt := range opts {
		opt(&o)
	}
	if o.namespace != status.AdmissionControllerStatusNamespace {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := cp.bindVPAStatusRole(ctx, o.namespace)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	bin, err := Binary("vpa-admission-controller")
	if err != nil {
		return nil, fmt.Errorf("%w (make vpa-admission-controller)", err)
	}
	dir, err := os.MkdirTemp("", "vpagd-vpa-")
	if err != nil {
		return nil, fmt.Errorf("creating the admission controller's cert dir: %w", err)
	}
	if err := writeWebhookCerts(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	webhook, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(webhook)
	args := []string{
		"--kubeconfig=" + cp.Kubeconfig,
		"--client-ca-file=" + filepath.Join(dir, "caCert.pem"),
		"--tls-cert-file=" + filepath.Join(dir, "serverCert.pem"),
		"--tls-private-key=" + filepath.Join(dir, "serverKey.pem"),
		"--port=" + port,
		"--address=" + metrics,
		"--register-by-url=true",
		"--webhook-address=https://127.0.0.1",
		"--webhook-port=" + port,
		"--register-webhook=true",
		"--webhook-timeout-seconds=10",
		"--status-lease-update-interval=2s",
		"-v=2",
	}
	p, err := StartProcess("vpa-admission-controller", bin, args, []string{"NAMESPACE=" + o.namespace})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ac := &VPAAdmissionController{Process: p, LeaseNamespace: o.namespace, cp: cp, dir: dir}
	caPEM, err := os.ReadFile(filepath.Join(dir, "caCert.pem"))
	if err != nil {
		_ = ac.Stop()
		return nil, fmt.Errorf("reading the webhook CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("exited")
		}
		_, err := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, VPAWebhookConfig, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// A TLS handshake with the CA the webhook is registered with, as the API server makes it.
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", webhook, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			return false, nil
		}
		if err := conn.Close(); err != nil {
			return false, err
		}
		// Its status Lease is first written once the webhook is registered.
		_, err = cp.Client.CoordinationV1().Leases(o.namespace).Get(ctx, status.AdmissionControllerStatusName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		_ = ac.Stop()
		return nil, fmt.Errorf("vpa-admission-controller not serving its webhook: %w\n%s", err, tail(p.Output(), 40))
	}
	return ac, nil
}

// Stop ends the admission controller and deregisters its webhook (it would otherwise outlive
// it; its failurePolicy is Ignore, but every pod create would wait on a refused connection).
func (ac *VPAAdmissionController) Stop() error {
	err := ac.Process.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if derr := ac.cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, VPAWebhookConfig, metav1.DeleteOptions{}); derr != nil && !apierrors.IsNotFound(derr) && err == nil {
		err = fmt.Errorf("deregistering VPA's webhook: %w", derr)
	}
	_ = os.RemoveAll(ac.dir)
	return err
}

// writeWebhookCerts writes a CA (caCert.pem) and a serving certificate for 127.0.0.1 signed by
// it (serverCert.pem, serverKey.pem) into dir: the admission controller registers the CA as
// its webhook's caBundle.
func writeWebhookCerts(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the webhook CA key: %w", err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vpa-graceful-drain test webhook CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating the webhook CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("parsing the webhook CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the webhook key: %w", err)
	}
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating the webhook certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding the webhook key: %w", err)
	}
	for name, block := range map[string]*pem.Block{
		"caCert.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"serverCert.pem": {Type: "CERTIFICATE", Bytes: srvDER},
		"serverKey.pem":  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// bindVPAStatusRole creates namespace ns and, in it, config/rbac-surge.yaml's Role
// vpaStatusRole and its RoleBinding, and returns once the authorizer grants the function's
// ServiceAccount their rules there.
func (cp *ControlPlane) bindVPAStatusRole(ctx context.Context, ns string) error {
	_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the admission controller's namespace %s: %w", ns, err)
	}
	objs, err := RBACObjects()
	if err != nil {
		return err
	}
	var role *rbacv1.Role
	var binding *rbacv1.RoleBinding
	for _, obj := range objs {
		switch o := obj.(type) {
		case *rbacv1.Role:
			if o.Name == vpaStatusRole && role == nil {
				role = o.DeepCopy()
			}
		case *rbacv1.RoleBinding:
			if o.Name == vpaStatusRole && binding == nil {
				binding = o.DeepCopy()
			}
		}
	}
	if role == nil || binding == nil {
		return fmt.Errorf("the RBAC manifests (%s) have no Role and RoleBinding %s", strings.Join(RBACFiles, ", "), vpaStatusRole)
	}
	role.Namespace, binding.Namespace = ns, ns
	for _, obj := range []metav1.Object{role, binding} {
		if err := create(ctx, cp.Client, obj); err != nil {
			return fmt.Errorf("binding the admission controller's status Lease in %s: %w", ns, err)
		}
	}
	kc, err := cp.FunctionKubeconfig()
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return fmt.Errorf("loading the function's kubeconfig: %w", err)
	}
	checks := make([]authorizationv1.ResourceAttributes, 0, len(role.Rules))
	for _, r := range role.Rules {
		checks = append(checks, firstOf(r, ns))
	}
	return WaitAuthorized(ctx, cfg, checks...)
}

// WithVPAAdmissionController makes MainWith install VPA's CRDs and run VPA's admission
// controller for the whole package (it takes about 11 s to start; opts as
// NewVPAAdmissionController's, e.g. VPANamespace), and store it in *ac.
func WithVPAAdmissionController(ac **VPAAdmissionController, opts ...VPAOption) MainOption {
	return func(cp *ControlPlane) (func() error, error) {
		if err := InstallVPACRDs(cp); err != nil {
			return nil, err
		}
		var err error
		if *ac, err = NewVPAAdmissionController(cp, opts...); err != nil {
			return nil, err
		}
		return (*ac).Stop, nil
	}
}
