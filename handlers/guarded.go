package handlers

import (
	"context"
	"errors"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// ErrGone means the object a guarded write was decided on is gone, or was replaced by another
// of the same name: there is nothing to write any more.
var ErrGone = errors.New("the object is gone or was replaced")

// RereadError is Guarded's failed re-read of the object: Err, as reread returned it (its
// message is Err's).
type RereadError struct{ Err error }

func (e *RereadError) Error() string { return e.Err.Error() }
func (e *RereadError) Unwrap() error { return e.Err }

// Guarded is the one loop of every write this project decides on what it read (a pod's
// finalizer and drain stamp, a Deployment's surge rollout, the plugin's release by hand):
// write decides on obj and writes, guarded on what obj says (a JSON patch's test ops, a
// resourceVersion); when the API server refuses the write as made on an object that changed
// meanwhile (stale(err)), reread reads the object again and write decides again on the fresh
// copy, at most attempts writes in all. reread answers ok false when the object is gone or
// was replaced: Guarded then returns ErrGone; a failed re-read, a *RereadError.
//
// Otherwise it returns the object last decided on and write's last error: nil, an error that
// is not a guard failure, or the guard failure of the last attempt (the object kept changing).
func Guarded[T any](ctx context.Context, obj T, attempts int, write func(context.Context, T) error,
	reread func(context.Context, T) (T, bool, error), stale func(error) bool) (T, error) {
	err := write(ctx, obj)
	for attempt := 2; err != nil && stale(err) && attempt <= attempts; attempt++ {
		fresh, ok, readErr := reread(ctx, obj)
		if readErr != nil {
			return obj, &RereadError{Err: readErr}
		}
		if !ok {
			return obj, ErrGone
		}
		obj = fresh
		err = write(ctx, obj)
	}
	return obj, err
}

// IsGuardFailure reports whether a write's guard failed: a patch's test ops (422), the object
// changed under us (409), or the API server refused the write for the object's live state
// (422, e.g. a finalizer added to a pod that started deleting). All mean the decision was made
// on a stale object.
func IsGuardFailure(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	code := status.Status().Code
	return code == http.StatusConflict || code == http.StatusUnprocessableEntity
}
