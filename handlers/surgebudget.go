package handlers

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"function/handlers/surge"
	"function/names"
)

// budgetAttempts bounds the guarded updates of one claim or release that lose to another
// replica's.
const budgetAttempts = 5

// SurgeBudget is the surge-rollout budget over every Deployment and every replica: the slots
// of the rollouts in flight and of those started in the last minute (surge.Slots). With a
// Lease (UseLease: the function's namespace, where only the function writes) the slots are in
// its annotation and every claim is an update guarded by the Lease's resourceVersion, so two
// replicas never both take the last slot: the bound is the configuration's, whatever the
// replicas. Without one (a single process: make run, tests) they are in memory.
type SurgeBudget struct {
	mu    sync.Mutex
	slots surge.Slots
	// The Lease, when set.
	client          kubernetes.Interface
	namespace, name string
}

// UseLease keeps the budget in the Lease namespace/name (created on the first claim).
func (b *SurgeBudget) UseLease(client kubernetes.Interface, namespace, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.client, b.namespace, b.name = client, namespace, name
}

// Read returns the slots that count at now (pruned with timeout).
func (b *SurgeBudget) Read(ctx context.Context, now time.Time, timeout time.Duration) (surge.Slots, error) {
	slots, _, err := b.read(ctx)
	return slots.Prune(now, timeout), err
}

// Claim takes a slot for the Deployment key (uid) at now within the limits; "" and true when
// taken, else why not.
func (b *SurgeBudget) Claim(ctx context.Context, key string, uid types.UID, now time.Time, l surge.Limits) (string, error) {
	var why string
	err := b.change(ctx, func(s surge.Slots) (surge.Slots, bool) {
		var out surge.Slots
		out, why = s.Prune(now, l.Timeout).Claim(key, uid, now, l)
		return out, why == ""
	})
	return why, err
}

// End marks key's slot ended at now (drop: removes it, for a claim whose restart was not
// written).
func (b *SurgeBudget) End(ctx context.Context, key string, now time.Time, timeout time.Duration, drop bool) error {
	return b.change(ctx, func(s surge.Slots) (surge.Slots, bool) {
		if !s.Holds(key) {
			return s, false
		}
		return s.End(key, now, drop).Prune(now, timeout), true
	})
}

// change applies f to the slots and stores the result when f says to: under the lock in
// memory, or as an update guarded by the Lease's resourceVersion, read again after a
// conflict (at most budgetAttempts times).
func (b *SurgeBudget) change(ctx context.Context, f func(surge.Slots) (surge.Slots, bool)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil {
		if s, write := f(b.slots); write {
			b.slots = s
		}
		return nil
	}
	for range budgetAttempts {
		slots, lease, err := b.readLocked(ctx)
		if err != nil {
			return err
		}
		s, write := f(slots)
		if !write {
			return nil
		}
		err = b.writeLocked(ctx, lease, s)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			continue // another replica changed it: decide again on what it holds now
		}
		if err != nil {
			return fmt.Errorf("writing the surge budget Lease %s/%s: %w", b.namespace, b.name, err)
		}
		return nil
	}
	return fmt.Errorf("surge budget Lease %s/%s: changed by others %d times in a row", b.namespace, b.name, budgetAttempts)
}

func (b *SurgeBudget) read(ctx context.Context) (surge.Slots, *coordinationv1.Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil {
		return b.slots, nil, nil
	}
	return b.readLocked(ctx)
}

// readLocked reads the Lease (nil when it does not exist yet). Slots that cannot be read
// count as none, and are rewritten by the next claim: the Lease is the function's own (only
// its account and admins write it), so this is a hand edit, not a tenant's.
func (b *SurgeBudget) readLocked(ctx context.Context) (surge.Slots, *coordinationv1.Lease, error) {
	lease, err := b.client.CoordinationV1().Leases(b.namespace).Get(ctx, b.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the surge budget Lease %s/%s: %w", b.namespace, b.name, err)
	}
	slots, err := surge.ParseSlots(lease.Annotations[names.AnnotationSurgeSlots])
	if err != nil {
		return nil, lease, nil
	}
	return slots, lease, nil
}

func (b *SurgeBudget) writeLocked(ctx context.Context, lease *coordinationv1.Lease, s surge.Slots) error {
	leases := b.client.CoordinationV1().Leases(b.namespace)
	if lease == nil {
		_, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: b.name, Namespace: b.namespace,
			Annotations: map[string]string{names.AnnotationSurgeSlots: s.String()}}}, metav1.CreateOptions{FieldManager: names.Component})
		return err
	}
	lease = lease.DeepCopy()
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[names.AnnotationSurgeSlots] = s.String()
	_, err := leases.Update(ctx, lease, metav1.UpdateOptions{FieldManager: names.Component})
	return err
}
