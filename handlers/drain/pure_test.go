package drain_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPolicyIsPure: the pure packages (the drain policy, advice's findings) import the
// configuration, the Kubernetes API types (k8s.io/api, k8s.io/apimachinery), each other and
// the standard library, never a client, the telemetry or the function's I/O packages, so "the
// policy does no I/O" is checked, not a convention.
func TestPolicyIsPure(t *testing.T) {
	banned := []string{"k8s.io/client-go", "function/handlers", "function/config/live", "function/telemetry", "function/eventing",
		"go.opentelemetry.io", "knative.dev", "github.com/cloudevents"}
	tests := []struct {
		pkg     string
		allowed []string // of the banned prefixes' packages
	}{
		{pkg: "function/handlers/drain"},
		{pkg: "function/handlers/advice", allowed: []string{"function/handlers/drain"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tt.pkg).CombinedOutput()
			require.NoError(t, err, "go list: %s", out)
			deps := strings.Fields(string(out))
			require.Contains(t, deps, "function/config", "go list listed the package's dependencies")
			for _, dep := range deps {
				if dep == tt.pkg || slices.Contains(tt.allowed, dep) {
					continue
				}
				for _, b := range banned {
					assert.False(t, dep == b || strings.HasPrefix(dep, b+"/"), "%s depends on %s", tt.pkg, dep)
				}
			}
		})
	}
}
