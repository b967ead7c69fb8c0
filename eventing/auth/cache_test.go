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

// The review cap and the TTLs keep fewer live verdicts than MaxCached; should a cache fill
// with live ones all the same, it is emptied rather than grown. Expired verdicts go first.
func TestStoreNeverGrowsPastMaxCached(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	v, err := New(fake.NewClientset(), Options{Audience: "a", Clock: clk})
	require.NoError(t, err)
	key := func(i int) [sha256.Size]byte {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		return sha256.Sum256(b[:])
	}
	// Half expire, half live: a full cache drops the expired ones only.
	for i := range MaxCached / 2 {
		v.store(key(i), verdict{user: "u", expires: clk.Now().Add(time.Second)})
	}
	clk.Step(2 * time.Second)
	for i := MaxCached / 2; i < MaxCached; i++ {
		v.store(key(i), verdict{user: "u", expires: clk.Now().Add(AcceptedTTL)})
	}
	accepted, _ := v.Cached()
	require.Equal(t, MaxCached, accepted)
	v.store(key(MaxCached), verdict{user: "u", expires: clk.Now().Add(AcceptedTTL)})
	accepted, _ = v.Cached()
	assert.Equal(t, MaxCached/2+1, accepted, "the expired half dropped")
	_, ok := v.cached(key(MaxCached - 1))
	assert.True(t, ok, "a live verdict kept")

	// All live: emptied, then the new one stored.
	for i := MaxCached + 1; i < 2*MaxCached; i++ {
		v.store(key(i), verdict{user: "u", expires: clk.Now().Add(AcceptedTTL)})
		accepted, _ = v.Cached()
		require.LessOrEqual(t, accepted, MaxCached)
	}
	accepted, refused := v.Cached()
	assert.LessOrEqual(t, accepted, MaxCached)
	assert.Zero(t, refused)
	_, ok = v.cached(key(2*MaxCached - 1))
	assert.True(t, ok, "the newest verdict is stored")

	// A 503 and an already expired verdict are not cached.
	v.store(key(-1), verdict{err: unavailable("away")})
	v.store(key(-2), verdict{user: "u", expires: clk.Now()})
	for _, k := range []int{-1, -2} {
		_, ok := v.cached(key(k))
		assert.False(t, ok)
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
