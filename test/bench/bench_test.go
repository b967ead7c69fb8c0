package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseGoBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkDecodeDecide-2   	   40000	     27012 ns/op	 103.5 MB/s	    3337 B/op	      29 allocs/op
BenchmarkDecodeDecide-2   	   40000	     25010 ns/op	 103.5 MB/s	    3337 B/op	      30 allocs/op
BenchmarkDecodeEncodingJSON-2	   20000	     69789 ns/op	    6768 B/op	     102 allocs/op
PASS
ok  	function/eventing	5.1s
`)
	runs := parseGoBench(out)
	require.Len(t, runs, 2)
	assert.Equal(t, []float64{27012, 25010}, runs["BenchmarkDecodeDecide"].nsPerOp)
	assert.Equal(t, []float64{29, 30}, runs["BenchmarkDecodeDecide"].allocsPerOp)
	assert.Equal(t, []float64{3337, 3337}, runs["BenchmarkDecodeDecide"].bytesPerOp)
	assert.Equal(t, []float64{102}, runs["BenchmarkDecodeEncodingJSON"].allocsPerOp)
}

func TestMedianAndQuantile(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		assert.Equal(t, tt.want, median(tt.in), "%v", tt.in)
		assert.Equal(t, in, tt.in, "median does not sort its input")
	}
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	assert.Equal(t, time.Duration(6), quantile(d, 0.5))
	assert.Equal(t, time.Duration(10), quantile(d, 0.99))
	assert.Equal(t, time.Duration(0), quantile(nil, 0.5))
}

func parse(t *testing.T, text string) metrics {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
	return fams
}

// Row 5 counts pod writes, rejected writes, reads and Events apart, per pod, from the
// difference of two scrapes.
func TestWritesRow(t *testing.T) {
	before := parse(t, `# TYPE vpagracefuldrain_api_requests_total counter
vpagracefuldrain_api_requests_total{code="200",verb="patch"} 10
vpagracefuldrain_api_requests_total{code="200",verb="get"} 5
`)
	after := parse(t, `# TYPE vpagracefuldrain_api_requests_total counter
vpagracefuldrain_api_requests_total{code="200",verb="patch"} 40
vpagracefuldrain_api_requests_total{code="422",verb="patch"} 2
vpagracefuldrain_api_requests_total{code="200",verb="get"} 15
vpagracefuldrain_api_requests_total{code="201",verb="create"} 20
`)
	row := writesRow(before, after, 10)
	assert.Equal(t, 3.0, row.Values["podWritesPerPod"])
	assert.Equal(t, 0.2, row.Values["rejectedPerPod"])
	assert.Equal(t, 1.0, row.Values["readsPerPod"])
	assert.Equal(t, 2.0, row.Values["eventsPerPod"])
	assert.False(t, row.Met, "a rejected write misses the target")

	ok := writesRow(before, parse(t, `# TYPE vpagracefuldrain_api_requests_total counter
vpagracefuldrain_api_requests_total{code="200",verb="patch"} 40
`), 10)
	assert.True(t, ok.Met)
}

func TestEventLoad(t *testing.T) {
	before := parse(t, `# TYPE vpagracefuldrain_event_duration_seconds histogram
vpagracefuldrain_event_duration_seconds_bucket{le="+Inf",type="a"} 10
vpagracefuldrain_event_duration_seconds_sum{type="a"} 0.01
vpagracefuldrain_event_duration_seconds_count{type="a"} 10
`)
	after := parse(t, `# TYPE vpagracefuldrain_event_duration_seconds histogram
vpagracefuldrain_event_duration_seconds_bucket{le="+Inf",type="a"} 30
vpagracefuldrain_event_duration_seconds_sum{type="a"} 0.05
vpagracefuldrain_event_duration_seconds_count{type="a"} 30
`)
	events, meanMs := eventLoad(before, after)
	assert.Equal(t, 20.0, events)
	assert.InDelta(t, 2.0, meanMs, 1e-9)
}
