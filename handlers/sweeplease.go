package handlers

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"function/handlers/drain"
	"function/names"
)

// SweepLease makes the replicas share one sweep schedule: each sweep first claims the Lease
// (an update guarded by its resourceVersion, so of two replicas claiming at once one wins),
// and a replica whose timer fires while the Lease shows a sweep within the interval stands
// down until that sweep's interval is over. A sweep asked for by an event (a PingSource tick
// delivered to one replica) claims it unless any replica swept within MinSweepGap, so the
// in-process timers of every replica stand down while the ticks arrive (the two never double
// the work), and a sender posting sweep events costs the cluster at most one sweep per gap. A
// configuration change's sweep always claims it.
type SweepLease struct {
	Client          kubernetes.Interface
	Namespace, Name string
	// Identity names this replica in the Lease (holderIdentity).
	Identity string

	mu sync.Mutex
	// ahead is the last renew time seen ahead of this replica's clock, and when it was seen:
	// it counts from then, so it delays a sweep by at most one interval.
	ahead, aheadSeen time.Time
}

// claim records a sweep starting now, unless one was recorded less than gap ago (gap 0: claim
// whatever the Lease says): then it returns false and when the next sweep is due. A renew
// time ahead of now (a replica's clock ahead, a hand-edited Lease) counts as now, so the next
// sweep is due at most one interval from now; one more than the clock skew ahead is not
// trusted at all.
func (l *SweepLease) claim(ctx context.Context, now time.Time, interval, gap time.Duration) (bool, time.Time, error) {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	lease, err := leases.Get(ctx, l.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, l.stamp(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: l.Name, Namespace: l.Namespace}}, now, interval),
			metav1.CreateOptions{FieldManager: names.Component})
		if apierrors.IsAlreadyExists(err) {
			return false, now.Add(interval), nil // another replica claimed it first
		}
		if err != nil {
			return false, time.Time{}, fmt.Errorf("creating sweep Lease %s/%s: %w", l.Namespace, l.Name, err)
		}
		return true, now.Add(interval), nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("reading sweep Lease %s/%s: %w", l.Namespace, l.Name, err)
	}
	if renew := lease.Spec.RenewTime; gap > 0 && renew != nil && !renew.After(now.Add(drain.ClockSkew)) {
		last := l.lastSweep(renew.Time, now)
		if now.Before(last.Add(gap)) {
			return false, last.Add(interval), nil
		}
	}
	_, err = leases.Update(ctx, l.stamp(lease, now, interval), metav1.UpdateOptions{FieldManager: names.Component})
	switch {
	case apierrors.IsConflict(err):
		return false, now.Add(interval), nil // another replica claimed it first
	case err != nil:
		return false, time.Time{}, fmt.Errorf("claiming sweep Lease %s/%s: %w", l.Namespace, l.Name, err)
	}
	return true, now.Add(interval), nil
}

// lastSweep is when the Lease's last sweep counts as made: its renew time, but a renew time
// ahead of now counts from when it was first seen.
func (l *SweepLease) lastSweep(renew, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case renew.Equal(l.ahead) && l.aheadSeen.Before(renew):
		return l.aheadSeen
	case renew.Equal(l.ahead):
		return renew
	case renew.After(now):
		l.ahead, l.aheadSeen = renew, now
		return now
	}
	return renew
}

func (l *SweepLease) stamp(lease *coordinationv1.Lease, now time.Time, interval time.Duration) *coordinationv1.Lease {
	renew := metav1.NewMicroTime(now)
	secs := int32(interval.Seconds())
	lease.Spec.HolderIdentity, lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds = &l.Identity, &renew, &secs
	return lease
}
