package drain_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPolicyIsPure: the pure packages (the drain policy, advice's findings, the surge policy)
// import the configuration, the Kubernetes API types (k8s.io/api, k8s.io/apimachinery), each
// other and the standard library, never a client, the telemetry or the function's I/O
// packages, so "the policy does no I/O" is checked, not a convention. The surge policy calls
// VPA's updater code, a library whose packages import client-go themselves: for it the rule
// holds for its own imports, and no function package that does I/O is among its dependencies.
func TestPolicyIsPure(t *testing.T) {
	banned := []string{"k8s.io/client-go", "function/handlers", "function/config/live", "function/telemetry", "function/eventing",
		"go.opentelemetry.io", "knative.dev", "github.com/cloudevents"}
	tests := []struct {
		pkg     string
		allowed []string // of the banned prefixes' packages
		// direct: only its own imports are held to the rule, its dependencies only for the
		// function's own packages
		direct bool
	}{
		{pkg: "function/handlers/drain"},
		{pkg: "function/handlers/advice", allowed: []string{"function/handlers/drain"}},
		{pkg: "function/handlers/surge", allowed: []string{"function/handlers/drain"}, direct: true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			deps := goList(t, "-deps", tt.pkg)
			require.Contains(t, deps, "k8s.io/api/core/v1", "go list listed the package's dependencies")
			check := deps
			if tt.direct {
				check = goList(t, "-f", `{{join .Imports "\n"}}`, tt.pkg)
				for _, dep := range deps {
					if strings.HasPrefix(dep, "function/") && dep != tt.pkg && !slices.Contains(tt.allowed, dep) {
						check = append(check, dep)
					}
				}
			}
			for _, dep := range check {
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

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	return strings.Fields(string(out))
}
