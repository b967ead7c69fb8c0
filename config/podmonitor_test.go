package config_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	function "function"
)

// The PodMonitor scrapes each replica's own port at the path the function serves its metrics on.
func TestPodMonitorScrapesTheFunctionsMetrics(t *testing.T) {
	docs := documents(t, "podmonitor.yaml")
	require.Len(t, docs, 1)
	var pm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name, Namespace string
			Labels          map[string]string
		} `json:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			PodMetricsEndpoints []struct {
				Port, Path, Interval string
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	require.NoError(t, yaml.UnmarshalStrict(docs[0], &pm))
	assert.Equal(t, "monitoring.coreos.com/v1", pm.APIVersion)
	assert.Equal(t, "PodMonitor", pm.Kind)
	assert.Equal(t, "vpa-graceful-drain", pm.Metadata.Namespace)
	assert.Equal(t, map[string]string{"serving.knative.dev/service": "vpa-graceful-drain"}, pm.Spec.Selector.MatchLabels, "the ksvc's pods")
	require.Len(t, pm.Spec.PodMetricsEndpoints, 1)
	assert.Equal(t, "user-port", pm.Spec.PodMetricsEndpoints[0].Port, "Knative's name for the user container's port")
	assert.Equal(t, function.MetricsPath, pm.Spec.PodMetricsEndpoints[0].Path)
}
