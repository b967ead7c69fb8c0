package function_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	fhttp "knative.dev/func-go/http"

	function "function"
	"function/config"
	"function/eventing"
	"function/internal/testutil"
	"function/names"
	"function/test/samples"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// ---- .http sample files -------------------------------------------------------------------

// readSample reads the test/events sample name (see package samples), its {{now±Ns}} tokens
// replaced, as test/events/invoke.sh posts it.
func readSample(t *testing.T, name string) (http.Header, []byte) {
	t.Helper()
	req, err := samples.Read(samples.Path(name))
	require.NoError(t, err)
	return req.Header, req.Body
}

// sampleEvent is the CloudEvent the SDK makes of a sample request.
func sampleEvent(t *testing.T, name string) event.Event {
	t.Helper()
	header, body := readSample(t, name)
	req, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = header
	e, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(req))
	require.NoError(t, err)
	return *e
}

// samplePod is the Pod in a Resource-mode sample's body.
func samplePod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	_, body := readSample(t, name)
	pod := &corev1.Pod{}
	require.NoError(t, json.Unmarshal(body, pod))
	return pod
}

// ---- helpers ------------------------------------------------------------------------------

// started returns a Function on client whose Start loaded env (with an empty CONFIG_DIR).
func started(t testing.TB, client *fake.Clientset, env map[string]string, opts ...function.Option) *function.Function {
	t.Helper()
	f := function.New(append([]function.Option{function.WithClient(client), function.WithDynamic(testutil.Dynamic(client, nil)), function.WithLogger(discard), function.WithoutSweeps()}, opts...)...)
	// WithoutSweeps: these tests count every API call an event makes (TestStartSweeps covers sweeps).
	all := map[string]string{config.KeyConfigDir: t.TempDir()}
	for k, v := range env {
		all[k] = v
	}
	require.NoError(t, f.Start(context.Background(), all))
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	return f
}

// result reads the HTTP status and message of an error returned by Handle.
func result(t *testing.T, err error) (int, string) {
	t.Helper()
	require.Error(t, err)
	var res *cehttp.Result
	require.True(t, protocol.ResultAs(err, &res), "not an HTTP result: %v", err)
	return res.StatusCode, fmt.Sprintf(res.Format, res.Args...)
}

func newEvent(typ, data string, ext ...string) event.Event {
	e := event.New()
	e.SetID("id-1")
	e.SetSource("https://127.0.0.1:26443")
	e.SetType(typ)
	if data != "" {
		_ = e.SetData(event.ApplicationJSON, []byte(data))
	}
	for i := 0; i+1 < len(ext); i += 2 {
		e.SetExtension(ext[i], ext[i+1])
	}
	return e
}

// ---- lifecycle ------------------------------------------------------------------------------

func TestNotReadyBeforeStart(t *testing.T) {
	c := fake.NewClientset()
	f := function.New(function.WithClient(c), function.WithDynamic(testutil.Dynamic(c, nil)), function.WithLogger(discard))

	ready, err := f.Ready(context.Background())
	assert.False(t, ready)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "configuration not loaded yet")

	alive, err := f.Alive(context.Background())
	assert.True(t, alive)
	assert.NoError(t, err)

	reply, err := f.HandleEvent(context.Background(), sampleEvent(t, "managed-pod-added.http"))
	assert.Nil(t, reply)
	status, msg := result(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, msg, "not ready")
	assert.Equal(t, []string{}, testutil.Verbs(c))
}

func TestStartWithInvalidConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		files   map[string]string
		wantKey string
	}{
		{"grace period not a number", map[string]string{"gracePeriodSeconds": "abc"}, nil, config.KeyGracePeriodSeconds},
		{"UPPER_SNAKE timeout negative", map[string]string{"DRAIN_TIMEOUT_SECONDS": "-1"}, nil, config.KeyDrainTimeoutSeconds},
		{"timeout below grace", map[string]string{"gracePeriodSeconds": "120", "drainTimeoutSeconds": "60"}, nil, config.KeyDrainTimeoutSeconds},
		{"bad selector", map[string]string{"namespaceSelector": `{"namespaces":["a"]}`}, nil, config.KeyNamespaceSelector},
		{"bad boolean in the mounted ConfigMap", nil, map[string]string{"detectVpaAnnotations": "sometimes"}, config.KeyDetectVpaAnnotations},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			c := fake.NewClientset()
			f := function.New(function.WithClient(c), function.WithDynamic(testutil.Dynamic(c, nil)), function.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			dir := t.TempDir()
			for name, content := range tt.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
			}
			env := map[string]string{config.KeyConfigDir: dir}
			for k, v := range tt.env {
				env[k] = v
			}
			require.NoError(t, f.Start(context.Background(), env), "Start stays up to say why it is not ready")
			t.Cleanup(func() { _ = f.Stop(context.Background()) })

			ready, err := f.Ready(context.Background())
			assert.False(t, ready)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "invalid configuration")
			assert.Contains(t, err.Error(), tt.wantKey)
			var keyErr *config.KeyError
			require.ErrorAs(t, err, &keyErr)
			assert.Equal(t, tt.wantKey, keyErr.Key)
			assert.Contains(t, logs.String(), `"key":"`+tt.wantKey+`"`, "the log names the key")

			reply, err := f.HandleEvent(context.Background(), sampleEvent(t, "managed-pod-added.http"))
			assert.Nil(t, reply)
			status, msg := result(t, err)
			assert.Equal(t, http.StatusServiceUnavailable, status)
			assert.Contains(t, msg, tt.wantKey)
			assert.Equal(t, []string{}, testutil.Verbs(c))
		})
	}
}

func TestStartAgainRecovers(t *testing.T) {
	c := fake.NewClientset()
	f := function.New(function.WithClient(c), function.WithDynamic(testutil.Dynamic(c, nil)), function.WithLogger(discard))
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	dir := t.TempDir()

	require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: dir, "gracePeriodSeconds": "abc"}))
	ready, _ := f.Ready(context.Background())
	require.False(t, ready)

	require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: dir, "gracePeriodSeconds": "10"}))
	ready, err := f.Ready(context.Background())
	assert.True(t, ready)
	assert.NoError(t, err)

	require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: dir, "gracePeriodSeconds": "-3"}))
	ready, err = f.Ready(context.Background())
	assert.False(t, ready, "a later invalid configuration is not ready either")
	assert.Error(t, err)
}

// ---- Handle ---------------------------------------------------------------------------------

func TestHandleRejectsBadEvents(t *testing.T) {
	big := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"0c7f6a52-3d0e-4f7a-9a35-1d1f8b6f2a10","annotations":{"pad":"` +
		strings.Repeat("x", eventing.MaxDataBytes) + `"}}}`
	tests := []struct {
		name    string
		event   event.Event
		status  int
		message string
	}{
		{"malformed sample", sampleEvent(t, "malformed.http"), 400, "event data is not valid JSON"},
		{"unknown type", newEvent("com.example.other", `{}`), 400, "unsupported event type"},
		{"no data", newEvent("dev.knative.apiserver.resource.add", ""), 400, "has no data"},
		{"not a Pod", newEvent("dev.knative.apiserver.resource.add", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","uid":"u"}}`), 400, "not a v1 Pod"},
		{"reference to a Secret", newEvent("dev.knative.apiserver.ref.add", `{"kind":"Secret","apiVersion":"v1","namespace":"default","name":"s"}`), 400, "not a v1 Pod"},
		{"extension mismatch", newEvent("dev.knative.apiserver.resource.add", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"0c7f6a52-3d0e-4f7a-9a35-1d1f8b6f2a10"}}`, "name", "other"), 400, "does not match"},
		{"uid not a UUID", newEvent("dev.knative.apiserver.resource.add", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"u"}}`), 400, `metadata.uid "u" is not a UUID`},
		{"created in 1970", newEvent("dev.knative.apiserver.resource.add", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"0c7f6a52-3d0e-4f7a-9a35-1d1f8b6f2a10","creationTimestamp":"1970-01-01T00:00:00Z"}}`), 400, "metadata.creationTimestamp 1970-01-01T00:00:00Z is out of range"},
		{"too large", newEvent("dev.knative.apiserver.resource.add", big), 413, "the limit is 3145728"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
			f := started(t, c, nil)
			reply, err := f.HandleEvent(context.Background(), tt.event)
			assert.Nil(t, reply)
			status, msg := result(t, err)
			assert.Equal(t, tt.status, status)
			assert.Contains(t, msg, tt.message)
			assert.Equal(t, []string{}, testutil.Verbs(c), "a rejected event makes no API call")
		})
	}
}

// The times an event's pod carries are checked against the function's clock (WithClock): a pod
// created in 2036 is refused by a function whose clock says 2026, and not by one at 2030.
func TestHandleChecksTimesAgainstItsClock(t *testing.T) {
	e := newEvent("dev.knative.apiserver.resource.update", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"0c7f6a52-3d0e-4f7a-9a35-1d1f8b6f2a10","creationTimestamp":"2036-06-01T00:00:00Z"}}`)
	tests := []struct {
		now     time.Time
		status  int
		message string
	}{
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 400, "pod default/web-1 metadata.creationTimestamp 2036-06-01T00:00:00Z is out of range"},
		{time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.now.Format(time.DateOnly), func(t *testing.T) {
			c := fake.NewClientset()
			f := started(t, c, nil, function.WithClock(clocktesting.NewFakePassiveClock(tt.now)))
			reply, err := f.HandleEvent(context.Background(), e)
			assert.Nil(t, reply)
			if tt.status == 200 {
				assert.NoError(t, err)
				return
			}
			status, msg := result(t, err)
			assert.Equal(t, tt.status, status)
			assert.Contains(t, msg, tt.message)
			assert.Equal(t, []string{}, testutil.Verbs(c), "a rejected event makes no API call")
		})
	}
}

func TestHandleSamples(t *testing.T) {
	tests := []struct {
		name      string
		sample    string
		stored    func(t *testing.T) *corev1.Pod // the pod in the cluster; nil: the sample's own pod
		dryRun    bool
		wantType  string // "" for no reply
		wantVerbs []string
		check     func(t *testing.T, c *fake.Clientset)
	}{
		{
			// After the finalizer, advice reads the pod's owner (absent here: no advice).
			name: "managed pod added", sample: "managed-pod-added.http",
			wantType: names.ReplyFinalizerAdded, wantVerbs: []string{"get pods", "patch pods", "get deployments"},
			check: func(t *testing.T, c *fake.Clientset) {
				patch, ok := c.Actions()[1].(k8stesting.PatchAction) // after the read of the live pod
				require.True(t, ok)
				assert.Equal(t, types.JSONPatchType, patch.GetPatchType())
				pod, err := c.Tracker().Get(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "default", "web-7d9f8-abcde")
				require.NoError(t, err)
				assert.Equal(t, []string{names.Finalizer}, pod.(*corev1.Pod).Finalizers)
			},
		},
		{
			name: "managed pod added, dry-run", sample: "managed-pod-added.http", dryRun: true,
			wantType: names.ReplyFinalizerAdded, wantVerbs: []string{"get deployments"}, // advice reads, in dry-run too
		},
		{
			name: "evicted pod", sample: "evicted-pod.http",
			wantType: names.ReplyDrainStarted, wantVerbs: []string{"get pods", "patch pods", "create events"},
		},
		{
			name: "drained pod", sample: "drained-pod.http",
			wantType: names.ReplyFinalizerRemoved, wantVerbs: []string{"get pods", "patch pods", "create events"},
		},
		{
			name: "unmanaged pod", sample: "unmanaged-pod.http",
			wantVerbs: []string{},
		},
		{
			name: "reference mode: read, then patch", sample: "reference-mode-added.http",
			stored: func(t *testing.T) *corev1.Pod { // demo-pod2 of the reference sample, managed
				p := samplePod(t, "managed-pod-added.http")
				p.Name, p.UID = "demo-pod2", "uid-demo-pod2"
				return p
			},
			wantType: names.ReplyFinalizerAdded, wantVerbs: []string{"get pods", "patch pods", "get deployments"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stored *corev1.Pod
			if tt.stored != nil {
				stored = tt.stored(t)
			} else {
				stored = samplePod(t, tt.sample)
			}
			c := fake.NewClientset(stored)
			var opts []function.Option
			if tt.dryRun {
				opts = append(opts, function.WithDryRun())
			}
			f := started(t, c, nil, opts...)
			in := sampleEvent(t, tt.sample)

			reply, err := f.HandleEvent(context.Background(), in)
			require.NoError(t, err)
			// Kubernetes Events are written just after the decision, in the background.
			assert.Eventually(t, func() bool { return slices.Equal(tt.wantVerbs, testutil.Verbs(c)) }, 5*time.Second, 5*time.Millisecond)
			require.NoError(t, f.Stop(context.Background())) // every queued Event written
			assert.Equal(t, tt.wantVerbs, testutil.Verbs(c), "nothing else, Events flushed at Stop included")
			if tt.wantType == "" {
				assert.Nil(t, reply)
				return
			}
			require.NotNil(t, reply)
			assert.Equal(t, tt.wantType, reply.Type())
			assert.Equal(t, in.Subject(), reply.Subject(), "the reply is about the event's pod")
			if tt.dryRun {
				assert.Equal(t, "true", reply.Extensions()[names.ExtensionDryRun])
			} else {
				assert.NotContains(t, reply.Extensions(), names.ExtensionDryRun)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestHandleDeleteEvents(t *testing.T) {
	tests := []struct {
		name  string
		event event.Event
	}{
		{"resource delete", newEvent("dev.knative.apiserver.resource.delete", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"0c7f6a52-3d0e-4f7a-9a35-1d1f8b6f2a10","finalizers":["vpagracefuldrain.dev/drain"]}}`)},
		{"reference delete", newEvent("dev.knative.apiserver.ref.delete", `{"kind":"Pod","apiVersion":"v1","namespace":"default","name":"web-1"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			f := started(t, c, nil)
			reply, err := f.HandleEvent(context.Background(), tt.event)
			require.NoError(t, err)
			assert.Nil(t, reply)
			assert.Equal(t, []string{}, testutil.Verbs(c), "a deleted pod is not read nor written")
		})
	}
}

func TestHandleReferenceToAPodThatIsGone(t *testing.T) {
	c := fake.NewClientset()
	f := started(t, c, nil)
	reply, err := f.HandleEvent(context.Background(), sampleEvent(t, "reference-mode-added.http"))
	require.NoError(t, err)
	assert.Nil(t, reply)
	assert.Equal(t, []string{"get pods"}, testutil.Verbs(c))
}

func TestHandleClusterFailureIs500(t *testing.T) {
	c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
	c.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd down"))
	})
	f := started(t, c, nil)
	reply, err := f.HandleEvent(context.Background(), sampleEvent(t, "managed-pod-added.http"))
	assert.Nil(t, reply)
	status, msg := result(t, err)
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, msg, "etcd down")
	assert.Equal(t, []string{"get pods", "patch pods"}, testutil.Verbs(c))
}

func TestHandleUsesTheLoadedConfiguration(t *testing.T) {
	c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
	f := started(t, c, map[string]string{"namespaceSelector": `{"exclude":["default"]}`})
	reply, err := f.HandleEvent(context.Background(), sampleEvent(t, "managed-pod-added.http"))
	require.NoError(t, err)
	assert.Nil(t, reply, "the namespace is excluded")
	assert.Equal(t, []string{}, testutil.Verbs(c))
}

// ---- the served binary ----------------------------------------------------------------------

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// childEnv is the test's environment without anything that would find a cluster or set the
// configuration, plus extra.
func childEnv(extra ...string) []string {
	drop := map[string]bool{
		"KUBECONFIG": true, "KUBERNETES_SERVICE_HOST": true, "KUBERNETES_SERVICE_PORT": true, "HOME": true,
		"LISTEN_ADDRESS": true, "ADDRESS": true, "PORT": true,
	}
	for _, k := range config.EnvNames() {
		drop[k] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func postSample(t *testing.T, url, name string) (*http.Response, []byte) {
	t.Helper()
	header, body := readSample(t, name)
	resp, got := post(t, url, header, body)
	return resp, []byte(got)
}

// The function as kn func serves it (func-go's http runtime around New), without a cluster.
func TestServedBinaryDryRun(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fn")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vpa-graceful-drain")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	stderrPath := filepath.Join(t.TempDir(), "stderr")
	stderr, err := os.Create(stderrPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = stderr.Close() })

	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir() // no ./cfg file
	cmd.Env = childEnv("LISTEN_ADDRESS="+addr, "HOME="+t.TempDir(), "KUBECONFIG=", "CONFIG_DIR="+t.TempDir())
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{}) // closed once the process has exited; then waitErr is set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health/readiness")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "the function never became ready")

	resp, body := postSample(t, base+"/", "managed-pod-added.http")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	assert.Equal(t, names.ReplyFinalizerAdded, resp.Header.Get("Ce-Type"))
	assert.Equal(t, "true", resp.Header.Get("Ce-Dryrun"))
	assert.Equal(t, "/apis/v1/namespaces/default/pods/web-7d9f8-abcde", resp.Header.Get("Ce-Subject"))
	var data eventing.ReplyData
	require.NoError(t, json.Unmarshal(body, &data))
	assert.Equal(t, "web-7d9f8-abcde", data.Name)

	resp, body = postSample(t, base+"/", "malformed.http")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "JSON", "a readable reason")

	logged, err := os.ReadFile(stderrPath)
	require.NoError(t, err)
	// One log format (the runtime's) and the default level (info) for every line.
	var starting string
	for _, line := range strings.Split(strings.TrimSpace(string(logged)), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "a JSON line: %s", line)
		assert.NotEqual(t, "debug", m["level"], "no debug line at the default level: %s", line)
		assert.Contains(t, m, "message", line)
		if msg, _ := m["message"].(string); starting == "" && strings.HasPrefix(msg, "vpa-graceful-drain starting") {
			starting = msg
		}
	}
	assert.Contains(t, starting, "dry-run", "the starting line says dry-run")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
		assert.NoError(t, waitErr, "clean exit on SIGTERM")
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the function did not stop on SIGTERM")
	}
}

// Start sweeps at once when a cluster is configured: a managed pod that was never announced
// (it existed before the event source started) gets the finalizer without any event.
func TestStartSweeps(t *testing.T) {
	c := fake.NewClientset(samplePod(t, "managed-pod-added.http"), samplePod(t, "unmanaged-pod.http"))
	f := function.New(function.WithClient(c), function.WithDynamic(testutil.Dynamic(c, nil)), function.WithLogger(discard))
	require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir(), config.KeySweepIntervalSeconds: "900"}))
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	require.Eventually(t, func() bool {
		pod, err := c.CoreV1().Pods("default").Get(context.Background(), "web-7d9f8-abcde", metav1.GetOptions{})
		return err == nil && len(pod.Finalizers) == 1 && pod.Finalizers[0] == names.Finalizer
	}, 5*time.Second, 10*time.Millisecond)
	var listed, patched int
	for _, a := range c.Actions() {
		switch a.GetVerb() + " " + a.GetResource().Resource {
		case "list pods":
			listed++
		case "patch pods":
			patched++
		}
	}
	assert.Equal(t, 1, listed, "one sweep at start, the next only after 15 minutes")
	assert.Equal(t, 1, patched, "only the managed pod is written")
	require.NoError(t, f.Stop(context.Background()))
}

// ---- the HTTP path (func-go's http runtime around Handle) ----------------------------------

// served runs f behind func-go's http runtime, as kn func's http scaffolding does, and returns
// its base URL.
func served(t *testing.T, f *function.Function) string {
	t.Helper()
	srv := httptest.NewServer(fhttp.New(f).Handler)
	t.Cleanup(srv.Close)
	return srv.URL
}

func post(t *testing.T, url string, header http.Header, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		if k != "Accept-Encoding" && k != "User-Agent" {
			req.Header[k] = v
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(got)
}

// structured turns a binary-mode sample into the same event in structured mode.
func structured(t *testing.T, name string) []byte {
	t.Helper()
	e := sampleEvent(t, name)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	return b
}

func TestHTTPAnswers(t *testing.T) {
	managedHeader, managedBody := readSample(t, "managed-pod-added.http")
	unmanagedHeader, unmanagedBody := readSample(t, "unmanaged-pod.http")
	structuredType := http.Header{"Content-Type": {"application/cloudevents+json"}}
	withHeader := func(k, v string) http.Header {
		h := managedHeader.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	tests := []struct {
		name      string
		method    string
		header    http.Header
		body      []byte
		status    int
		replyType string // Ce-Type of the reply, "" for none
		message   string // in the body of an error answer
	}{
		{"binary mode", "", managedHeader, managedBody, http.StatusOK, names.ReplyFinalizerAdded, ""},
		{"structured mode", "", structuredType, structured(t, "managed-pod-added.http"), http.StatusOK, names.ReplyFinalizerAdded, ""},
		{"structured mode with charset", "", http.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}},
			structured(t, "managed-pod-added.http"), http.StatusOK, names.ReplyFinalizerAdded, ""},
		{"nothing to do", "", unmanagedHeader, unmanagedBody, http.StatusOK, "", ""},
		{"batch mode", "", http.Header{"Content-Type": {"application/cloudevents-batch+json"}},
			[]byte("[" + string(structured(t, "managed-pod-added.http")) + "]"), http.StatusUnsupportedMediaType, "", "batched CloudEvents"},
		{"not a CloudEvent", "", http.Header{"Content-Type": {"application/json"}}, managedBody, http.StatusUnsupportedMediaType, "", "not a CloudEvent"},
		{"GET", http.MethodGet, managedHeader, nil, http.StatusMethodNotAllowed, "", "POST"},
		{"PUT", http.MethodPut, managedHeader, managedBody, http.StatusMethodNotAllowed, "", "POST"},
		{"binary mode without an id", "", withHeader("Ce-Id", ""), managedBody, http.StatusBadRequest, "", "id"},
		{"binary mode with an unknown specversion", "", withHeader("Ce-Specversion", "9.9"), managedBody, http.StatusUnsupportedMediaType, "", "not a CloudEvent"},
		{"structured mode, broken JSON", "", structuredType, []byte(`{"specversion":"1.0",`), http.StatusBadRequest, "", "malformed CloudEvent"},
		{"structured mode without a type", "", structuredType, []byte(`{"specversion":"1.0","id":"1","source":"s"}`), http.StatusBadRequest, "", "type"},
		{"body over the limit", "", managedHeader, bytes.Repeat([]byte("x"), eventing.MaxBodyBytes+1), http.StatusRequestEntityTooLarge, "", "limit"},
		{"data over the limit in a body under it", "", managedHeader, append(managedBody[:len(managedBody)-1:len(managedBody)-1],
			[]byte(`,"pad":"`+strings.Repeat("x", eventing.MaxDataBytes)+`"}`)...), http.StatusRequestEntityTooLarge, "", "limit"},
		{"wrong event type", "", withHeader("Ce-Type", "com.example.other"), managedBody, http.StatusBadRequest, "", "unsupported event type"},
	}
	c := fake.NewClientset()
	url := served(t, started(t, c, nil, function.WithDryRun()))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, url+"/", bytes.NewReader(tt.body))
			require.NoError(t, err)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)

			assert.Equal(t, tt.status, resp.StatusCode, "body: %s", body)
			assert.Equal(t, tt.replyType, resp.Header.Get("Ce-Type"))
			if tt.replyType != "" {
				assert.Equal(t, "true", resp.Header.Get("Ce-Dryrun"))
				var data eventing.ReplyData
				require.NoError(t, json.Unmarshal(body, &data))
				assert.Equal(t, "web-7d9f8-abcde", data.Name)
			}
			if tt.status != http.StatusOK {
				assert.Contains(t, string(body), tt.message)
				assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
			} else if tt.replyType == "" {
				assert.Empty(t, body)
			}
		})
	}
	// Dry-run writes nothing, and no event reads its pod; advice reads the pod's owner (once per
	// owner, but this fake cluster has no Deployment web, so each of the three managed events reads it).
	assert.Equal(t, []string{"get deployments", "get deployments", "get deployments"}, testutil.Verbs(c), "dry-run, and no event reads the pod")
}

func TestHTTPNotReadyIs503(t *testing.T) {
	f := function.New(function.WithClient(fake.NewClientset()), function.WithLogger(discard))
	header, body := readSample(t, "managed-pod-added.http")
	resp, got := post(t, served(t, f)+"/", header, body)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, got, "not ready")
}

func TestHandleClusterUnavailableIs503(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}},
		{"API server overloaded", apierrors.NewTooManyRequests("slow down", 1)},
		{"API server unavailable", apierrors.NewServiceUnavailable("etcd is away")},
		{"API server timeout", apierrors.NewTimeoutError("took too long", 1)},
		{"deadline exceeded", fmt.Errorf("patching: %w", context.DeadlineExceeded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			c.PrependReactor("*", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.err // the read of the live pod fails
			})
			reply, err := started(t, c, nil).HandleEvent(context.Background(), sampleEvent(t, "managed-pod-added.http"))
			assert.Nil(t, reply)
			status, msg := result(t, err)
			assert.Equal(t, http.StatusServiceUnavailable, status)
			assert.Contains(t, msg, "unavailable")
		})
	}
}

func TestHTTPClusterFailureIs500(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("*", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd is down"))
	})
	f := started(t, c, nil)
	header, body := readSample(t, "managed-pod-added.http")
	resp, got := post(t, served(t, f)+"/", header, body)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, got, "etcd is down")
}

// The health endpoints func-go serves report what the function says.
func TestHTTPHealth(t *testing.T) {
	f := function.New(function.WithClient(fake.NewClientset()), function.WithLogger(discard))
	url := served(t, f)
	get := func(path string) int {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, get("/health/liveness"), "alive before Start: the event path answers (503)")
	assert.Equal(t, http.StatusInternalServerError, get("/health/readiness"), "not ready before Start")
	require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir()}))
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	assert.Equal(t, http.StatusOK, get("/health/readiness"))
	assert.Equal(t, http.StatusOK, get("/health/liveness"))
}

// A sweep event (a PingSource tick, or dev.vpagracefuldrain.sweep) is answered 202 and starts a
// sweep of every pod; without a cluster there is nothing to sweep.
func TestHandleSweepEvents(t *testing.T) {
	for _, typ := range []string{names.TypePing, names.TypeSweep} {
		t.Run(typ, func(t *testing.T) {
			c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
			f := function.New(function.WithClient(c), function.WithDynamic(testutil.Dynamic(c, nil)), function.WithLogger(discard))
			require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir(), config.KeySweepIntervalSeconds: "900"}))
			t.Cleanup(func() { _ = f.Stop(context.Background()) })
			lists := func() int {
				n := 0
				for _, a := range c.Actions() {
					if a.GetVerb() == "list" && a.GetResource().Resource == "pods" {
						n++
					}
				}
				return n
			}
			require.Eventually(t, func() bool { return lists() == 1 }, 5*time.Second, 10*time.Millisecond, "the start sweep")

			reply, err := f.HandleEvent(context.Background(), newEvent(typ, `{"sweep":true}`))
			assert.Nil(t, reply)
			status, msg := result(t, err)
			assert.Equal(t, http.StatusAccepted, status)
			assert.Equal(t, "sweep requested", msg)
			require.Eventually(t, func() bool { return lists() == 2 }, 5*time.Second, 10*time.Millisecond, "the requested sweep")

			// Asked again at once (a sender repeating it): refused without asking for a sweep.
			_, err = f.HandleEvent(context.Background(), newEvent(typ, `{"sweep":true}`))
			status, msg = result(t, err)
			assert.Equal(t, http.StatusAccepted, status)
			assert.Equal(t, "sweep not repeated: one was asked for less than 10s ago", msg)
		})
	}
	t.Run("without a cluster", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		t.Setenv("KUBECONFIG", filepath.Join(home, "none"))
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		f := function.New(function.WithLogger(discard))
		require.NoError(t, f.Start(context.Background(), map[string]string{config.KeyConfigDir: t.TempDir()}))
		t.Cleanup(func() { _ = f.Stop(context.Background()) })
		_, err := f.HandleEvent(context.Background(), newEvent(names.TypeSweep, ""))
		status, msg := result(t, err)
		assert.Equal(t, http.StatusUnprocessableEntity, status)
		assert.Contains(t, msg, "needs a cluster")
	})
}

// A pod that keeps changing while a decision is applied (another replica, a re-check, the
// kubelet) is not the sender's problem: 200, no reply; a re-check finishes the work.
func TestHandleConcurrentWriterIsNotAnError(t *testing.T) {
	c := fake.NewClientset(samplePod(t, "managed-pod-added.http"))
	c.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "web-7d9f8-abcde", errors.New("modified"))
	})
	reply, err := started(t, c, nil).HandleEvent(context.Background(), sampleEvent(t, "managed-pod-added.http"))
	assert.NoError(t, err)
	assert.Nil(t, reply)
	assert.Equal(t, []string{"get pods", "patch pods", "get pods", "patch pods", "get pods", "patch pods"}, testutil.Verbs(c))
}
