package handlers

import (
	"context"
	"time"
)

// Metrics receives what the Reconciler decides and does (telemetry.Telemetry implements it).
type Metrics interface {
	Decision(ctx context.Context, action, reason string)
	Drain(ctx context.Context, reason, ownerKind string, seconds float64)
	CapacityGap(ctx context.Context, ownerKind, namespace string, seconds float64)
	Sweep(ctx context.Context, pods, writes, failures int, took time.Duration, err error)
	// SurgeRollout counts a surge-rollout decision applied; seconds >= 0 is the duration of a
	// rollout that ended.
	SurgeRollout(ctx context.Context, outcome string, seconds float64, gap int)
}

// noMetrics is the Metrics of a Reconciler without any.
type noMetrics struct{}

func (noMetrics) Decision(context.Context, string, string)                   {}
func (noMetrics) Drain(context.Context, string, string, float64)             {}
func (noMetrics) CapacityGap(context.Context, string, string, float64)       {}
func (noMetrics) Sweep(context.Context, int, int, int, time.Duration, error) {}
func (noMetrics) SurgeRollout(context.Context, string, float64, int)         {}
