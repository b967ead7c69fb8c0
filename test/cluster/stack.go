package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Stack is the whole path in one namespace: the real adapter, the recording proxy and the
// function process, against a shared control plane.
type Stack struct {
	CP        *ControlPlane
	Namespace string
	Function  *Function
	Proxy     *Proxy
	Adapter   *Adapter
	bin       string
	env       []string
}

// StartStack starts function (binary bin, configuration env), proxy and adapter (mode
// "Resource" or "Reference") for a new namespace, and waits until the adapter's watch
// delivers events. Everything is stopped when the test ends; the processes' output is
// logged if it failed.
func StartStack(t *testing.T, cp *ControlPlane, bin, mode string, env ...string) *Stack {
	t.Helper()
	ctx := context.Background()
	s := &Stack{CP: cp, Namespace: cp.Namespace(t, "e2e"), bin: bin, env: env}
	s.Function = s.startFunction(t)
	var err error
	s.Proxy, err = StartProxy(s.Function.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Proxy.Close() })
	s.Adapter, err = StartAdapter(cp.Kubeconfig, s.Namespace, mode, s.Proxy.URL)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, s.Adapter.Stop())
		if t.Failed() {
			t.Logf("adapter output (tail):\n%s", tail(s.Adapter.Output(), 40))
		}
	})
	s.waitForWatch(t, ctx)
	return s
}

func (s *Stack) startFunction(t *testing.T) *Function {
	t.Helper()
	addr, err := FreeAddr()
	require.NoError(t, err)
	fn, err := StartFunction(context.Background(), s.bin, addr, s.CP.Kubeconfig, s.env...)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, fn.Stop())
		if t.Failed() {
			t.Logf("function output (tail):\n%s", tail(fn.Output(), 60))
		}
	})
	return fn
}

// RestartFunction kills the function (SIGKILL, no goodbye) and starts a new process, to
// which the proxy then sends the adapter's events.
func (s *Stack) RestartFunction(t *testing.T) {
	t.Helper()
	s.Function.Kill()
	s.Function = s.startFunction(t)
	s.Proxy.SetTarget(s.Function.URL)
}

// waitForWatch creates an unmanaged probe pod and touches it until an event about it comes
// through: the adapter announces nothing that existed before its watch started.
func (s *Stack) waitForWatch(t *testing.T, ctx context.Context) {
	t.Helper()
	pods := s.CP.Client.CoreV1().Pods(s.Namespace)
	probe, err := pods.Create(ctx, PodSpec(s.Namespace, "watch-probe", false), metav1.CreateOptions{})
	require.NoError(t, err)
	subject := "/apis/v1/namespaces/" + s.Namespace + "/pods/" + probe.Name
	n := 0
	require.Eventually(t, func() bool {
		for _, x := range s.Proxy.Exchanges() {
			if x.Subject == subject {
				return true
			}
		}
		n++
		patch := fmt.Sprintf(`{"metadata":{"labels":{"probe":"%d"}}}`, n)
		_, err := pods.Patch(ctx, probe.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(t, err)
		return false
	}, 60*time.Second, 250*time.Millisecond, "the adapter never delivered an event: %s", tail(s.Adapter.Output(), 20))
}

// Subject is the ce-subject of a pod's events.
func (s *Stack) Subject(name string) string {
	return "/apis/v1/namespaces/" + s.Namespace + "/pods/" + name
}

// Releases watches the stack's namespace and records when each pod lost a finalizer it had.
type Releases struct {
	mu       sync.Mutex
	had      map[string]bool
	released map[string]time.Time
	stop     func()
}

// WatchReleases starts recording; it stops when the test ends.
func WatchReleases(t *testing.T, s *Stack, finalizer string) *Releases {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.CP.Client.CoreV1().Pods(s.Namespace).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	r := &Releases{had: map[string]bool{}, released: map[string]time.Time{}, stop: func() { cancel(); w.Stop() }}
	t.Cleanup(r.stop)
	go func() {
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified && ev.Type != watch.Deleted) {
				continue
			}
			has := false
			for _, f := range pod.Finalizers {
				has = has || f == finalizer
			}
			r.mu.Lock()
			if has {
				r.had[pod.Name] = true
			} else if r.had[pod.Name] {
				if _, done := r.released[pod.Name]; !done {
					r.released[pod.Name] = time.Now()
				}
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// At returns when the pod lost the finalizer.
func (r *Releases) At(name string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.released[name]
	return at, ok
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
