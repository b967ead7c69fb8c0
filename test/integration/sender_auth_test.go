//go:build integration

package integration

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	fhttp "knative.dev/func-go/http"

	"function"
	"function/config"
	"function/names"
	"function/test/cluster"
)

// Sender authentication on a real API server with real ServiceAccount tokens (TokenRequest,
// as Knative Eventing's OIDC token provider mints them): the function runs with its own
// ServiceAccount's token (so config/rbac.yaml's sender-auth ClusterRole is all it has for its
// TokenReviews) and serves real CloudEvents over HTTP through func-go's runtime. Only the
// allowed sender's token for the configured audience gets an event handled; anything else is
// refused before the event is read, and the pod is untouched.
func TestIntegrationSenderAuthentication(t *testing.T) {
	f := newFixture(t, testConfig())
	ctx := f.ctx
	const audience, otherAudience = "serving.knative.dev/service/vpa-graceful-drain/vpa-graceful-drain", "eventing.knative.dev/broker/vpa-graceful-drain/other"
	for _, sa := range []string{"broker-sender", "stranger"} {
		_, err := cp.Client.CoreV1().ServiceAccounts(f.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: f.ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	mint := func(sa, aud string) string {
		t.Helper()
		tr, err := cp.Client.CoreV1().ServiceAccounts(f.ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: ptr.To[int64](3600)},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return tr.Status.Token
	}

	kubeconfig, err := cp.FunctionKubeconfig() // applies config/rbac.yaml, waits until its rules are granted
	require.NoError(t, err)
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	client, reqs, err := cluster.CountingClient(restCfg)
	require.NoError(t, err)
	fn := function.New(function.WithClient(client), function.WithLogger(slog.New(slog.DiscardHandler)), function.WithoutSweeps())
	require.NoError(t, fn.Start(context.Background(), map[string]string{
		config.KeyConfigDir: t.TempDir(), config.KeyWorkloadDefaults: `{"Pod":{"manage":true}}`, config.KeyHoldOn: "all",
		config.KeySenderAudience:   audience,
		config.KeySenderIdentities: cluster.ServiceAccountUser(f.ns, "broker-sender"),
	}))
	t.Cleanup(func() { _ = fn.Stop(context.Background()) })
	ready, err := fn.Ready(ctx)
	require.True(t, ready, "%v", err)
	srv := httptest.NewServer(fhttp.New(fn).Handler)
	t.Cleanup(srv.Close)

	pod := f.create("guarded", true)
	tests := []struct {
		name          string
		authorization string
		want          int
		challenge     string
		reviews       int // TokenReviews made (a refusal before one is made costs no API call)
	}{
		{"no token", "", http.StatusUnauthorized, "Bearer", 0},
		{"a garbage bearer", "Bearer not-a-token", http.StatusUnauthorized, `Bearer error="invalid_token"`, 1},
		{"a token for another audience", "Bearer " + mint("broker-sender", otherAudience), http.StatusUnauthorized, `Bearer error="invalid_token"`, 1},
		{"the function's own token (the API server's audience)", "Bearer " + restCfg.BearerToken, http.StatusUnauthorized, `Bearer error="invalid_token"`, 1},
		{"a valid token of a sender not allowed", "Bearer " + mint("stranger", audience), http.StatusForbidden, `Bearer error="insufficient_scope"`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs.List()
			status, header, body := postPodEventWith(t, srv.URL, pod, tt.authorization)
			assert.Equal(t, tt.want, status, body)
			assert.Equal(t, tt.challenge, header.Get("WWW-Authenticate"))
			calls := reqs.List()
			assert.Len(t, calls, tt.reviews, "%v", calls)
			for _, c := range calls {
				assert.Equal(t, tokenReviewCall, c, "no pod read")
			}
			live := f.get(pod.Name)
			assert.Empty(t, live.Finalizers, "the pod is untouched")
			assert.Equal(t, pod.ResourceVersion, live.ResourceVersion)
		})
	}

	t.Run("the allowed sender's token for the audience", func(t *testing.T) {
		token := mint("broker-sender", audience)
		reqs.List()
		status, header, body := postPodEventWith(t, srv.URL, pod, "Bearer "+token)
		require.Equal(t, http.StatusOK, status, body)
		assert.Equal(t, "dev.vpagracefuldrain.finalizer.added", header.Get("Ce-Type"))
		assert.Equal(t, []string{names.Finalizer}, f.get(pod.Name).Finalizers, "handled as without authentication")
		calls := reqs.List()
		require.NotEmpty(t, calls)
		assert.Equal(t, tokenReviewCall, calls[0], "the sender first: %v", calls)

		// The same token again: answered from the cache, no second TokenReview.
		status, _, body = postPodEventWith(t, srv.URL, f.get(pod.Name), "Bearer "+token)
		require.Less(t, status, 300, body)
		for _, c := range reqs.List() {
			assert.NotEqual(t, tokenReviewCall, c)
		}
	})
}

// tokenReviewCall is a TokenReview as cluster.Requests lists it (a cluster-scoped path).
const tokenReviewCall = "POST /apis/authentication.k8s.io/v1/tokenreviews"

// postPodEventWith posts pod as the ApiServerSource adapter sends an update (binary mode), with
// authorization as the Authorization header ("" for none).
func postPodEventWith(t *testing.T, url string, pod *corev1.Pod, authorization string) (int, http.Header, string) {
	t.Helper()
	req := podEventRequest(t, url, pod)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b.String()
}
