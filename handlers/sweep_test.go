package handlers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"function/handlers"
	"function/internal/testutil"
	"function/names"
)

// named gives the pod its own name and uid.
func named(name string) podOpt {
	return func(p *corev1.Pod) { p.Name, p.UID = name, types.UID("uid-"+name) }
}

func TestSweep(t *testing.T) {
	pods := []runtime.Object{
		newPod(named("new"), managed), // never announced: gets the finalizer
		newPod(named("drained"), ours, managed, deleting, started(s40), graceZero), // its stop event was lost: released
		newPod(named("waiting"), ours, managed, deleting, started(now.Add(-time.Second))),
		newPod(named("plain")),
	}
	f := newFixture(t, false, pods...)

	res, err := sweeper(f.rec).Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, handlers.SweepResult{Pods: 4, Writes: 2}, res)
	assert.ElementsMatch(t, []string{"list pods", "patch pods", "patch pods", "create events"}, testutil.Verbs(f.client))
	assert.Equal(t, []string{names.Finalizer}, livePod(t, f.client, "new").Finalizers)
	assert.Empty(t, livePod(t, f.client, "drained").Finalizers)
	assert.Equal(t, 1, f.rec.Rechecks.Len(), "the waiting drain gets a re-check")
}

func TestSweepCountsFailuresAndGoesOn(t *testing.T) {
	f := newFixture(t, false, newPod(named("a"), managed), newPod(named("b"), managed))
	failPatches(f.client, 1, apierrors.NewInternalError(errors.New("etcd down")))

	res, err := sweeper(f.rec).Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, handlers.SweepResult{Pods: 2, Writes: 1, Failures: 1}, res)
}

func TestSweepListError(t *testing.T) {
	f := newFixture(t, false)
	f.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(podsGVR.GroupResource(), "", errors.New("no list"))
	})
	_, err := sweeper(f.rec).Sweep(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listing pods")
}

func TestSweepDryRunWritesNothing(t *testing.T) {
	f := newFixture(t, true, newPod(named("new"), managed))
	res, err := sweeper(f.rec).Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, handlers.SweepResult{Pods: 1, Writes: 1}, res, "a dry-run write is counted, not made")
	assert.Equal(t, []string{"list pods"}, testutil.Verbs(f.client))
}

func TestSweepNeedsACluster(t *testing.T) {
	r := &handlers.Sweeper{Deps: handlers.Deps{Log: discard}}
	_, err := r.Sweep(context.Background())
	assert.ErrorIs(t, err, handlers.ErrNoCluster)
}
