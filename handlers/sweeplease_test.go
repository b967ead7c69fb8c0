package handlers_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"function/handlers"
)

// leaseConcurrency makes the fake clientset's Lease writes optimistic, as the API server's
// are (the fake's tracker neither sets nor checks resourceVersion): a create sets it to 1, an
// update with another resourceVersion than the stored one is a Conflict, and one that matches
// increments it. Without it, two replicas that read the Lease before either writes it would
// both claim it.
func leaseConcurrency(c *fake.Clientset) {
	var mu sync.Mutex
	gvr := coordinationv1.SchemeGroupVersion.WithResource("leases")
	c.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		l := a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		l.ResourceVersion = "1"
		return true, l, c.Tracker().Create(gvr, l, l.Namespace)
	})
	c.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		cur, err := c.Tracker().Get(gvr, l.Namespace, l.Name)
		if err != nil {
			return true, nil, err
		}
		rv := cur.(*coordinationv1.Lease).ResourceVersion
		if l.ResourceVersion != rv {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), l.Name, errors.New("the object has been modified"))
		}
		n, _ := strconv.Atoi(rv)
		l.ResourceVersion = strconv.Itoa(n + 1)
		return true, l, c.Tracker().Update(gvr, l, l.Namespace)
	})
}

// runSweeps runs a Reconciler and its Sweeper with a sweep Lease on the fixture's client.
func runSweeps(t *testing.T, f *fixture, identity string) *handlers.Sweeper {
	t.Helper()
	cfg := f.rec.Config
	cfg.SweepInterval = time.Minute
	rec := handlers.NewReconciler(handlers.Deps{Client: f.client, Clock: f.clock, Log: discard}, cfg)
	sw := sweeper(rec)
	sw.Lease = &handlers.SweepLease{Client: f.client, Namespace: "vpa-graceful-drain", Name: "sweep", Identity: identity}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go runWithSweeps(ctx, rec, sw, done)
	t.Cleanup(func() { cancel(); <-done })
	return sw
}

func listsOf(f *fixture) <-chan struct{} {
	ch := make(chan struct{}, 20)
	f.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		ch <- struct{}{}
		return false, nil, nil
	})
	return ch
}

func expectSweeps(t *testing.T, lists <-chan struct{}, n int, msg string) {
	t.Helper()
	for i := range n {
		select {
		case <-lists:
		case <-time.After(waitFor):
			require.FailNowf(t, msg, "sweep %d of %d did not come", i+1, n)
		}
	}
	select {
	case <-lists:
		require.FailNow(t, msg+": one sweep too many")
	case <-time.After(100 * time.Millisecond):
	}
}

// Two replicas share one schedule: one sweeps at start, the other stands down until the
// interval is over; a requested sweep (a PingSource tick) sweeps at once and pushes every
// replica's timer back.
func TestSweepLeaseSharesOneSchedule(t *testing.T) {
	f := newFixture(t, false)
	leaseConcurrency(f.client)
	lists := listsOf(f)
	a := runSweeps(t, f, "a")
	expectSweeps(t, lists, 1, "replica a sweeps at start")
	lease, err := f.client.CoordinationV1().Leases("vpa-graceful-drain").Get(context.Background(), "sweep", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "a", *lease.Spec.HolderIdentity)

	runSweeps(t, f, "b")
	expectSweeps(t, lists, 0, "replica b stands down: a swept less than an interval ago")

	f.clock.Step(30 * time.Second)
	require.True(t, a.AskedByEvent())
	expectSweeps(t, lists, 1, "a sweep asked for by an event runs at once")

	f.clock.Step(30 * time.Second) // a minute after start, half a minute after the tick
	expectSweeps(t, lists, 0, "no timer sweeps: the tick renewed the Lease")
	f.clock.Step(30 * time.Second) // a minute after the tick
	expectSweeps(t, lists, 1, "one replica sweeps when the interval since the tick is over")
}

// A Lease that cannot be read does not stop sweeps: it only shares the work.
func TestSweepLeaseUnavailableSweepsAnyway(t *testing.T) {
	f := newFixture(t, false)
	f.client.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "sweep", errors.New("no"))
	})
	lists := listsOf(f)
	runSweeps(t, f, "a")
	expectSweeps(t, lists, 1, "swept without the Lease")
}

// Of two replicas claiming at once, the one whose update conflicts stands down.
func TestSweepLeaseConflictStandsDown(t *testing.T) {
	f := newFixture(t, false)
	_, err := f.client.CoordinationV1().Leases("vpa-graceful-drain").Create(context.Background(), leaseRenewedAt(now.Add(-2*time.Minute)), metav1.CreateOptions{})
	require.NoError(t, err)
	f.client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "sweep", errors.New("modified"))
	})
	lists := listsOf(f)
	runSweeps(t, f, "b")
	expectSweeps(t, lists, 0, "the other replica won the claim")
}

// Sweeps asked for by events (anyone can post one) are rate-limited per replica, before any
// read, and respect a Lease renewed within MinSweepGap by any replica; a configuration
// change's sweep is not limited.
func TestAskedSweepsAreBounded(t *testing.T) {
	f := newFixture(t, false)
	lists := listsOf(f)
	a := runSweeps(t, f, "a")
	expectSweeps(t, lists, 1, "replica a sweeps at start")

	f.clock.Step(handlers.MinSweepGap)
	require.True(t, a.AskedByEvent())
	expectSweeps(t, lists, 1, "asked for after the gap: it runs")
	assert.False(t, a.AskedByEvent(), "asked again at once: refused before any read")
	expectSweeps(t, lists, 0, "not repeated within the gap")

	b := runSweeps(t, f, "b") // stands down: a swept just now
	expectSweeps(t, lists, 0, "replica b stands down at start")
	f.clock.Step(handlers.MinSweepGap / 2)
	leaseReads := func() int {
		n := 0
		for _, a := range f.client.Actions() {
			if a.GetVerb() == "get" && a.GetResource().Resource == "leases" {
				n++
			}
		}
		return n
	}
	read := leaseReads()
	require.True(t, b.AskedByEvent(), "b was never asked")
	require.Eventually(t, func() bool { return leaseReads() > read }, waitFor, tick, "b reads the Lease for its asked sweep")
	expectSweeps(t, lists, 0, "b's asked sweep respects the Lease a renewed within the gap")

	require.True(t, a.ConfigChanged())
	expectSweeps(t, lists, 1, "a configuration change sweeps whatever the Lease says")
}

// A Lease whose renew time lies ahead of now is due at most one interval from now; one ahead
// by more than the clock skew is not trusted.
func TestSweepLeaseRenewedInTheFuture(t *testing.T) {
	tests := []struct {
		name      string
		ahead     time.Duration
		atStart   int
		afterStep int
	}{
		{"ahead by seconds: due one interval from now", 30 * time.Second, 0, 1},
		{"ahead by an hour: swept at once, and again an interval later", time.Hour, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false)
			_, err := f.client.CoordinationV1().Leases("vpa-graceful-drain").Create(context.Background(), leaseRenewedAt(f.clock.Now().Add(tt.ahead)), metav1.CreateOptions{})
			require.NoError(t, err)
			lists := listsOf(f)
			runSweeps(t, f, "a")
			expectSweeps(t, lists, tt.atStart, "at start")
			f.clock.Step(time.Minute) // the interval
			expectSweeps(t, lists, tt.afterStep, "one interval later")
		})
	}
}
