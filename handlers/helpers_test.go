package handlers_test

import (
	"context"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers"
	"function/handlers/drain/draintest"
)

// The pod builders and fixed times of package draintest, under the names the tests use.
var (
	now        = draintest.Now
	up         = draintest.Latest
	nowSec     = draintest.NowSec
	drainStamp = draintest.DrainStamp
	stamp      = draintest.Stamp
	newPod     = draintest.NewPod
	ann        = draintest.Ann
	managed    = draintest.Managed
	finalizers = draintest.Finalizers
	ours       = draintest.Ours
	deleting   = draintest.Deleting
	deletedAt  = draintest.DeletedAt
	graceZero  = draintest.GraceZero
	evicted    = draintest.Evicted
	started    = draintest.Started
	phase      = draintest.Phase
	terminated = draintest.Terminated
	ownedBy    = draintest.OwnedBy
	deployment = draintest.Deployment
	stoppedAt  = draintest.StoppedAt
	bareConfig = draintest.BareConfig
)

type podOpt = draintest.PodOpt

// s40 is a drain started 40 s before now: its grace period of 30 s is over.
var s40 = nowSec.Add(-40 * time.Second)

// waitFor and tick poll conditions that goroutines (re-check workers) make true.
const (
	waitFor = 5 * time.Second
	tick    = 5 * time.Millisecond
)

// leaseRenewedAt is a sweep Lease last claimed at t.
func leaseRenewedAt(t time.Time) *coordinationv1.Lease {
	renew := metav1.NewMicroTime(t)
	holder := "other"
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "sweep", Namespace: "vpa-graceful-drain"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &renew}}
}

// FuzzPod's flags and the pod it builds.
const (
	fzManaged       = draintest.FzManaged
	fzVPA           = draintest.FzVPA
	fzStarted       = draintest.FzStarted
	fzStartedAt     = draintest.FzStartedAt
	fzDeadline      = draintest.FzDeadline
	fzDeadlineAt    = draintest.FzDeadlineAt
	fzGrace         = draintest.FzGrace
	fzTimeout       = draintest.FzTimeout
	fzOurs          = draintest.FzOurs
	fzDeleting      = draintest.FzDeleting
	fzDeletionGrace = draintest.FzDeletionGrace
	fzExcluded      = draintest.FzExcluded
)

var fuzzPod = draintest.FuzzPod

// sweeper is a Sweeper on r: each pod listed reconciled by r, pacing's budgets pruned by r's
// owner checks.
func sweeper(r *handlers.Reconciler) *handlers.Sweeper {
	s := &handlers.Sweeper{Deps: r.Deps, Config: r.CurrentConfig, Drains: r}
	if r.Checks != nil {
		s.PDBs = r.Checks
	}
	return s
}

// runWithSweeps runs r's re-checks and s's sweeps until ctx ends; done is closed once both
// returned.
func runWithSweeps(ctx context.Context, r *handlers.Reconciler, s *handlers.Sweeper, done chan<- struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	r.Run(ctx, 1)
	wg.Wait()
	close(done)
}
