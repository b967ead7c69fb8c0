package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// The namespace and ServiceAccounts config/rbac.yaml creates.
const (
	// FunctionNamespace holds the function, its ServiceAccounts, its ConfigMap and the sweep Lease.
	FunctionNamespace = "vpa-graceful-drain"
	// FunctionServiceAccount is the function's own ServiceAccount (func.yaml deploys with it).
	FunctionServiceAccount = "vpa-graceful-drain"
	// SourceServiceAccount is the ApiServerSource's ServiceAccount.
	SourceServiceAccount = "vpa-graceful-drain-source"
	// ConfigRole is the Role (and RoleBinding) for the function's ConfigMap and sweep Lease.
	ConfigRole = "vpa-graceful-drain-config"
)

// ServiceAccountUser is the user name a ServiceAccount's tokens authenticate as.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ServiceAccountGroups are the groups a ServiceAccount's tokens authenticate with.
func ServiceAccountGroups(namespace string) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
}

// RBACFiles are the RBAC manifests, as paths from the repository's root, in the order a
// deployer applies them: the default install (config/rbac.yaml: the namespace, the
// ServiceAccounts and the roles every install needs), then the roles of the opt-in modes,
// eviction pacing and surge rollouts. The test bed applies all of them: the tests run the
// function with every role.
var RBACFiles = []string{"config/rbac.yaml", "config/rbac-pacing.yaml", "config/rbac-surge.yaml"}

// RBACObjects decodes every file of RBACFiles (RBACFileObjects), in order: the objects the test
// bed applies.
func RBACObjects() ([]metav1.Object, error) {
	var objs []metav1.Object
	for _, file := range RBACFiles {
		o, err := RBACFileObjects(file)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// RBACFileObjects decodes one RBAC manifest (a path from the repository's root, strictly: an
// unknown field is an error) into its typed objects, in file order: *corev1.Namespace,
// *corev1.ServiceAccount, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *rbacv1.Role and
// *rbacv1.RoleBinding. Any other kind is an error, so that a kind added to the file is applied
// by the tests too.
func RBACFileObjects(file string) ([]metav1.Object, error) {
	path := filepath.Join(RepoRoot(), filepath.FromSlash(file))
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading an RBAC manifest: %w", err)
	}
	var objs []metav1.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		var obj metav1.Object
		switch meta.APIVersion + " " + meta.Kind {
		case " ":
			continue // comments only
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "rbac.authorization.k8s.io/v1 Role":
			obj = &rbacv1.Role{}
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			obj = &rbacv1.RoleBinding{}
		default:
			return nil, fmt.Errorf("%s: %s %s is not applied by the tests: add it to cluster.RBACObjects", path, meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("decoding %s %s: %w", meta.Kind, path, err)
		}
		objs = append(objs, obj)
	}
}

// create creates one of RBACObjects' objects; AlreadyExists is no error.
func create(ctx context.Context, client kubernetes.Interface, obj metav1.Object) error {
	var err error
	opts := metav1.CreateOptions{}
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = client.CoreV1().Namespaces().Create(ctx, o, opts)
	case *corev1.ServiceAccount:
		_, err = client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = client.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *rbacv1.Role:
		_, err = client.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.RoleBinding:
		_, err = client.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
	default:
		return fmt.Errorf("cannot create a %T", obj)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

// ApplyRBAC creates the objects of every RBAC manifest (RBACFiles: config/rbac.yaml and the
// opt-in config/rbac-pacing.yaml and config/rbac-surge.yaml) in the control plane, and then
// config/admission-policy.yaml's policy and binding (CreateAdmissionPolicy), once (objects that
// exist already are left as they are): every test that runs as the function's ServiceAccount
// runs under the policy.
func (cp *ControlPlane) ApplyRBAC(ctx context.Context) error {
	cp.rbacMu.Lock()
	defer cp.rbacMu.Unlock()
	return cp.applyRBACLocked(ctx)
}

func (cp *ControlPlane) applyRBACLocked(ctx context.Context) error {
	if cp.rbacApplied {
		return nil
	}
	objs, err := RBACObjects()
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if err := create(ctx, cp.Client, obj); err != nil {
			return err
		}
	}
	if err := CreateAdmissionPolicy(ctx, cp.Client); err != nil {
		return err
	}
	cp.rbacApplied = true
	return nil
}

// tokenTTL is how long the tokens minted for the tests last (the longest soak runs hours).
const tokenTTL = 48 * time.Hour

// ServiceAccountConfig returns a client config that authenticates as the ServiceAccount
// namespace/name with a bearer token from the TokenRequest API (envtest's kube-apiserver signs
// them: it runs with --service-account-issuer, --service-account-key-file and
// --service-account-signing-key-file), for the API server at the admin config's URL and CA.
func (cp *ControlPlane) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	tr, err := cp.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(tokenTTL.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(cp.Config) // the server and its CA, no credentials
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// FunctionKubeconfig returns the path of a kubeconfig with the credentials of the function's
// own ServiceAccount (vpa-graceful-drain/vpa-graceful-drain, a token from the TokenRequest
// API), made once per control plane after applying every RBAC manifest (ApplyRBAC). It returns
// once the API server's authorizer grants every rule they bind to that ServiceAccount (RBAC
// reaches the authorizer's cache a moment after it is created), so a function started with it
// is not refused what they give it, and once config/admission-policy.yaml is in
// force for it (WaitAdmissionPolicy), so the function runs under the policy from its first
// write.
func (cp *ControlPlane) FunctionKubeconfig() (string, error) {
	cp.rbacMu.Lock()
	defer cp.rbacMu.Unlock()
	if cp.fnKubeconfig != "" {
		return cp.fnKubeconfig, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cp.applyRBACLocked(ctx); err != nil {
		return "", err
	}
	cfg, err := cp.ServiceAccountConfig(ctx, FunctionNamespace, FunctionServiceAccount)
	if err != nil {
		return "", err
	}
	objs, err := RBACObjects()
	if err != nil {
		return "", err
	}
	if err := WaitAuthorized(ctx, cfg, boundChecks(objs, FunctionNamespace, FunctionServiceAccount)...); err != nil {
		return "", err
	}
	if err := WaitAdmissionPolicy(ctx, cp.Client, cfg); err != nil {
		return "", err
	}
	path := filepath.Join(filepath.Dir(cp.Kubeconfig), "kubeconfig-"+FunctionServiceAccount)
	if err := WriteKubeconfig(cfg, FunctionServiceAccount, path); err != nil {
		return "", err
	}
	cp.fnKubeconfig = path
	return path, nil
}

// BindConfigRole creates, in namespace, config/rbac.yaml's Role for the function's ConfigMap
// and sweep Lease and its RoleBinding to the function's ServiceAccount: what a deployer does who
// keeps the function's ConfigMap in another namespace than vpa-graceful-drain (CONFIG_MAP=
// namespace/vpa-graceful-drain). It returns once the authorizer grants them.
func (cp *ControlPlane) BindConfigRole(ctx context.Context, namespace string) error {
	objs, err := RBACObjects()
	if err != nil {
		return err
	}
	var rules []rbacv1.PolicyRule
	for _, obj := range objs {
		switch o := obj.(type) {
		case *rbacv1.Role:
			if o.Name == ConfigRole {
				rules = o.Rules
				o.Namespace = namespace
				if err := create(ctx, cp.Client, o); err != nil {
					return err
				}
			}
		case *rbacv1.RoleBinding:
			if o.Name == ConfigRole {
				o.Namespace = namespace
				if err := create(ctx, cp.Client, o); err != nil {
					return err
				}
			}
		}
	}
	if rules == nil {
		return fmt.Errorf("config/rbac.yaml has no Role %s", ConfigRole)
	}
	kc, err := cp.FunctionKubeconfig()
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return err
	}
	checks := make([]authorizationv1.ResourceAttributes, 0, len(rules))
	for _, r := range rules {
		checks = append(checks, firstOf(r, namespace))
	}
	return WaitAuthorized(ctx, cfg, checks...)
}

// boundChecks returns, for every rule of every role objs bind to the ServiceAccount ns/name,
// the access of its first verb, resource and name (in the RoleBinding's namespace, or
// cluster-wide for a ClusterRoleBinding): one access per rule the authorizer must grant.
func boundChecks(objs []metav1.Object, ns, name string) []authorizationv1.ResourceAttributes {
	clusterRoles, roles := map[string][]rbacv1.PolicyRule{}, map[string][]rbacv1.PolicyRule{}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			clusterRoles[o.Name] = o.Rules
		case *rbacv1.Role:
			roles[o.Namespace+"/"+o.Name] = o.Rules
		}
	}
	bound := func(subjects []rbacv1.Subject) bool {
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == ns && s.Name == name {
				return true
			}
		}
		return false
	}
	var checks []authorizationv1.ResourceAttributes
	for _, obj := range objs {
		switch o := obj.(type) {
		case *rbacv1.ClusterRoleBinding:
			if bound(o.Subjects) {
				for _, r := range clusterRoles[o.RoleRef.Name] {
					checks = append(checks, firstOf(r, ""))
				}
			}
		case *rbacv1.RoleBinding:
			if bound(o.Subjects) {
				rules := roles[o.Namespace+"/"+o.RoleRef.Name]
				if o.RoleRef.Kind == "ClusterRole" {
					rules = clusterRoles[o.RoleRef.Name]
				}
				for _, r := range rules {
					checks = append(checks, firstOf(r, o.Namespace))
				}
			}
		}
	}
	return slices.DeleteFunc(checks, func(a authorizationv1.ResourceAttributes) bool { return a.Resource == "" })
}

// firstOf is the access of rule's first verb, API group, resource and name, in namespace ns
// ("": cluster-wide); a rule for non-resource URLs gives an empty one.
func firstOf(rule rbacv1.PolicyRule, ns string) authorizationv1.ResourceAttributes {
	if len(rule.Verbs) == 0 || len(rule.APIGroups) == 0 || len(rule.Resources) == 0 {
		return authorizationv1.ResourceAttributes{}
	}
	a := authorizationv1.ResourceAttributes{Namespace: ns, Verb: rule.Verbs[0], Group: rule.APIGroups[0]}
	a.Resource, a.Subresource, _ = strings.Cut(rule.Resources[0], "/")
	if len(rule.ResourceNames) > 0 {
		a.Name = rule.ResourceNames[0]
	}
	return a
}

// Access describes an access for messages: `patch pods in namespace x`, `list
// poddisruptionbudgets.policy cluster-wide`, `get configmaps "name" in namespace x`.
func Access(a authorizationv1.ResourceAttributes) string {
	s := a.Verb + " " + a.Resource
	if a.Subresource != "" {
		s += "/" + a.Subresource
	}
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Name != "" {
		s += fmt.Sprintf(" %q", a.Name)
	}
	if a.Namespace != "" {
		return s + " in namespace " + a.Namespace
	}
	return s + " cluster-wide"
}

// WaitAuthorized waits (up to a minute, or until ctx ends) until the authorizer grants the
// client config's user every access (SelfSubjectAccessReviews): RBAC reaches the authorizer's
// cache a moment after it is written.
func WaitAuthorized(ctx context.Context, cfg *rest.Config, accesses ...authorizationv1.ResourceAttributes) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var denied []string
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		denied = denied[:0]
		for _, a := range accesses {
			review, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a}}, metav1.CreateOptions{})
			if err != nil {
				return false, fmt.Errorf("checking %s: %w", Access(a), err)
			}
			if !review.Status.Allowed {
				denied = append(denied, Access(a))
			}
		}
		return len(denied) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("the authorizer still denies %s: %w", strings.Join(denied, "; "), err)
	}
	return nil
}

// WriteKubeconfig writes a kubeconfig for the client config (server, CA, and its bearer token
// or client certificate) to path, for child processes, with user as the user's name.
func WriteKubeconfig(cfg *rest.Config, user, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken,
		ClientCertificate: cfg.CertFile, ClientCertificateData: cfg.CertData, ClientKey: cfg.KeyFile, ClientKeyData: cfg.KeyData}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: user}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
