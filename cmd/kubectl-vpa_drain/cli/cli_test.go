package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

// runArgs runs the plugin and returns its exit code, stdout and stderr.
func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	code, out, errOut := runArgs(t)
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "kubectl vpa-drain status [-n NAMESPACE | -A]")

	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errOut = runArgs(t, args...)
		assert.Equal(t, exitOK, code, args)
		assert.Empty(t, errOut, args)
		assert.Contains(t, out, "Examples:", args)
		assert.Contains(t, out, "kubectl vpa-drain release POD [-n NAMESPACE] [--reason TEXT]", args)
		assert.Contains(t, out, "Exit codes: 0 done, 1 failed or refused, 2 usage error.", args)
	}
}

func TestCommandHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"status", "--help"}, []string{"kubectl vpa-drain status:", "Examples:", "-A, --all-namespaces", "-o, --output string", "-w, --watch", "--config-map string", "--kubeconfig string", "--context string", "-n, --namespace string"}},
		{[]string{"help", "status"}, []string{"kubectl vpa-drain status:", "--watch"}},
		{[]string{"-n", "shop", "status", "--help"}, []string{"kubectl vpa-drain status:"}},
		{[]string{"release", "-h"}, []string{"kubectl vpa-drain release:", "Examples:", "--reason string", "-n, --namespace string"}},
		{[]string{"help", "release"}, []string{"kubectl vpa-drain release:"}},
	}
	for _, tt := range tests {
		code, out, errOut := runArgs(t, tt.args...)
		assert.Equal(t, exitOK, code, tt.args)
		assert.Empty(t, errOut, tt.args)
		for _, w := range tt.want {
			assert.Contains(t, out, w, tt.args)
		}
	}
}

// Usage errors are exit code 2 with the reason and where to look, before any cluster access.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"stauts"}, `unknown command "stauts"`},
		{[]string{"-n", "shop"}, "missing command: status or release"},
		{[]string{"-n", "shop", "status", "-o", "yaml"}, `-o "yaml": want table or json`}, // flags before the command
		{[]string{"--context=x", "-A", "status", "extra"}, `unexpected argument "extra"`},
		{[]string{"status", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"status", "web-1"}, `unexpected argument "web-1"`},
		{[]string{"status", "--config-map", "vpa-graceful-drain"}, `--config-map "vpa-graceful-drain": want namespace/name`},
		{[]string{"status", "--config-map", "a/b/c"}, `want namespace/name`},
		{[]string{"status", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"status", "-n"}, "flag needs an argument"},
		{[]string{"release"}, "missing POD"},
		{[]string{"release", "a", "b"}, "one POD at a time (got 2 arguments)"},
		{[]string{"release", "deployment/web"}, `"deployment/web": want a pod name`},
		{[]string{"release", "pod/"}, "missing POD"},
		{[]string{"release", "web-1", "-A"}, "unknown shorthand flag: 'A'"},
	}
	for _, tt := range tests {
		code, out, errOut := runArgs(t, tt.args...)
		assert.Equal(t, exitUsage, code, tt.args)
		assert.Empty(t, out, tt.args)
		assert.Contains(t, errOut, tt.want, tt.args)
		assert.Contains(t, errOut, "--help' for usage.", tt.args)
	}
}

func TestPodArg(t *testing.T) {
	for _, arg := range []string{"web-1", "pod/web-1", "pods/web-1", "po/web-1"} {
		got, err := podArg([]string{arg})
		assert.NoError(t, err, arg)
		assert.Equal(t, "web-1", got, arg)
	}
}

// Without a kubeconfig the error says how to give one (exit code 1); a --kubeconfig that does
// not exist is named.
func TestNoKubeconfig(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a pod: no in-cluster config either
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	for _, args := range [][]string{{"status"}, {"release", "web-1"}} {
		code, out, errOut := runArgs(t, args...)
		assert.Equal(t, exitError, code, args)
		assert.Empty(t, out, args)
		assert.Equal(t, "error: "+errNoKubeconfig.Error()+"\n", errOut, args)
	}

	missing := filepath.Join(t.TempDir(), "nope.yaml")
	code, _, errOut := runArgs(t, "status", "--kubeconfig", missing)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "error: loading the kubeconfig:")
	assert.Contains(t, errOut, missing)

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	assert.NoError(t, os.WriteFile(kc, []byte(kubeconfig), 0o600))
	code, _, errOut = runArgs(t, "status", "--kubeconfig", kc, "--context", "elsewhere")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `context "elsewhere" does not exist`)
}

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: alice
  user: {token: t}
contexts:
- name: here
  context: {cluster: c, user: alice, namespace: shop}
- name: bare
  context: {cluster: c, user: alice}
current-context: here
`

// The namespace is -n, else the context's, else "default", as in kubectl; the user is the
// context's (the fallback for who released a pod).
func TestConnectNamespaceAndUser(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	assert.NoError(t, os.WriteFile(kc, []byte(kubeconfig), 0o600))
	tests := []struct {
		flags kubeFlags
		want  string
	}{
		{kubeFlags{kubeconfig: kc}, "shop"},
		{kubeFlags{kubeconfig: kc, namespace: "web"}, "web"},
		{kubeFlags{kubeconfig: kc, context: "bare"}, "default"},
		{kubeFlags{kubeconfig: kc, context: "bare", namespace: "web"}, "web"},
	}
	for _, tt := range tests {
		c, err := connect(tt.flags)
		if assert.NoError(t, err) {
			assert.Equal(t, tt.want, c.namespace, tt.flags)
			assert.Equal(t, "alice", c.user)
		}
	}
}
