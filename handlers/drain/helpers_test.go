package drain_test

import (
	"time"

	"function/handlers/drain/draintest"
)

// The pod builders and fixed times of package draintest, under the names the tests use.
var (
	inNamespace   = draintest.InNamespace
	sidecar       = draintest.Sidecar
	initContainer = draintest.InitContainer
	now           = draintest.Now
	up            = draintest.Latest
	nowSec        = draintest.NowSec
	drainStamp    = draintest.DrainStamp
	stamp         = draintest.Stamp
	newPod        = draintest.NewPod
	ann           = draintest.Ann
	managed       = draintest.Managed
	finalizers    = draintest.Finalizers
	ours          = draintest.Ours
	deleting      = draintest.Deleting
	deletedAt     = draintest.DeletedAt
	graceZero     = draintest.GraceZero
	evicted       = draintest.Evicted
	started       = draintest.Started
	phase         = draintest.Phase
	statuses      = draintest.Statuses
	running       = draintest.Running
	terminated    = draintest.Terminated
	ownedBy       = draintest.OwnedBy
	deployment    = draintest.Deployment
	stoppedAt     = draintest.StoppedAt
	replicas      = draintest.ReplicasFacts
	bareConfig    = draintest.BareConfig
)

type podOpt = draintest.PodOpt

// s40 is a drain started 40 s before now: its grace period of 30 s is over.
var s40 = nowSec.Add(-40 * time.Second)

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
