package drain_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPolicyIsPure: the policy imports the configuration, the Kubernetes API types
// (k8s.io/api, k8s.io/apimachinery) and the standard library, never a client, the telemetry
// or the function's I/O packages, so "the policy does no I/O" is checked, not a convention.
func TestPolicyIsPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "function/handlers/drain").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "function/config", "go list listed the policy's dependencies")
	for _, dep := range deps {
		for _, banned := range []string{"k8s.io/client-go", "function/handlers", "function/telemetry", "function/eventing",
			"go.opentelemetry.io", "knative.dev", "github.com/cloudevents"} {
			if dep == "function/handlers/drain" {
				continue
			}
			assert.False(t, dep == banned || strings.HasPrefix(dep, banned+"/"), "the policy depends on %s", dep)
		}
	}
}
