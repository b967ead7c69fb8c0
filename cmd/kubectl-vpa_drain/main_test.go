package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain runs main() itself when asked to, so the tests see the command's real exit codes
// and streams without building it.
func TestMain(m *testing.M) {
	if os.Getenv("KUBECTL_VPA_DRAIN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// command runs the plugin as a process with args, without a kubeconfig.
func command(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KUBECTL_VPA_DRAIN_MAIN=1", "KUBECONFIG="+filepath.Join(t.TempDir(), "none"),
		"KUBERNETES_SERVICE_HOST=", "KUBERNETES_SERVICE_PORT=")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), errOut.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	code, out, _ := command(t, "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "kubectl vpa-drain status")

	code, out, errOut := command(t, "status", "-o", "yaml")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, `-o "yaml": want table or json`)

	code, _, errOut = command(t, "status")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: no kubeconfig")

	code, _, errOut = command(t)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "Usage:")
}
