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
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// AdmissionPolicyFile is the path, from the repository's root, of the ValidatingAdmissionPolicy
// that narrows the function's pod patches to its own finalizer and annotations.
const AdmissionPolicyFile = "config/admission-policy.yaml"

// AdmissionPolicyProbe is the unmanaged pod, in FunctionNamespace, on which WaitAdmissionPolicy
// tries its refused dry-run write; it is deleted again once the policy is in force.
const AdmissionPolicyProbe = "admission-policy-probe"

// AdmissionPolicyObjects decodes config/admission-policy.yaml (strictly: an unknown field is an
// error) into its *admissionv1.ValidatingAdmissionPolicy and its
// *admissionv1.ValidatingAdmissionPolicyBinding; any other kind, or a missing one, is an error.
func AdmissionPolicyObjects() (*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding, error) {
	path := filepath.Join(RepoRoot(), AdmissionPolicyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the admission policy: %w", err)
	}
	var (
		policy  *admissionv1.ValidatingAdmissionPolicy
		binding *admissionv1.ValidatingAdmissionPolicyBinding
	)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", path, err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		var obj any
		switch meta.APIVersion + " " + meta.Kind {
		case " ":
			continue // comments only
		case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy":
			if policy != nil {
				return nil, nil, fmt.Errorf("%s: more than one ValidatingAdmissionPolicy", path)
			}
			policy = &admissionv1.ValidatingAdmissionPolicy{}
			obj = policy
		case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding":
			if binding != nil {
				return nil, nil, fmt.Errorf("%s: more than one ValidatingAdmissionPolicyBinding", path)
			}
			binding = &admissionv1.ValidatingAdmissionPolicyBinding{}
			obj = binding
		default:
			return nil, nil, fmt.Errorf("%s: %s %s is not applied by the tests: add it to cluster.AdmissionPolicyObjects", path, meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, nil, fmt.Errorf("decoding %s %s: %w", meta.Kind, path, err)
		}
	}
	if policy == nil || binding == nil {
		return nil, nil, fmt.Errorf("%s: want one ValidatingAdmissionPolicy and one ValidatingAdmissionPolicyBinding", path)
	}
	return policy, binding, nil
}

// CreateAdmissionPolicy creates config/admission-policy.yaml's policy and binding; objects that
// exist already are left as they are.
func CreateAdmissionPolicy(ctx context.Context, client kubernetes.Interface) error {
	policy, binding, err := AdmissionPolicyObjects()
	if err != nil {
		return err
	}
	admission := client.AdmissionregistrationV1()
	if _, err := admission.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ValidatingAdmissionPolicy %s: %w", policy.Name, err)
	}
	if _, err := admission.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ValidatingAdmissionPolicyBinding %s: %w", binding.Name, err)
	}
	return nil
}

// IsAdmissionPolicyRefusal reports whether err is config/admission-policy.yaml's policy
// refusing a write: a 403 that names the policy.
func IsAdmissionPolicyRefusal(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'vpa-graceful-drain'")
}

// probeRefusal is the policy's message for WaitAdmissionPolicy's probe (a label change): the
// validation's own message, not an error in evaluating the policy (failurePolicy: Fail refuses
// those too).
const probeRefusal = "vpa-graceful-drain may not change a pod's labels"

// WaitAdmissionPolicy waits (up to a minute, or until ctx ends) until config/admission-policy.yaml
// is in force for fnConfig's user (the function's ServiceAccount): admission policies reach the
// API server's cache a moment after they are created. It probes with a server-side dry-run
// label change on an unmanaged pod in FunctionNamespace (created with client, the admin's, and
// deleted again), which must be refused by the policy; a dry run changes nothing even while the
// policy is not in force yet.
func WaitAdmissionPolicy(ctx context.Context, client kubernetes.Interface, fnConfig *rest.Config) error {
	fn, err := kubernetes.NewForConfig(fnConfig)
	if err != nil {
		return fmt.Errorf("the function's client: %w", err)
	}
	pods := client.CoreV1().Pods(FunctionNamespace)
	probe := PodSpec(FunctionNamespace, AdmissionPolicyProbe, false)
	probe.Spec.ServiceAccountName = FunctionServiceAccount // rbac.yaml's: there may be no "default" one
	if _, err := pods.Create(ctx, probe, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the admission policy's probe pod: %w", err)
	}
	defer func() {
		_ = pods.Delete(context.Background(), AdmissionPolicyProbe, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	}()
	patch := []byte(`{"metadata":{"labels":{"admission-policy-probe":"refused"}}}`)
	var last error
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, last = fn.CoreV1().Pods(FunctionNamespace).Patch(ctx, AdmissionPolicyProbe, types.MergePatchType, patch,
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return IsAdmissionPolicyRefusal(last) && strings.Contains(last.Error(), "denied request: "+probeRefusal), nil
	})
	if err != nil {
		return fmt.Errorf("%s is not in force: the function's probe label change still gets %v: %w", AdmissionPolicyFile, last, err)
	}
	return nil
}
