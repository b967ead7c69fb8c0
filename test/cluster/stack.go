package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"function/eventing"
)

// BarePods is the configuration of the tests whose pods have no owner and are deleted with
// a plain DELETE as often as evicted: bare pods managed, every deletion held. (The defaults,
// for owned pods and evictions only, are tested in test/workloads.)
var BarePods = []string{`workloadDefaults={"Pod":{"manage":true}}`, "holdOn=all"}

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
// delivers events. The function runs with the credentials of its own ServiceAccount from
// config/rbac.yaml, with every role of RBACFiles (ControlPlane.FunctionKubeconfig), so a verb
// they lack fails the test; a KUBECONFIG in env wins (e.g. "KUBECONFIG="+cp.Kubeconfig for admin, or a proxy's).
// Everything is stopped when the test ends; the processes' output is logged if it failed.
func StartStack(t *testing.T, cp *ControlPlane, bin, mode string, env ...string) *Stack {
	t.Helper()
	return StartStackWatching(t, cp, bin, mode, nil, env...)
}

// StartStackWatching is StartStack with an adapter that also watches the resources also
// (VPAs: as eventing/knative.yaml's source).
func StartStackWatching(t *testing.T, cp *ControlPlane, bin, mode string, also []Watched, env ...string) *Stack {
	t.Helper()
	s, err := newStack(cp, bin, cp.Namespace(t, "e2e"), mode, also, env...)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("adapter output (tail):\n%s", tail(s.Adapter.Output(), 40))
			t.Logf("function output (tail):\n%s", tail(s.Function.Output(), 60))
		}
		require.NoError(t, s.Close())
	})
	return s
}

// NewStack is StartStack for a program (the demo): call Close to stop everything.
func NewStack(cp *ControlPlane, bin, namespace, mode string, env ...string) (*Stack, error) {
	return newStack(cp, bin, namespace, mode, nil, env...)
}

func newStack(cp *ControlPlane, bin, namespace, mode string, also []Watched, env ...string) (*Stack, error) {
	s := &Stack{CP: cp, Namespace: namespace, bin: bin, env: env}
	var err error
	if s.Function, err = s.startFunction(); err != nil {
		return nil, err
	}
	if s.Proxy, err = StartProxy(s.Function.URL); err != nil {
		_ = s.Close()
		return nil, err
	}
	if s.Adapter, err = StartAdapter(cp.Kubeconfig, namespace, mode, s.Proxy.URL, also...); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.waitForWatch(context.Background()); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the adapter, the proxy and the function.
func (s *Stack) Close() error {
	var errs []error
	if s.Adapter != nil {
		errs = append(errs, s.Adapter.Stop())
	}
	if s.Proxy != nil {
		errs = append(errs, s.Proxy.Close())
	}
	if s.Function != nil {
		errs = append(errs, s.Function.Stop())
	}
	return errors.Join(errs...)
}

func (s *Stack) startFunction() (*Function, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	kubeconfig, err := s.CP.FunctionKubeconfig()
	if err != nil {
		return nil, err
	}
	return StartFunction(context.Background(), s.bin, addr, kubeconfig, s.env...)
}

// RestartFunction kills the function (SIGKILL, no goodbye) and starts a new process, to
// which the proxy then sends the adapter's events.
func (s *Stack) RestartFunction() error {
	s.Function.Kill()
	fn, err := s.startFunction()
	if err != nil {
		return err
	}
	s.Function = fn
	s.Proxy.SetTarget(fn.URL)
	return nil
}

// waitForWatch creates an unmanaged probe pod and touches it until an event about it comes
// through: the adapter announces nothing that existed before its watch started.
func (s *Stack) waitForWatch(ctx context.Context) error {
	pods := s.CP.Client.CoreV1().Pods(s.Namespace)
	probe, err := pods.Create(ctx, PodSpec(s.Namespace, "watch-probe", false), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the watch probe pod: %w", err)
	}
	subject := s.Subject(probe.Name)
	n := 0
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, x := range s.Proxy.Exchanges() {
			if x.Subject == subject {
				return true, nil
			}
		}
		if s.Adapter.Exited() {
			return false, errors.New("the adapter exited before it delivered an event")
		}
		n++
		patch := fmt.Sprintf(`{"metadata":{"labels":{"probe":"%d"}}}`, n)
		if _, err := pods.Patch(ctx, probe.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return false, fmt.Errorf("touching the watch probe pod: %w", err)
		}
		return false, nil
	})
	switch {
	case wait.Interrupted(err) && ctx.Err() == nil:
		return fmt.Errorf("the adapter never delivered an event within 60s:\n%s", tail(s.Adapter.Output(), 20))
	case err != nil:
		return fmt.Errorf("%w\n%s", err, tail(s.Adapter.Output(), 20))
	}
	return nil
}

// Subject returns the ce-subject of the events about pod name in the stack's namespace.
func (s *Stack) Subject(name string) string {
	return eventing.PodPath(s.Namespace, name)
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
			// Removing the last finalizer of a pod whose kubelet already sent its grace-0
			// DELETE deletes it at once: the watch then shows only a DELETED event, carrying
			// the last stored state (finalizer included).
			if has && ev.Type != watch.Deleted {
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
