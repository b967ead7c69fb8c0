package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"function/handlers"
)

func TestSummary(t *testing.T) {
	tests := []struct {
		name   string
		res    handlers.ReleaseResult
		dryRun bool
		want   string
	}{
		{"all released", handlers.ReleaseResult{Released: []string{"a/x", "a/y"}, Listed: 5}, false, "released 2 pod(s)"},
		{"some failed", handlers.ReleaseResult{Released: []string{"a/x"}, Failed: 3, Listed: 5}, false, "released 1 pod(s), 3 failed"},
		{"dry-run", handlers.ReleaseResult{Released: []string{"a/x"}, Listed: 5}, true, "would release 1 pod(s)"},
		{"nothing", handlers.ReleaseResult{}, false, "released 0 pod(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, summary(tt.res, tt.dryRun))
		})
	}
}

func TestProgressLine(t *testing.T) {
	var b strings.Builder
	progress(&b, false)(10, 7, 1)
	progress(&b, true)(3, 2, 0)
	assert.Equal(t, "released 7, failed 1, checked 10 pods\nwould release 2, failed 0, checked 3 pods\n", b.String())
}

func TestRunRefusesNonPositiveLimits(t *testing.T) {
	for _, o := range []options{{qps: 0, burst: 1, workers: 1}, {qps: 1, burst: 0, workers: 1}, {qps: 1, burst: 1, workers: 0}} {
		assert.ErrorContains(t, run(o), "must be positive")
	}
}
