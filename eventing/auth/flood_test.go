package auth_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"

	"function/eventing/auth"
)

// brokerVerifier is a Verifier v on a fake clock whose API server accepts the token broker,
// and verify, which answers a request with a token by its HTTP status.
func brokerVerifier(t *testing.T) (s *apiServer, v *auth.Verifier, clk *clocktesting.FakeClock, broker string, verify func(token string) int) {
	t.Helper()
	s = newAPIServer()
	clk = clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	broker = jwt("broker", clk.Now().Add(time.Hour))
	s.valid(broker, broker, audience)
	v, err := auth.New(s.client(), auth.Options{Audience: audience, Clock: clk})
	require.NoError(t, err)
	verify = func(token string) int {
		_, err := v.Verify(context.Background(), header("Bearer "+token))
		got, _ := status(t, err)
		return got
	}
	return s, v, clk, broker, verify
}

// reviewsOf is how many TokenReviews s made for token.
func (s *apiServer) reviewsOf(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, spec := range s.seen {
		if spec.Token == token {
			n++
		}
	}
	return n
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// 100 random bearer tokens a second for 61 s (on a fake clock, 10 ms a step) do not stop an
// accepted token's requests (one every 100 ms, each after that step's random one): every one
// is accepted, across its first verdict's AcceptedTTL, while the random ones are refused
// (401) within the unknown tokens' budget, and answered 503 beyond it.
func TestVerifyAcceptedTokenOutlivesAFlood(t *testing.T) {
	s, v, clk, broker, verify := brokerVerifier(t)
	require.Equal(t, 200, verify(broker))

	const (
		step     = 10 * time.Millisecond // 100 random tokens a second
		duration = 61 * time.Second
	)
	start := clk.Now()
	answers := map[int]int{} // the random tokens' statuses
	brokerRequests, brokerRefused := 0, 0
	for i := 1; clk.Since(start) < duration; i++ {
		clk.Step(step)
		answers[verify(randomToken(t))]++
		if i%10 == 0 {
			brokerRequests++
			if got := verify(broker); got != 200 {
				brokerRefused++
				t.Errorf("the accepted token answered %d at %s", got, clk.Since(start))
			}
		}
	}
	v.WaitRenewals()

	assert.Equal(t, 610, brokerRequests)
	assert.Zero(t, brokerRefused, "every request with the accepted token accepted throughout")
	maxUnknown := auth.ReviewBurst + int(duration.Seconds())*auth.ReviewsPerSecond
	assert.Equal(t, 6100, answers[401]+answers[503], "the random tokens are refused or answered 503: %v", answers)
	assert.LessOrEqual(t, answers[401], maxUnknown, "the random tokens reviewed within the unknown tokens' budget")
	assert.Positive(t, answers[503], "the flood spent the unknown tokens' budget")
	assert.Equal(t, int32(answers[401]+s.reviewsOf(broker)), s.reviews.Load(), "one review per random token refused, none for those answered 503")
	assert.Equal(t, 2, s.reviewsOf(broker), "the accepted token: its first review and one renewal before its verdict expired")
}

// A token accepted before whose verdict expired unrenewed (no request in its last RenewBefore)
// is re-reviewed on the known tokens' budget: accepted while unknown tokens get 503. Refused
// then (revoked), it is known no more.
func TestVerifyKnownTokenReviewedOnItsOwnBudget(t *testing.T) {
	s, _, clk, broker, verify := brokerVerifier(t)
	spend := func() { // the unknown tokens' budget
		for range auth.ReviewBurst {
			require.Equal(t, 401, verify(randomToken(t)))
		}
		require.Equal(t, 503, verify(randomToken(t)), "the unknown tokens' budget is spent")
	}
	require.Equal(t, 200, verify(broker))

	clk.Step(auth.AcceptedTTL)
	spend()
	assert.Equal(t, 200, verify(broker), "re-reviewed on the known tokens' budget")
	assert.Equal(t, 2, s.reviewsOf(broker))
	assert.Equal(t, 200, verify(broker))
	assert.Equal(t, 2, s.reviewsOf(broker), "the new verdict cached")

	clk.Step(auth.AcceptedTTL)
	spend()
	s.mu.Lock()
	delete(s.tokens, broker) // revoked
	s.mu.Unlock()
	assert.Equal(t, 401, verify(broker), "a revoked token is refused on its re-review")
	clk.Step(auth.RefusedTTL)
	spend()
	assert.Equal(t, 503, verify(broker), "refused, it is an unknown token again")
	assert.Equal(t, 3, s.reviewsOf(broker))
}

// The renewal in an accepted verdict's last RenewBefore: the requests are answered from the
// cache without waiting for it, concurrent ones start one; its verdict replaces the cached one
// (a refusal at once), and a failed renewal leaves the cached verdict to its expiry.
func TestVerifyRenewal(t *testing.T) {
	tests := []struct {
		name string
		// revoke: the API server refuses the token in the renewal; fail: the renewal fails.
		revoke, fail bool
		// after is the status of a request once the renewal has ended (after a failed one, the
		// request starts another), atExpiry at the cached verdict's AcceptedTTL; reviews the
		// reviews made in all.
		after, atExpiry, reviews int
	}{
		{name: "accepted again", after: 200, atExpiry: 200, reviews: 2},
		{name: "refused (revoked)", revoke: true, after: 401, atExpiry: 401, reviews: 3},
		{name: "the renewal fails", fail: true, after: 200, atExpiry: 200, reviews: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAPIServer()
			clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
			broker := jwt("broker", clk.Now().Add(time.Hour))
			s.valid(broker, broker, audience)
			v, err := auth.New(s.client(), auth.Options{Audience: audience, Clock: clk})
			require.NoError(t, err)
			verify := func() int {
				_, err := v.Verify(context.Background(), header("Bearer "+broker))
				got, _ := status(t, err)
				return got
			}
			require.Equal(t, 200, verify())

			clk.Step(auth.AcceptedTTL - auth.RenewBefore)
			s.mu.Lock()
			if tt.revoke {
				delete(s.tokens, broker)
			}
			if tt.fail {
				s.err = errors.New("the API server is away")
			}
			s.mu.Unlock()
			s.gate = make(chan struct{}) // holds the renewal
			const n = 50
			var wg sync.WaitGroup
			got := make([]int, n)
			for i := range n {
				wg.Go(func() { got[i] = verify() })
			}
			wg.Wait() // all answered while the renewal is held
			for _, g := range got {
				assert.Equal(t, 200, g, "answered from the cache")
			}
			close(s.gate)
			v.WaitRenewals()
			assert.Equal(t, 2, s.reviewsOf(broker), "one renewal")
			assert.Equal(t, tt.after, verify())
			v.WaitRenewals()

			s.mu.Lock()
			s.err = nil
			s.mu.Unlock()
			clk.Step(auth.RenewBefore)
			assert.Equal(t, tt.atExpiry, verify())
			v.WaitRenewals()
			assert.Equal(t, tt.reviews, s.reviewsOf(broker))
		})
	}
}
