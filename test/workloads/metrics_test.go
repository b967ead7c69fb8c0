//go:build e2e

package workloads

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"function/test/cluster"
)

// metric is one sample the function exports: its labels must include want.
type metric struct {
	value       float64
	count       uint64 // a histogram's count
	sum         float64
	labels      map[string]string
	isHistogram bool
}

// scrapeMetrics reads the function's /metrics (on its own port, as Prometheus scrapes a pod).
func scrapeMetrics(t *testing.T, s *cluster.Stack) map[string][]metric {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(s.Function.URL, "/") + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string][]metric{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			x := metric{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				x.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				x.value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				x.value = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				x.isHistogram, x.count, x.sum = true, m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
			out[name] = append(out[name], x)
		}
	}
	return out
}

// sample finds the series of name whose labels include want.
func sample(all map[string][]metric, name string, want map[string]string) (metric, bool) {
	for _, m := range all[name] {
		ok := true
		for k, v := range want {
			ok = ok && m.labels[k] == v
		}
		if ok {
			return m, true
		}
	}
	return metric{}, false
}
