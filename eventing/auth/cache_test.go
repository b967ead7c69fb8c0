package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

func key(i int) [sha256.Size]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// A full cache makes room rather than grow: the accepted one drops first the tokens no longer
// known, then those known but no longer trusted, then the live verdict that expires first; the
// refused one drops its expired verdicts, then is emptied.
func TestStoreNeverGrowsPastMaxCached(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	v, err := New(fake.NewClientset(), Options{Audience: "a", Clock: clk})
	require.NoError(t, err)
	now := clk.Now()
	live := verdict{user: "u", expires: now.Add(AcceptedTTL), knownUntil: now.Add(KnownTTL)}
	known := verdict{user: "u", expires: now.Add(time.Second), knownUntil: now.Add(KnownTTL)} // untrusted in 2 s
	gone := verdict{user: "u", expires: now.Add(time.Second)}                                 // unknown in 2 s
	fill := func(from, to int, d verdict) {
		for i := from; i < to; i++ {
			v.store(key(i), d)
		}
	}
	has := func(i int) bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		_, ok := v.accepted[key(i)]
		return ok
	}

	// A quarter gone, a quarter known, half live: the gone quarter goes first.
	fill(0, MaxCached/4, gone)
	fill(MaxCached/4, MaxCached/2, known)
	fill(MaxCached/2, MaxCached-1, live)
	soonest := live
	soonest.expires = now.Add(AcceptedTTL - time.Second)
	v.store(key(MaxCached-1), soonest)
	clk.Step(2 * time.Second)
	accepted, _ := v.Cached()
	require.Equal(t, MaxCached, accepted)
	v.store(key(MaxCached), live)
	accepted, _ = v.Cached()
	assert.Equal(t, 3*MaxCached/4+1, accepted, "the tokens no longer known dropped")
	assert.False(t, has(0))
	assert.True(t, has(MaxCached/4), "a known token kept")

	// Full again: the known ones go next.
	fill(MaxCached+1, MaxCached+MaxCached/4, live)
	accepted, _ = v.Cached()
	require.Equal(t, MaxCached, accepted)
	v.store(key(2*MaxCached), live)
	accepted, _ = v.Cached()
	assert.Equal(t, 3*MaxCached/4+1, accepted, "the known, untrusted tokens dropped")
	assert.False(t, has(MaxCached/4))
	assert.True(t, has(MaxCached/2), "a live verdict kept")

	// All live: the one that expires first goes, one at a time.
	fill(2*MaxCached+1, 2*MaxCached+MaxCached/4, live)
	accepted, _ = v.Cached()
	require.Equal(t, MaxCached, accepted)
	require.True(t, has(MaxCached-1))
	v.store(key(3*MaxCached), live)
	accepted, _ = v.Cached()
	assert.Equal(t, MaxCached, accepted)
	assert.False(t, has(MaxCached-1), "the verdict expiring first dropped")
	assert.True(t, has(3*MaxCached), "the newest verdict is stored")
	v.store(key(MaxCached/2), live) // already held: replaced, nothing dropped
	accepted, refused := v.Cached()
	assert.Equal(t, MaxCached, accepted)
	assert.Zero(t, refused)

	// The refused cache, full of live verdicts, is emptied; refusals never push out accepted.
	no := verdict{err: invalidToken("no"), expires: clk.Now().Add(RefusedTTL)}
	fill(4*MaxCached, 5*MaxCached, no)
	_, refused = v.Cached()
	require.Equal(t, MaxCached, refused)
	v.store(key(5*MaxCached), no)
	accepted, refused = v.Cached()
	assert.Equal(t, 1, refused)
	assert.Equal(t, MaxCached, accepted)

	// A refusal replaces the token's accepted verdict, an acceptance its refusal.
	v.store(key(MaxCached/2), no)
	assert.False(t, has(MaxCached/2))
	_, st := v.lookup(key(MaxCached / 2))
	assert.Equal(t, stateLive, st)
	v.store(key(5*MaxCached), live)
	_, refused = v.Cached()
	assert.Equal(t, 1, refused, "the refusal of key 5*MaxCached replaced")

	// A 503 and an already expired verdict are not cached.
	v.store(key(-1), verdict{err: unavailable("away")})
	v.store(key(-2), verdict{user: "u", expires: clk.Now()})
	for _, k := range []int{-1, -2} {
		_, ok := v.cached(key(k))
		assert.False(t, ok)
	}
}

// What lookup makes of an accepted verdict as time passes.
func TestLookupStates(t *testing.T) {
	tests := []struct {
		name    string
		expires time.Duration // after the review
		known   time.Duration // 0: not known past expires
		at      time.Duration
		want    state
	}{
		{"fresh", AcceptedTTL, KnownTTL, 0, stateLive},
		{"before the renewal window", AcceptedTTL, KnownTTL, AcceptedTTL - RenewBefore - time.Nanosecond, stateLive},
		{"in the renewal window", AcceptedTTL, KnownTTL, AcceptedTTL - RenewBefore, stateRenew},
		{"its last instant", AcceptedTTL, KnownTTL, AcceptedTTL - time.Nanosecond, stateRenew},
		{"expired, known", AcceptedTTL, KnownTTL, AcceptedTTL, stateKnown},
		{"no longer known", AcceptedTTL, KnownTTL, KnownTTL, stateUnknown},
		{"ends at its exp claim: not renewed", 30 * time.Second, 30 * time.Second, 25 * time.Second, stateLive},
		{"past its exp claim: unknown", 30 * time.Second, 30 * time.Second, 30 * time.Second, stateUnknown},
		{"never known past its verdict", AcceptedTTL, 0, AcceptedTTL - time.Second, stateLive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Now())
			v, err := New(fake.NewClientset(), Options{Audience: "a", Clock: clk})
			require.NoError(t, err)
			d := verdict{user: "u", expires: clk.Now().Add(tt.expires)}
			if tt.known > 0 {
				d.knownUntil = clk.Now().Add(tt.known)
			}
			v.store(key(1), d)
			clk.Step(tt.at)
			_, st := v.lookup(key(1))
			assert.Equal(t, tt.want, st)
		})
	}
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		token string
		want  int64
		ok    bool
	}{
		{"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln", 1700000000, true},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", 0, false}, // no exp
		{"opaque-token", 0, false},
		{"a.!!!.c", 0, false},
		{"a.eyJleHAiOiJzb29uIn0.c", 0, false}, // exp not a number
	}
	for _, tt := range tests {
		got, ok := expiry(tt.token)
		assert.Equal(t, tt.ok, ok, tt.token)
		if tt.ok {
			assert.Equal(t, tt.want, got.Unix())
		}
	}
}
