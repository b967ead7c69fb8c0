package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// Kubelet plays the kubelet's part for evicted pods (no kubelet runs on NodeName): at a pod's
// deletionTimestamp, plus its late delay if any, it reports the containers terminated, and it
// remembers when that write went through.
type Kubelet struct {
	client  kubernetes.Interface
	mu      sync.Mutex
	stopped map[string]time.Time
	late    map[string]time.Duration
	errs    []error
	timers  []*time.Timer
}

// NewKubelet returns a Kubelet writing with client.
func NewKubelet(client kubernetes.Interface) *Kubelet {
	return &Kubelet{client: client, stopped: map[string]time.Time{}, late: map[string]time.Duration{}}
}

// SetLate makes the containers of the named pod stop d after its deletionTimestamp.
func (k *Kubelet) SetLate(name string, d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.late[name] = d
}

// StopAtDeadline reports the pod's containers terminated at its deletionTimestamp (plus its
// late delay). The pod must be deleting.
func (k *Kubelet) StopAtDeadline(ctx context.Context, pod *corev1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pod.DeletionTimestamp == nil {
		k.errs = append(k.errs, fmt.Errorf("%s/%s is not deleting: no deadline to stop its containers at", pod.Namespace, pod.Name))
		return
	}
	k.timers = append(k.timers, time.AfterFunc(time.Until(pod.DeletionTimestamp.Time)+k.late[pod.Name], func() {
		_, err := MarkStopped(ctx, k.client, pod)
		k.mu.Lock()
		defer k.mu.Unlock()
		if err != nil {
			k.errs = append(k.errs, err)
			return
		}
		k.stopped[pod.Name] = time.Now()
	}))
}

// StoppedAt returns when the pod's containers were reported terminated.
func (k *Kubelet) StoppedAt(name string) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.stopped[name]
	return at, ok
}

// Failures are the status writes that failed.
func (k *Kubelet) Failures() []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.errs)
}

// Stop cancels the stops not made yet.
func (k *Kubelet) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, t := range k.timers {
		t.Stop()
	}
}

// CreateRunningPods creates n pods named prefix-00, prefix-01, ... (managed: with
// vpa-managed: "true") and reports their containers running. It returns the running pods.
func CreateRunningPods(ctx context.Context, c kubernetes.Interface, namespace, prefix string, n int, managed bool) ([]*corev1.Pod, error) {
	pods := make([]*corev1.Pod, 0, n)
	for i := range n {
		created, err := c.CoreV1().Pods(namespace).Create(ctx, PodSpec(namespace, fmt.Sprintf("%s-%02d", prefix, i), managed), metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("creating pod: %w", err)
		}
		running, err := MarkRunning(ctx, c, created)
		if err != nil {
			return nil, err
		}
		pods = append(pods, running)
	}
	return pods, nil
}

// EventReasons lists "Type/Reason" of the Kubernetes Events about the pod with this uid.
func EventReasons(ctx context.Context, c kubernetes.Interface, namespace, uid string) ([]string, error) {
	list, err := c.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", uid).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing events of %s in %s: %w", uid, namespace, err)
	}
	out := make([]string, 0, len(list.Items))
	for _, e := range list.Items {
		out = append(out, e.Type+"/"+e.Reason)
	}
	return out, nil
}

// EndOfSecond is the latest moment a whole-second API time t stands for (t + 1 s - 1 ns):
// the function times drains from it, so a hold is never shorter than its grace period.
func EndOfSecond(t time.Time) time.Time { return t.Add(time.Second - time.Nanosecond) }

// EvictedAt is when the API server accepted the eviction of the pod: the lastTransitionTime
// of its DisruptionTarget condition (false when it has none).
func EvictedAt(pod *corev1.Pod) (time.Time, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}
