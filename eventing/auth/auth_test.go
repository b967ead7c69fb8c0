package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"function/eventing/auth"
)

const (
	audience = "serving.knative.dev/service/vpa-graceful-drain/vpa-graceful-drain"
	broker   = "system:serviceaccount:vpa-graceful-drain:vpa-graceful-drain-oidc-eventing.knative.dev-trigger"
)

// apiServer is a fake API server's TokenReview: tokens maps a token to the user and audiences
// it is valid for; err, when set, fails every review.
type apiServer struct {
	mu      sync.Mutex
	tokens  map[string]authenticationv1.UserInfo
	aud     map[string][]string
	err     error
	reviews atomic.Int32
	// gate, when set, holds every review until it is closed.
	gate chan struct{}
	// seen records each review's spec.
	seen []authenticationv1.TokenReviewSpec
}

func newAPIServer() *apiServer {
	return &apiServer{tokens: map[string]authenticationv1.UserInfo{}, aud: map[string][]string{}}
}

func (s *apiServer) valid(token, user string, audiences ...string) {
	s.tokens[token] = authenticationv1.UserInfo{Username: user}
	s.aud[token] = audiences
}

func (s *apiServer) client() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s.reviews.Add(1)
		if s.gate != nil {
			<-s.gate
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.seen = append(s.seen, tr.Spec)
		if s.err != nil {
			return true, nil, s.err
		}
		user, ok := s.tokens[tr.Spec.Token]
		if !ok {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token, token lookup failed"}
			return true, tr, nil
		}
		// As the API server: authenticated only when the token's audiences meet the review's.
		var both []string
		for _, a := range s.aud[tr.Spec.Token] {
			for _, b := range tr.Spec.Audiences {
				if a == b {
					both = append(both, a)
				}
			}
		}
		if len(both) == 0 {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "token audiences are invalid for the target audiences"}
			return true, tr, nil
		}
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: user, Audiences: both}
		return true, tr, nil
	})
	return c
}

func header(authorization ...string) http.Header {
	h := http.Header{}
	for _, a := range authorization {
		h.Add("Authorization", a)
	}
	return h
}

// jwt is a JWT-shaped token (unsigned: the fake API server decides) with the given exp.
func jwt(name string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, name, exp.Unix()))) + ".c2ln"
}

func status(t *testing.T, err error) (int, *auth.Error) {
	t.Helper()
	if err == nil {
		return http.StatusOK, nil
	}
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	return e.Status, e
}

func TestVerify(t *testing.T) {
	long := make([]byte, auth.MaxTokenBytes+1)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name       string
		identities []string
		header     http.Header
		apiErr     error
		want       int
		challenge  string
		reviews    int32
		user       string
		message    string
	}{
		{name: "no Authorization header", header: header(), want: 401, challenge: "Bearer"},
		{name: "another scheme", header: header("Basic dXNlcjpwYXNz"), want: 401, challenge: `Bearer error="invalid_request"`},
		{name: "Bearer without a token", header: header("Bearer "), want: 401, challenge: `Bearer error="invalid_request"`},
		{name: "Bearer alone", header: header("Bearer"), want: 401, challenge: `Bearer error="invalid_request"`},
		{name: "two Authorization headers", header: header("Bearer good", "Bearer good"), want: 401, challenge: `Bearer error="invalid_request"`},
		{name: "a token with a space", header: header("Bearer good token"), want: 401, challenge: `Bearer error="invalid_request"`},
		{name: "a token with a quote", header: header(`Bearer "good"`), want: 401, challenge: `Bearer error="invalid_request"`},
		{name: "a token over the limit", header: header("Bearer " + string(long)), want: 401, challenge: `Bearer error="invalid_token"`},
		{name: "valid", header: header("Bearer good"), want: 200, reviews: 1, user: broker},
		{name: "valid, scheme in lower case", header: header("bearer good"), want: 200, reviews: 1, user: broker},
		{name: "valid, an allowed identity", identities: []string{"system:serviceaccount:x:y", broker}, header: header("Bearer good"), want: 200, reviews: 1, user: broker},
		{name: "valid, another identity", identities: []string{"system:serviceaccount:x:y"}, header: header("Bearer good"), want: 403, challenge: `Bearer error="insufficient_scope"`, reviews: 1},
		{name: "a token for another audience", header: header("Bearer other-audience"), want: 401, challenge: `Bearer error="invalid_token"`, reviews: 1},
		{name: "authenticated, but the audience not echoed", header: header("Bearer no-audience"), want: 401, challenge: `Bearer error="invalid_token"`, reviews: 1},
		{name: "unknown token", header: header("Bearer bogus"), want: 401, challenge: `Bearer error="invalid_token"`, reviews: 1},
		{name: "the TokenReview fails", header: header("Bearer good"), apiErr: errors.New("connection refused"), want: 503, reviews: 1},
		{name: "the TokenReview is forbidden", header: header("Bearer good"), apiErr: apierrors.NewForbidden(schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "", errors.New("RBAC")),
			want: 503, reviews: 1, message: "vpa-graceful-drain-sender-auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAPIServer()
			s.valid("good", broker, audience)
			s.valid("other-audience", broker, "another-audience")
			s.err = tt.apiErr
			c := s.client()
			if tt.name == "authenticated, but the audience not echoed" {
				c.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
					s.reviews.Add(1)
					return true, &authenticationv1.TokenReview{Status: authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: broker}}}, nil
				})
			}
			v, err := auth.New(c, auth.Options{Audience: audience, Identities: tt.identities})
			require.NoError(t, err)
			user, err := v.Verify(context.Background(), tt.header)
			got, e := status(t, err)
			assert.Equal(t, tt.want, got, "%v", err)
			assert.Equal(t, tt.reviews, s.reviews.Load(), "TokenReviews made")
			assert.Len(t, c.Actions(), int(tt.reviews), "no other API call")
			assert.Equal(t, tt.user, user)
			if e != nil {
				assert.Equal(t, tt.challenge, e.Challenge)
				assert.NotContains(t, e.Message, "good", "the token is never echoed")
				if tt.want == 503 {
					assert.Equal(t, 1, e.RetryAfter, "the sender retries")
				}
				assert.Contains(t, e.Message, tt.message)
			}
			for _, spec := range s.seen {
				assert.Equal(t, []string{audience}, spec.Audiences, "reviewed for the configured audience")
			}
		})
	}
}

func TestVerifyCaches(t *testing.T) {
	s := newAPIServer()
	clk := clocktesting.NewFakeClock(time.Now())
	token := jwt("broker", clk.Now().Add(time.Hour))
	s.valid(token, broker, audience)
	v, err := auth.New(s.client(), auth.Options{Audience: audience, Clock: clk})
	require.NoError(t, err)
	verify := func(token string) int {
		_, err := v.Verify(context.Background(), header("Bearer "+token))
		got, _ := status(t, err)
		return got
	}

	assert.Equal(t, 200, verify(token))
	assert.Equal(t, 200, verify(token))
	assert.Equal(t, int32(1), s.reviews.Load(), "the second request is answered from the cache")
	clk.Step(auth.AcceptedTTL - auth.RenewBefore - time.Second)
	assert.Equal(t, 200, verify(token))
	v.WaitRenewals()
	assert.Equal(t, int32(1), s.reviews.Load(), "not renewed before the last RenewBefore")
	clk.Step(time.Second)
	assert.Equal(t, 200, verify(token))
	v.WaitRenewals()
	assert.Equal(t, int32(2), s.reviews.Load(), "renewed in the last RenewBefore")
	clk.Step(auth.RenewBefore)
	assert.Equal(t, 200, verify(token))
	v.WaitRenewals()
	assert.Equal(t, int32(2), s.reviews.Load(), "past the first verdict's AcceptedTTL, the renewed one holds")
	clk.Step(auth.AcceptedTTL)
	assert.Equal(t, 200, verify(token))
	assert.Equal(t, int32(3), s.reviews.Load(), "reviewed again once the renewed verdict has expired")

	// A refusal is cached for RefusedTTL.
	assert.Equal(t, 401, verify("bogus"))
	assert.Equal(t, 401, verify("bogus"))
	assert.Equal(t, int32(4), s.reviews.Load())
	clk.Step(auth.RefusedTTL)
	assert.Equal(t, 401, verify("bogus"))
	assert.Equal(t, int32(5), s.reviews.Load(), "reviewed again after RefusedTTL")

	// A failed review is not cached: the next request reviews again, and passes.
	s.err = errors.New("the API server is away")
	other := jwt("other", clk.Now().Add(time.Hour))
	s.valid(other, broker, audience)
	assert.Equal(t, 503, verify(other))
	s.err = nil
	assert.Equal(t, 200, verify(other))
	assert.Equal(t, int32(7), s.reviews.Load())
}

// A token that expires within AcceptedTTL is trusted only until its exp claim.
func TestVerifyNeverPastTheTokensExpiry(t *testing.T) {
	s := newAPIServer()
	clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	token := jwt("broker", clk.Now().Add(5*time.Second))
	s.valid(token, broker, audience)
	v, err := auth.New(s.client(), auth.Options{Audience: audience, Clock: clk})
	require.NoError(t, err)
	for range 2 {
		_, err = v.Verify(context.Background(), header("Bearer "+token))
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), s.reviews.Load())
	clk.Step(5 * time.Second)
	delete(s.tokens, token) // expired: the API server refuses it now
	_, err = v.Verify(context.Background(), header("Bearer "+token))
	got, _ := status(t, err)
	assert.Equal(t, 401, got, "not trusted past its exp")
	assert.Equal(t, int32(2), s.reviews.Load())
}

// Distinct bogus tokens: one review each, the refused cache within MaxCached, and refused
// tokens never push out an accepted one.
func TestVerifyBoundedCache(t *testing.T) {
	s := newAPIServer()
	clk := clocktesting.NewFakeClock(time.Now())
	s.valid("good", broker, audience)
	v, err := auth.New(s.client(), auth.Options{Audience: audience, Clock: clk})
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), header("Bearer good"))
	require.NoError(t, err)

	start, n, hits := clk.Now(), 3*auth.MaxCached, 0
	for i := range n {
		if i%auth.ReviewBurst == 0 {
			clk.Step(time.Duration(auth.ReviewBurst) * time.Second / auth.ReviewsPerSecond) // refills the review cap
		}
		_, err := v.Verify(context.Background(), header(fmt.Sprintf("Bearer bogus-%d", i)))
		got, _ := status(t, err)
		require.Equal(t, 401, got)
		accepted, refused := v.Cached()
		require.LessOrEqual(t, refused, auth.MaxCached)
		require.Equal(t, 1, accepted)
		if clk.Since(start) < auth.AcceptedTTL {
			_, err := v.Verify(context.Background(), header("Bearer good"))
			require.NoError(t, err)
			hits++
		}
	}
	assert.Positive(t, hits)
	v.WaitRenewals()
	assert.Equal(t, int32(n+2), s.reviews.Load(), "one review per distinct token; the accepted one's renewal in its last RenewBefore")
}

// Beyond the cap on reviews, an unknown token is answered 503 with no review; cached tokens are
// still answered.
func TestVerifyReviewCap(t *testing.T) {
	s := newAPIServer()
	clk := clocktesting.NewFakeClock(time.Now())
	s.valid("good", broker, audience)
	v, err := auth.New(s.client(), auth.Options{Audience: audience, Clock: clk})
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), header("Bearer good"))
	require.NoError(t, err)
	for i := 1; i < auth.ReviewBurst; i++ {
		_, err := v.Verify(context.Background(), header(fmt.Sprintf("Bearer bogus-%d", i)))
		got, _ := status(t, err)
		require.Equal(t, 401, got)
	}
	_, err = v.Verify(context.Background(), header("Bearer one-too-many"))
	got, e := status(t, err)
	assert.Equal(t, 503, got)
	require.NotNil(t, e)
	assert.Equal(t, 1, e.RetryAfter)
	assert.Equal(t, int32(auth.ReviewBurst), s.reviews.Load(), "no review beyond the cap")
	_, err = v.Verify(context.Background(), header("Bearer good"))
	assert.NoError(t, err, "a cached token is still accepted")

	clk.Step(time.Second / auth.ReviewsPerSecond)
	_, err = v.Verify(context.Background(), header("Bearer one-too-many"))
	got, _ = status(t, err)
	assert.Equal(t, 401, got, "reviewed once the cap has refilled")
}

// Concurrent requests with the same unknown token share one review.
func TestVerifyConcurrentShareOneReview(t *testing.T) {
	s := newAPIServer()
	s.valid("good", broker, audience)
	s.gate = make(chan struct{})
	v, err := auth.New(s.client(), auth.Options{Audience: audience})
	require.NoError(t, err)
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = v.Verify(context.Background(), header("Bearer good")) })
	}
	require.Eventually(t, func() bool { return s.reviews.Load() == 1 }, 5*time.Second, time.Millisecond)
	close(s.gate)
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, int32(1), s.reviews.Load())
}

// A request whose context ends while its review runs is answered 503 at once.
func TestVerifyContextEnds(t *testing.T) {
	s := newAPIServer()
	s.valid("good", broker, audience)
	s.gate = make(chan struct{})
	defer close(s.gate)
	v, err := auth.New(s.client(), auth.Options{Audience: audience})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := v.Verify(ctx, header("Bearer good")); done <- err }()
	require.Eventually(t, func() bool { return s.reviews.Load() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	got, _ := status(t, <-done)
	assert.Equal(t, 503, got)
}

func TestNewNeedsAClientAndAnAudience(t *testing.T) {
	_, err := auth.New(nil, auth.Options{Audience: audience})
	assert.ErrorContains(t, err, "API server")
	_, err = auth.New(fake.NewClientset(), auth.Options{Audience: " "})
	assert.ErrorContains(t, err, "audience")
}
