package function_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	function "function"
	"function/config"
	"function/internal/testutil"
	"function/names"
)

const (
	senderAudience = "vpa-graceful-drain"
	brokerIdentity = "system:serviceaccount:vpa-graceful-drain:vpa-graceful-drain-oidc-eventing.knative.dev-trigger"
)

// reviewing makes c answer TokenReviews: "broker-token" is the Broker's for senderAudience,
// "stranger-token" another ServiceAccount's for it, "other-audience" the Broker's for another
// audience; failing, when it returns an error, fails the review.
func reviewing(c *fake.Clientset, failing func() error) {
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if err := failing(); err != nil {
			return true, nil, err
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		users := map[string]string{"broker-token": brokerIdentity, "stranger-token": "system:serviceaccount:default:stranger"}
		if user, ok := users[tr.Spec.Token]; ok && len(tr.Spec.Audiences) == 1 && tr.Spec.Audiences[0] == senderAudience {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: user}, Audiences: tr.Spec.Audiences}
		} else {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
}

// With SENDER_AUDIENCE and SENDER_IDENTITIES set, served as kn func serves it: a request is
// authenticated from its headers before anything else, and only an allowed sender's event is
// read and handled.
func TestHTTPSenderAuthentication(t *testing.T) {
	tests := []struct {
		name          string
		authorization string
		reviewFails   bool
		want          int
		challenge     string
		wantVerbs     []string
	}{
		{name: "no token", want: 401, challenge: "Bearer", wantVerbs: []string{}},
		{name: "not a bearer token", authorization: "Basic YnJva2VyOnNlY3JldA==", want: 401, challenge: `Bearer error="invalid_request"`, wantVerbs: []string{}},
		{name: "a garbage token", authorization: "Bearer garbage", want: 401, challenge: `Bearer error="invalid_token"`, wantVerbs: []string{"create tokenreviews"}},
		{name: "the Broker's token for another audience", authorization: "Bearer other-audience", want: 401, challenge: `Bearer error="invalid_token"`, wantVerbs: []string{"create tokenreviews"}},
		{name: "a valid token of a sender not allowed", authorization: "Bearer stranger-token", want: 403, challenge: `Bearer error="insufficient_scope"`, wantVerbs: []string{"create tokenreviews"}},
		{name: "the API server cannot review", authorization: "Bearer broker-token", reviewFails: true, want: 503, wantVerbs: []string{"create tokenreviews"}},
		{name: "the Broker's token", authorization: "Bearer broker-token", want: 200,
			wantVerbs: []string{"create tokenreviews", "get pods", "patch pods", "get deployments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
			reviewing(c, func() error {
				if tt.reviewFails {
					return errors.New("connection refused")
				}
				return nil
			})
			f := started(t, c, map[string]string{config.KeySenderAudience: senderAudience, config.KeySenderIdentities: brokerIdentity})
			url := served(t, f)
			header, body := readSample(t, "managed-pod-added.http")
			if tt.authorization != "" {
				header.Set("Authorization", tt.authorization)
			}
			resp, got := post(t, url+"/", header, body)
			assert.Equal(t, tt.want, resp.StatusCode, got)
			assert.Equal(t, tt.challenge, resp.Header.Get("WWW-Authenticate"))
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(c), "no API call but the review before the sender is known")
			if tt.authorization != "" {
				assert.NotContains(t, got, strings.Fields(tt.authorization)[1], "the answer never echoes the token")
			}
			pod, err := c.Tracker().Get(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "default", "web-7d9f8-abcde")
			require.NoError(t, err)
			if tt.want == 200 {
				assert.Equal(t, []string{names.Finalizer}, pod.(*corev1.Pod).Finalizers)
				assert.NotEmpty(t, resp.Header.Get("Ce-Type"), "the reply event")
			} else {
				assert.Empty(t, pod.(*corev1.Pod).Finalizers, "the pod is untouched")
			}
			if tt.want == 503 {
				assert.Equal(t, "1", resp.Header.Get("Retry-After"))
			}
		})
	}
}

// The health probes (func-go serves them, they never reach Handle), Alive's in-process probe
// event and the metrics need no token, and cost no TokenReview.
func TestSenderAuthenticationLeavesProbesAndMetricsOpen(t *testing.T) {
	c := fake.NewClientset()
	reviewing(c, func() error { return nil })
	f := started(t, c, map[string]string{config.KeySenderAudience: senderAudience})
	url := served(t, f)
	for _, path := range []string{"/health/readiness", "/health/liveness", function.MetricsPath} {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	alive, err := f.Alive(context.Background())
	assert.True(t, alive)
	assert.NoError(t, err)
	assert.Equal(t, []string{}, testutil.Verbs(c), "no TokenReview")
	resp, got := post(t, url+"/", http.Header{}, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an event still needs one: %s", got)
}

// Sender authentication cannot be had without an API server: without a cluster, SENDER_AUDIENCE
// keeps the function from becoming Ready, and no request's body is read.
func TestSenderAuthenticationNeedsACluster(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", filepath.Join(home, "none"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	var logs testutil.SyncBuffer
	f := function.New(function.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir(), config.KeySenderAudience: senderAudience}))
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	ready, err := f.Ready(context.Background())
	assert.False(t, ready)
	var keyErr *config.KeyError
	require.ErrorAs(t, err, &keyErr)
	assert.Equal(t, config.KeySenderAudience, keyErr.Key)
	assert.Contains(t, keyErr.Reason, "no cluster")
	assert.Contains(t, logs.String(), `"key":"SENDER_AUDIENCE"`)

	header, body := readSample(t, "managed-pod-added.http")
	header.Set("Authorization", "Bearer broker-token")
	resp, got := post(t, served(t, f)+"/", header, body)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, got, "not ready")
}

// Invalid sender settings keep the function from becoming Ready, and every event is answered
// 503, unread: never served without the authentication asked for.
func TestSenderAuthenticationInvalidSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		key  string
	}{
		{"identities without an audience", map[string]string{config.KeySenderIdentities: brokerIdentity}, config.KeySenderIdentities},
		{"an audience with a space", map[string]string{config.KeySenderAudience: "my audience"}, config.KeySenderAudience},
		{"an empty identity", map[string]string{config.KeySenderAudience: senderAudience, config.KeySenderIdentities: brokerIdentity + ",,"}, config.KeySenderIdentities},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
			f := started(t, c, tt.env)
			_, err := f.Ready(context.Background())
			var keyErr *config.KeyError
			require.ErrorAs(t, err, &keyErr)
			assert.Equal(t, tt.key, keyErr.Key)
			header, body := readSample(t, "malformed.http")
			resp, got := post(t, served(t, f)+"/", header, body)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "503 before the (malformed) body is read: %s", got)
			assert.Equal(t, []string{}, testutil.Verbs(c))
		})
	}
}
