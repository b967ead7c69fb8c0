package handlers_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/handlers"
)

// Guarded writes, and after a stale write reads the object again and decides again, at most
// attempts writes in all; what the last write or read said is what it returns.
func TestGuarded(t *testing.T) {
	stale, other, readFailed := errors.New("stale"), errors.New("refused"), errors.New("read failed")
	tests := []struct {
		name       string
		writes     []error // what each write answers, in turn (the last one repeats)
		gone       bool    // reread: the object is gone
		readErr    error
		wantWrites []int // the versions written on
		wantObj    int
		wantErr    error
	}{
		{name: "written at once", writes: []error{nil}, wantWrites: []int{1}, wantObj: 1},
		{name: "stale once: decided again on the fresh read", writes: []error{stale, nil}, wantWrites: []int{1, 2}, wantObj: 2},
		{name: "stale every time: three writes, then the guard failure", writes: []error{stale}, wantWrites: []int{1, 2, 3}, wantObj: 3, wantErr: stale},
		{name: "another error: not read again", writes: []error{other}, wantWrites: []int{1}, wantObj: 1, wantErr: other},
		{name: "gone when read again", writes: []error{stale}, gone: true, wantWrites: []int{1}, wantObj: 1, wantErr: handlers.ErrGone},
		{name: "the read fails", writes: []error{stale}, readErr: readFailed, wantWrites: []int{1}, wantObj: 1, wantErr: readFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var written []int
			obj, err := handlers.Guarded(context.Background(), 1, 3,
				func(_ context.Context, v int) error {
					written = append(written, v)
					return tt.writes[min(len(written), len(tt.writes))-1]
				},
				func(_ context.Context, v int) (int, bool, error) { return v + 1, !tt.gone, tt.readErr },
				func(err error) bool { return errors.Is(err, stale) })
			assert.Equal(t, tt.wantWrites, written)
			assert.Equal(t, tt.wantObj, obj)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			var reread *handlers.RereadError
			assert.Equal(t, tt.readErr != nil, errors.As(err, &reread), "a failed re-read, and only it, is a RereadError")
		})
	}
}
