// Package auth authenticates the senders of events: where Knative Eventing's OIDC
// authentication (feature flag authentication-oidc) is on, a sender (the Broker's filter for a
// Trigger, a Source) presents a ServiceAccount token issued for its target's audience in an
// `Authorization: Bearer …` header. Verifier checks it with a TokenReview against the API
// server, from the header alone: the body of a request it refuses is never read. It caches
// the verdicts (bounded), renews an accepted token in use before its verdict expires, and caps
// the reviews with two budgets, one for unknown tokens and one for tokens it has accepted, so
// that a flood of unknown tokens cannot starve the tokens it has accepted.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
)

// The bounds of a Verifier.
const (
	// AcceptedTTL is how long an accepted token is trusted without another TokenReview (never
	// past the expiry its own claims state): a revoked token (its ServiceAccount or pod deleted)
	// is refused at most this long after.
	AcceptedTTL = time.Minute
	// RenewBefore is the last part of AcceptedTTL in which a request with an accepted token is
	// answered from the cache and starts one TokenReview in the background (at most one at a
	// time per token, within ReviewTimeout, on the known tokens' budget) that renews the
	// verdict: a token in use is re-reviewed before its verdict expires, and its requests never
	// wait for a review. A verdict that ends at the token's own exp claim is not renewed.
	RenewBefore = 20 * time.Second
	// KnownTTL is how long after its last accepting review a token stays known (never past its
	// exp claim): once its verdict has expired (no request came in time to renew it) it is no
	// longer trusted, but its re-review is made on the known tokens' budget, which unknown
	// tokens never spend.
	KnownTTL = time.Hour
	// RefusedTTL is how long a refused token (401, 403) is refused without another TokenReview.
	RefusedTTL = 10 * time.Second
	// MaxCached is how many verdicts each of the two caches (accepted, refused) holds. A full
	// accepted cache first drops the tokens no longer known, then those known but no longer
	// trusted, then the live verdict that expires first; a full refused cache drops its expired
	// verdicts and, if none is, is emptied: neither grows past this. A verdict is a few hundred
	// bytes at most, the user name its longest part (its key is the token's SHA-256, never the
	// token): under 1 MiB for both. Refused tokens never push accepted ones out.
	MaxCached = 1024
	// ReviewsPerSecond and ReviewBurst cap the TokenReviews a replica makes for unknown tokens
	// (those it holds no verdict for and has never accepted, or no longer knows): a request
	// beyond the cap is answered 503 with Retry-After: 1 (the sender retries), so a flood of
	// distinct tokens costs the API server at most this rate. Concurrent requests with the same
	// token share one review.
	ReviewsPerSecond = 10
	ReviewBurst      = 20
	// KnownReviewsPerSecond and KnownReviewBurst cap, apart, the re-reviews of known tokens
	// (the renewals and the re-reviews after a verdict expired): only a token the API server
	// has accepted spends this budget, so a flood of unknown tokens never gets a known one
	// answered 503.
	KnownReviewsPerSecond = 10
	KnownReviewBurst      = 20
	// MaxTokenBytes bounds a token: a longer one is refused (401) without a TokenReview. A
	// ServiceAccount token is 1 to 2 KiB.
	MaxTokenBytes = 8 << 10
	// ReviewTimeout bounds one TokenReview (shared by the requests waiting for it; each
	// request also gives up when its own context ends; a renewal has no request to wait for it).
	ReviewTimeout = 10 * time.Second
)

// Error is a refused request: its HTTP status (401, 403 or 503), a one-line message for the
// sender (never the token), and the headers to answer with.
type Error struct {
	Status  int
	Message string
	// Challenge is the WWW-Authenticate header's value ("" for none).
	Challenge string
	// RetryAfter is the Retry-After header's value in seconds (0: none).
	RetryAfter int
}

// Error returns the status and the message.
func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Write answers the refusal, with its headers, through write (which sets the body and status).
func (e *Error) Write(w http.ResponseWriter, write func(w http.ResponseWriter, status int, message string)) {
	if e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	write(w, e.Status, e.Message)
}

// Options configure a Verifier.
type Options struct {
	// Audience is the audience the tokens must be issued for (required).
	Audience string
	// Identities, when not empty, are the only user names accepted (a ServiceAccount's is
	// system:serviceaccount:<namespace>:<name>); a valid token of another is answered 403.
	Identities []string
	// Clock times the caches and the review caps (default: the real clock).
	Clock clock.PassiveClock
}

// Verifier authenticates senders. Create it with New; it is safe for concurrent use.
type Verifier struct {
	client     kubernetes.Interface
	audience   string
	identities []string
	clock      clock.PassiveClock
	// unknown caps the reviews of tokens never accepted (or no longer known), known the
	// re-reviews of accepted ones: two budgets, so that the first cannot starve the second.
	unknownBudget, knownBudget flowcontrol.PassiveRateLimiter
	group                      singleflight.Group
	// renewals counts the background renewals running (tests wait for them).
	renewals sync.WaitGroup

	mu       sync.Mutex
	accepted map[[sha256.Size]byte]verdict
	refused  map[[sha256.Size]byte]verdict
}

// verdict is a cached answer: err nil for an accepted token (of user), else its refusal.
type verdict struct {
	user    string
	err     *Error
	expires time.Time
	// knownUntil (accepted verdicts) is until when the token is known: re-reviewed on the known
	// tokens' budget, and renewed before expires, when after it (zero: not past expires).
	knownUntil time.Time
	// renewing is set while a background renewal of the verdict runs.
	renewing bool
}

// state is what the cache knows of a token.
type state int

const (
	// stateUnknown: no verdict, or one no longer known; a review spends the unknown tokens'
	// budget.
	stateUnknown state = iota
	// stateLive: a verdict still trusted (accepted or refused), answered as is.
	stateLive
	// stateRenew: an accepted verdict in its last RenewBefore, renewable: answered as is, and
	// renewed in the background.
	stateRenew
	// stateKnown: an accepted verdict expired, its token still known: re-reviewed on the known
	// tokens' budget.
	stateKnown
)

// New returns a Verifier that reviews tokens through client (it needs create on
// tokenreviews.authentication.k8s.io).
func New(client kubernetes.Interface, opts Options) (*Verifier, error) {
	if client == nil {
		return nil, errors.New("sender authentication needs an API server to review tokens")
	}
	if strings.TrimSpace(opts.Audience) == "" {
		return nil, errors.New("sender authentication needs an audience")
	}
	c := opts.Clock
	if c == nil {
		c = clock.RealClock{}
	}
	return &Verifier{client: client, audience: opts.Audience, identities: slices.Clone(opts.Identities), clock: c,
		unknownBudget: flowcontrol.NewTokenBucketPassiveRateLimiterWithClock(ReviewsPerSecond, ReviewBurst, c),
		knownBudget:   flowcontrol.NewTokenBucketPassiveRateLimiterWithClock(KnownReviewsPerSecond, KnownReviewBurst, c),
		accepted:      map[[sha256.Size]byte]verdict{}, refused: map[[sha256.Size]byte]verdict{}}, nil
}

// Audience is the audience tokens must be issued for.
func (v *Verifier) Audience() string { return v.audience }

// Verify authenticates a request from its headers alone. It returns the sender's user name, or
// an *Error:
//   - 401 (WWW-Authenticate: Bearer) without an `Authorization: Bearer` header, with a
//     malformed or over-long one, or with a token the API server does not accept for the
//     audience; the first three cost no API call;
//   - 403 for a valid token of a user not in Identities;
//   - 503 (Retry-After: 1) when the TokenReview fails or does not answer in time, or when the
//     replica's cap on TokenReviews (the unknown tokens' or, apart, the known tokens') is
//     reached: the sender retries; a token is never accepted without a review that accepted it.
//
// A token accepted within AcceptedTTL is answered from the cache; in the last RenewBefore of
// that, the request also starts one renewal in the background. A token accepted before whose
// verdict has expired (within KnownTTL) is re-reviewed on the known tokens' budget.
func (v *Verifier) Verify(ctx context.Context, h http.Header) (string, error) {
	token, err := bearer(h)
	if err != nil {
		return "", err
	}
	key := sha256.Sum256([]byte(token))
	d, st := v.lookup(key)
	switch st {
	case stateLive:
		return d.user, asError(d.err)
	case stateRenew:
		v.renew(ctx, key, token)
		return d.user, nil
	}
	limiter, busy := v.unknownBudget, "too many unknown tokens to review: try again"
	if st == stateKnown {
		limiter, busy = v.knownBudget, "too many known tokens to review again: try again"
	}
	ch := v.group.DoChan(string(key[:]), func() (any, error) {
		if d, st := v.lookup(key); st == stateLive || st == stateRenew { // reviewed while this call was being set up
			return d, nil
		}
		if !limiter.TryAccept() {
			return verdict{err: unavailable(busy)}, nil
		}
		// One review for every request waiting on this token: none of them ends it early.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReviewTimeout)
		defer cancel()
		d := v.review(rctx, token)
		v.store(key, d)
		return d, nil
	})
	select {
	case res := <-ch:
		d := res.Val.(verdict)
		return d.user, asError(d.err)
	case <-ctx.Done():
		return "", unavailable("the token review did not answer in time: try again")
	}
}

// renew starts the background renewal of key's accepted verdict, unless one runs or the known
// tokens' budget is spent (a later request in the window tries again; once the verdict has
// expired, the token is re-reviewed before it is accepted). The renewal keeps ctx's values but
// not its end, and is bounded by ReviewTimeout. Its verdict replaces the cached one: a refusal
// refuses the token at once; a failed review leaves the cached verdict to expire.
func (v *Verifier) renew(ctx context.Context, key [sha256.Size]byte, token string) {
	v.mu.Lock()
	d, ok := v.accepted[key]
	if !ok || d.renewing || !v.knownBudget.TryAccept() {
		v.mu.Unlock()
		return
	}
	d.renewing = true
	v.accepted[key] = d
	v.renewals.Add(1)
	v.mu.Unlock()
	go func() {
		defer v.renewals.Done()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReviewTimeout)
		defer cancel()
		if nd := v.review(rctx, token); nd.err == nil || nd.err.Status != http.StatusServiceUnavailable {
			v.store(key, nd)
			return
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if d, ok := v.accepted[key]; ok {
			d.renewing = false
			v.accepted[key] = d
		}
	}()
}

// asError returns e as an error (nil for nil).
func asError(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// bearer returns the token of the request's one `Authorization: Bearer <token>` header.
func bearer(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", &Error{Status: http.StatusUnauthorized, Challenge: "Bearer",
			Message: "authentication required: send a token for this function's audience in an Authorization: Bearer header"}
	case 1:
	default:
		return "", invalidRequest("more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", invalidRequest("the Authorization header is not Bearer <token>")
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return "", invalidRequest("the Authorization header has no token")
	case len(token) > MaxTokenBytes:
		return "", invalidToken(fmt.Sprintf("the token is over %d bytes", MaxTokenBytes))
	case !isB64Token(token):
		return "", invalidRequest("the token has characters a bearer token cannot have")
	}
	return token, nil
}

// isB64Token: RFC 6750's b64token, 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

func invalidRequest(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Message: msg, Challenge: `Bearer error="invalid_request"`}
}

func invalidToken(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Message: msg, Challenge: `Bearer error="invalid_token"`}
}

func unavailable(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Message: msg, RetryAfter: 1}
}

// review asks the API server about token; the verdict is cached (but a 503).
func (v *Verifier) review(ctx context.Context, token string) verdict {
	now := v.clock.Now()
	tr, err := v.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{v.audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		hint := ""
		if apierrors.IsForbidden(err) {
			hint = "; the function needs create on tokenreviews.authentication.k8s.io: ClusterRole vpa-graceful-drain-sender-auth in config/rbac.yaml"
		}
		return verdict{err: unavailable(fmt.Sprintf("cannot verify the token now (TokenReview: %v%s): try again", err, hint))}
	}
	refused := func(e *Error) verdict { return verdict{err: e, expires: now.Add(RefusedTTL)} }
	switch st := tr.Status; {
	case !st.Authenticated:
		return refused(invalidToken("the token is not valid for audience " + v.audience))
	case !slices.Contains(st.Audiences, v.audience):
		return refused(invalidToken("the token is not issued for audience " + v.audience))
	case len(v.identities) > 0 && !slices.Contains(v.identities, st.User.Username):
		return refused(&Error{Status: http.StatusForbidden, Challenge: `Bearer error="insufficient_scope"`,
			Message: fmt.Sprintf("sender %s is not allowed to send events here", st.User.Username)})
	default:
		expires, known := now.Add(AcceptedTTL), now.Add(KnownTTL)
		if exp, ok := expiry(token); ok {
			expires, known = minTime(expires, exp), minTime(known, exp)
		}
		return verdict{user: st.User.Username, expires: expires, knownUntil: known}
	}
}

// expiry is the exp claim of a JWT (the API server has just verified its signature, so its
// claims are the issuer's); false when token is no JWT or has none.
func expiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	secs, err := claims.Exp.Int64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// lookup returns key's verdict and what it is to the cache; it drops the verdicts it finds
// expired (an accepted one once its token is no longer known).
func (v *Verifier) lookup(key [sha256.Size]byte) (verdict, state) {
	now := v.clock.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if d, ok := v.refused[key]; ok {
		if now.Before(d.expires) {
			return d, stateLive
		}
		delete(v.refused, key)
	}
	d, ok := v.accepted[key]
	switch {
	case !ok:
		return verdict{}, stateUnknown
	case now.Before(d.expires) && d.knownUntil.After(d.expires) && !now.Before(d.expires.Add(-RenewBefore)):
		return d, stateRenew
	case now.Before(d.expires):
		return d, stateLive
	case now.Before(d.knownUntil):
		return d, stateKnown
	}
	delete(v.accepted, key)
	return verdict{}, stateUnknown
}

// cached returns the live verdict for key (tests).
func (v *Verifier) cached(key [sha256.Size]byte) (verdict, bool) {
	d, st := v.lookup(key)
	return d, st == stateLive || st == stateRenew
}

// store caches d (a 503 is not cached, nor a verdict already expired) in its bounded cache,
// in place of any verdict for key in the other.
func (v *Verifier) store(key [sha256.Size]byte, d verdict) {
	now := v.clock.Now()
	if (d.err != nil && d.err.Status == http.StatusServiceUnavailable) || !now.Before(d.expires) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	m, other := v.accepted, v.refused
	if d.err != nil {
		m, other = v.refused, v.accepted
	}
	delete(other, key)
	if _, ok := m[key]; !ok && len(m) >= MaxCached {
		makeRoom(m, d.err == nil, now)
	}
	m[key] = d
}

// makeRoom drops verdicts from the full cache m (accepted: the accepted cache): first those
// of tokens no longer known, then (accepted) those of tokens no longer trusted; should every
// one still be live, the refused cache is emptied, the accepted one loses the verdict that
// expires first.
func makeRoom(m map[[sha256.Size]byte]verdict, accepted bool, now time.Time) {
	for k, old := range m {
		if !now.Before(old.expires) && !now.Before(old.knownUntil) {
			delete(m, k)
		}
	}
	switch {
	case len(m) < MaxCached:
		return
	case !accepted:
		clear(m)
		return
	}
	for k, old := range m {
		if !now.Before(old.expires) {
			delete(m, k)
		}
	}
	if len(m) < MaxCached {
		return
	}
	var first [sha256.Size]byte
	var at time.Time
	for k, old := range m {
		if at.IsZero() || old.expires.Before(at) {
			first, at = k, old.expires
		}
	}
	delete(m, first)
}

// Cached returns how many verdicts the accepted and the refused cache hold (tests, metrics).
func (v *Verifier) Cached() (accepted, refused int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.accepted), len(v.refused)
}
