package handlers

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SweepLease makes the replicas share one sweep schedule: each sweep first claims the Lease
// (an update guarded by its resourceVersion, so of two replicas claiming at once one wins),
// and a replica whose timer fires while the Lease shows a sweep within the interval stands
// down until that sweep's interval is over. A sweep requested by an event (a PingSource tick
// delivered to one replica) always claims it, so the in-process timers of every replica stand
// down while the ticks arrive: the two never double the work.
type SweepLease struct {
	Client          kubernetes.Interface
	Namespace, Name string
	// Identity names this replica in the Lease (holderIdentity).
	Identity string
}

// claim records a sweep starting now, unless (force false) one was recorded less than
// interval ago: then it returns false and when the next sweep is due.
func (l *SweepLease) claim(ctx context.Context, now time.Time, interval time.Duration, force bool) (bool, time.Time, error) {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	lease, err := leases.Get(ctx, l.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, l.stamp(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: l.Name, Namespace: l.Namespace}}, now, interval),
			metav1.CreateOptions{FieldManager: Component})
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
	if !force && lease.Spec.RenewTime != nil {
		if due := lease.Spec.RenewTime.Add(interval); now.Before(due) {
			return false, due, nil
		}
	}
	_, err = leases.Update(ctx, l.stamp(lease, now, interval), metav1.UpdateOptions{FieldManager: Component})
	switch {
	case apierrors.IsConflict(err):
		return false, now.Add(interval), nil // another replica claimed it first
	case err != nil:
		return false, time.Time{}, fmt.Errorf("claiming sweep Lease %s/%s: %w", l.Namespace, l.Name, err)
	}
	return true, now.Add(interval), nil
}

func (l *SweepLease) stamp(lease *coordinationv1.Lease, now time.Time, interval time.Duration) *coordinationv1.Lease {
	renew := metav1.NewMicroTime(now)
	secs := int32(interval.Seconds())
	lease.Spec.HolderIdentity, lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds = &l.Identity, &renew, &secs
	return lease
}
