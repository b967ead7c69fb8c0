package config

import (
	"os"
	"strings"
)

// serviceAccountNamespace is where Kubernetes tells a pod its namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ConfigMapRef resolves CONFIG_MAP: "namespace/name", or "name" in the function's own
// namespace (POD_NAMESPACE, else the service account's namespace file). ok is false when
// CONFIG_MAP is unset: the function then follows no ConfigMap.
func ConfigMapRef(env map[string]string) (namespace, name string, ok bool, err error) {
	v := strings.TrimSpace(env[KeyConfigMap])
	if v == "" {
		return "", "", false, nil
	}
	if ns, n, found := strings.Cut(v, "/"); found {
		return ns, n, true, nil
	}
	if ns := env["POD_NAMESPACE"]; ns != "" {
		return ns, v, true, nil
	}
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return "", "", false, &KeyError{Key: KeyConfigMap, Value: v, Reason: "no namespace: write namespace/name, or set POD_NAMESPACE (" + err.Error() + ")"}
	}
	return strings.TrimSpace(string(b)), v, true, nil
}
