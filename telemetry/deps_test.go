package telemetry_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Telemetry is a leaf of the function: it takes the names it reports from package names and
// the event types it counts from its Options, never from eventing (nor, through it, client-go).
func TestTelemetryImportsNeitherEventingNorClientGo(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "function/telemetry").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "function/names")
	for _, d := range deps {
		assert.False(t, d == "function/eventing" || strings.HasPrefix(d, "function/eventing/") || strings.HasPrefix(d, "k8s.io/client-go/"),
			"telemetry depends on %s", d)
	}
}
