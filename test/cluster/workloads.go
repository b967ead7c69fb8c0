package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// NodeIP is the address the workload kubelet reports as every pod's hostIP.
const NodeIP = "172.18.0.2"

// NodeAllocatable is what every node of the test bed offers: 8 cpu, 32Gi of memory, 110 pods.
// The workload kubelet leaves a pod whose requests alone exceed it Pending (see bind).
func NodeAllocatable() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("8"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// CreateNode creates a Node named name, Ready, schedulable, with allocatable cpu, memory and
// pods; it is fine if it exists already. The DaemonSet controller runs one pod per Node, and
// the EndpointSlice controller skips pods whose Node does not exist.
func CreateNode(ctx context.Context, c kubernetes.Interface, name string) error {
	capacity := NodeAllocatable()
	now := metav1.Now()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		}},
		// Nodes keep the status they are created with (no kubelet heartbeats it, and no node
		// lifecycle controller runs to mark it NotReady).
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "test workload kubelet", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: NodeIP}, {Type: corev1.NodeHostName, Address: name}},
		},
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", name, err)
	}
	// The API server's TaintNodesByCondition admission taints every new Node
	// node.kubernetes.io/not-ready:NoSchedule; the node lifecycle controller would lift it
	// once the Node is Ready, but it does not run. DaemonSet pods do not tolerate it.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
		if len(taints) == len(n.Spec.Taints) {
			return nil
		}
		n.Spec.Taints = taints
		_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("removing the not-ready taint of node %s: %w", name, err)
	}
	return nil
}

// KubeletOptions shape the workload kubelet's timing. Zero values are the defaults.
type KubeletOptions struct {
	// Node is the node pods without a DaemonSet's node affinity are bound to (default
	// NodeName). StartWorkloadKubelet creates it.
	Node string
	// StartDelay is how long a bound pod waits before its containers are reported running.
	StartDelay time.Duration
	// ReadyDelay is how long a running pod waits before it is reported Ready (after which it
	// may still be held by HoldReady).
	ReadyDelay time.Duration
	// StopAfter is how long after the kubelet sees a pod deleting it reports the containers
	// terminated (default 1 s; ptr.To(time.Duration(0)) stops them at once). Never later than
	// the pod's deletionTimestamp, when a kubelet kills what still runs. See SetStopAfter.
	StopAfter *time.Duration
	// StoppedPhase is the phase reported with the terminated containers (default Succeeded:
	// the kubelet's getPhase gives a deleted pod whose containers all exited 0 that terminal
	// phase, whatever its restartPolicy; PodRunning imitates kubelets before 1.27).
	StoppedPhase corev1.PodPhase
	// ReadyWhileStopping keeps a deleting pod Ready until its containers stop, as a real
	// kubelet does for a container without a readiness probe (or whose app keeps passing
	// it). By default the pod turns not Ready as soon as deletion starts, like an app that
	// fails its readiness probe on SIGTERM.
	ReadyWhileStopping bool
}

// WorkloadKubelet plays the scheduler and the kubelet for every pod of one namespace: it binds
// pending pods, reports them running and Ready, and finishes their deletion (containers
// terminated, then the final grace-0 DELETE). Each pod has its own worker goroutine, so a
// slow step of one pod never delays another. All status writes are strategic merge patches of
// the status subresource, as the kubelet's own.
type WorkloadKubelet struct {
	client    kubernetes.Interface
	namespace string
	opts      KubeletOptions
	ctx       context.Context
	cancel    context.CancelFunc
	factory   informers.SharedInformerFactory
	wg        sync.WaitGroup
	stopOnce  sync.Once

	mu        sync.Mutex
	workers   map[types.UID]*podWorker
	finished  map[types.UID]bool
	holds     []func(*corev1.Pod) bool
	delays    []readyDelay
	holdsChg  chan struct{} // closed and replaced when holds or releases change
	stopAfter map[string]time.Duration
	readyAt   map[string]time.Time
	stoppedAt map[string]time.Time
	deletedAt map[string]time.Time
	errs      []error
}

type readyDelay struct {
	match func(*corev1.Pod) bool
	d     time.Duration
}

// podIPs counts the pod IPs handed out by every workload kubelet of the test binary.
var podIPs atomic.Uint32

// StartWorkloadKubelet starts a workload kubelet for namespace (creating opts.Node); it stops
// when the test ends. Failures() lists the writes that failed for another reason than the pod
// being gone or changed.
func StartWorkloadKubelet(tb testing.TB, c kubernetes.Interface, namespace string, opts KubeletOptions) *WorkloadKubelet {
	tb.Helper()
	k, err := NewWorkloadKubelet(c, namespace, opts)
	require.NoError(tb, err)
	tb.Cleanup(k.Stop)
	return k
}

// NewWorkloadKubelet is StartWorkloadKubelet for a program: call Stop to end it.
func NewWorkloadKubelet(c kubernetes.Interface, namespace string, opts KubeletOptions) (*WorkloadKubelet, error) {
	if opts.Node == "" {
		opts.Node = NodeName
	}
	if opts.StopAfter == nil {
		opts.StopAfter = ptr.To(time.Second)
	}
	if opts.StoppedPhase == "" {
		opts.StoppedPhase = corev1.PodSucceeded
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := CreateNode(ctx, c, opts.Node); err != nil {
		cancel()
		return nil, err
	}
	k := &WorkloadKubelet{
		client: c, namespace: namespace, opts: opts, ctx: ctx, cancel: cancel,
		workers: map[types.UID]*podWorker{}, finished: map[types.UID]bool{}, holdsChg: make(chan struct{}),
		stopAfter: map[string]time.Duration{}, readyAt: map[string]time.Time{},
		stoppedAt: map[string]time.Time{}, deletedAt: map[string]time.Time{},
	}
	// The resync re-offers every pod every 10 s; workers ignore what they have done already.
	k.factory = informers.NewSharedInformerFactoryWithOptions(c, 10*time.Second, informers.WithNamespace(namespace))
	inf := k.factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.observe(obj, false) },
		UpdateFunc: func(_, obj any) { k.observe(obj, false) },
		DeleteFunc: func(obj any) { k.observe(obj, true) },
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("watching pods of %s: %w", namespace, err)
	}
	k.factory.Start(ctx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	for typ, ok := range k.factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			k.Stop()
			return nil, fmt.Errorf("the workload kubelet's %v informer of %s did not sync within 30s", typ, namespace)
		}
	}
	return k, nil
}

// Stop ends the watch and every pod worker, and waits for them. It is safe to call twice.
func (k *WorkloadKubelet) Stop() {
	k.stopOnce.Do(func() {
		k.cancel()
		k.factory.Shutdown()
		k.wg.Wait()
	})
}

// HoldReady keeps pods that match (when they would turn Ready) not Ready until ReleaseReady
// or Release: for example "replacement pods do not become Ready until the test says so".
func (k *WorkloadKubelet) HoldReady(match func(*corev1.Pod) bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.holds = append(k.holds, match)
	k.holdsChangedLocked()
}

// ReleaseReady drops every HoldReady: held pods turn Ready now, and later pods are not held.
func (k *WorkloadKubelet) ReleaseReady() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.holds = nil
	k.holdsChangedLocked()
}

// Release lets the current pod of this name turn Ready although a HoldReady matches it (a
// pod created later under the same name is held again).
func (k *WorkloadKubelet) Release(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, w := range k.workers {
		if w.name == name {
			w.released = true
		}
	}
	k.holdsChangedLocked()
}

// Held lists the pods that are running and would be Ready but for HoldReady, sorted.
func (k *WorkloadKubelet) Held() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, w := range k.workers {
		if w.held {
			out = append(out, w.name)
		}
	}
	slices.Sort(out)
	return out
}

// SetReadyDelay overrides KubeletOptions.ReadyDelay for pods that match (the latest matching
// call wins), e.g. "replacements turn Ready 2 s after their containers start".
func (k *WorkloadKubelet) SetReadyDelay(match func(*corev1.Pod) bool, d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.delays = append(k.delays, readyDelay{match: match, d: d})
}

func (k *WorkloadKubelet) readyDelay(pod *corev1.Pod) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, rd := range slices.Backward(k.delays) {
		if rd.match(pod) {
			return rd.d
		}
	}
	return k.opts.ReadyDelay
}

// SetStopAfter overrides KubeletOptions.StopAfter for pods of this name.
func (k *WorkloadKubelet) SetStopAfter(name string, d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopAfter[name] = d
}

// ReadyAt returns when the latest pod of this name was reported Ready (the patch's answer).
func (k *WorkloadKubelet) ReadyAt(name string) (time.Time, bool) { return k.at(k.readyAt, name) }

// StoppedAt returns when the latest pod of this name was reported with its containers
// terminated.
func (k *WorkloadKubelet) StoppedAt(name string) (time.Time, bool) { return k.at(k.stoppedAt, name) }

// DeletedAt returns when the kubelet's final grace-0 DELETE of the latest pod of this name
// went through (a finalizer may still hold the object).
func (k *WorkloadKubelet) DeletedAt(name string) (time.Time, bool) { return k.at(k.deletedAt, name) }

func (k *WorkloadKubelet) at(m map[string]time.Time, name string) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := m[name]
	return t, ok
}

// Failures are the API errors other than NotFound and Conflict (the pod went away or changed).
func (k *WorkloadKubelet) Failures() []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.errs)
}

func (k *WorkloadKubelet) holdsChangedLocked() {
	close(k.holdsChg)
	k.holdsChg = make(chan struct{})
}

func (k *WorkloadKubelet) record(m map[string]time.Time, name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m[name] = time.Now()
}

// failed records err unless the pod is gone or changed under us (or the kubelet is stopping).
func (k *WorkloadKubelet) failed(err error) {
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) || k.ctx.Err() != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.errs = append(k.errs, err)
}

// podWorker holds one pod's (one UID's) latest state for its goroutine.
type podWorker struct {
	name   string
	uid    types.UID
	notify chan struct{} // 1-buffered: "latest changed"
	latest *corev1.Pod   // guarded by the kubelet's mu
	gone   bool          // guarded by the kubelet's mu
	held   bool          // guarded by the kubelet's mu
	// released lets this pod turn Ready despite a hold; guarded by the kubelet's mu.
	released bool

	// Owned by the worker goroutine.
	running   bool
	ready     bool
	startedAt metav1.Time
	ip        string
}

// observe hands an informer event to the pod's worker, starting one for a new UID.
func (k *WorkloadKubelet) observe(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil || k.finished[pod.UID] {
		return
	}
	w := k.workers[pod.UID]
	if w == nil {
		if deleted {
			return
		}
		w = &podWorker{name: pod.Name, uid: pod.UID, notify: make(chan struct{}, 1)}
		w.adopt(pod)
		k.workers[pod.UID] = w
		k.wg.Add(1)
		go k.run(w)
	}
	w.latest, w.gone = pod, w.gone || deleted
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// adopt takes over what an earlier kubelet reported (pods created running by a test, or
// seen again after a restart).
func (w *podWorker) adopt(pod *corev1.Pod) {
	for _, s := range pod.Status.ContainerStatuses {
		if s.State.Running != nil {
			w.running, w.startedAt = true, s.State.Running.StartedAt
		}
	}
	w.ip = pod.Status.PodIP
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			w.ready = true
		}
	}
}

func (k *WorkloadKubelet) snapshot(w *podWorker) (*corev1.Pod, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return w.latest, w.gone
}

// run is one pod's life: bind, start, turn Ready, and, once it is deleting, stop and finish.
func (k *WorkloadKubelet) run(w *podWorker) {
	defer k.wg.Done()
	defer func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		delete(k.workers, w.uid)
		k.finished[w.uid] = true
	}()
	bound := false
	for k.ctx.Err() == nil {
		pod, gone := k.snapshot(w)
		switch {
		case gone:
			return
		case pod.DeletionTimestamp != nil:
			k.terminate(w)
			return
		case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			// Terminal: nothing runs any more; wait for its deletion.
		case pod.Spec.NodeName == "":
			if !bound {
				bound = true
				k.failed(k.bind(pod))
			}
		case !w.running:
			if !k.sleep(w, k.opts.StartDelay) || k.start(w, pod) {
				continue
			}
			// The write failed: try again with the next version of the pod (or the resync).
		case !w.ready:
			if !k.sleep(w, k.readyDelay(pod)) || !k.waitRelease(w) {
				continue
			}
			if pod, _ = k.snapshot(w); k.becomeReady(w, pod) {
				continue
			}
		}
		select {
		case <-k.ctx.Done():
		case <-w.notify:
		}
	}
}

// deleting reports whether the pod is gone or deleting (a worker's wait ends then).
func (k *WorkloadKubelet) deleting(w *podWorker) bool {
	pod, gone := k.snapshot(w)
	return gone || pod.DeletionTimestamp != nil
}

// sleep waits d; it returns false early if the pod starts deleting or the kubelet stops.
func (k *WorkloadKubelet) sleep(w *podWorker, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if k.deleting(w) {
			return false
		}
		select {
		case <-k.ctx.Done():
			return false
		case <-w.notify:
		case <-t.C:
			return !k.deleting(w) && k.ctx.Err() == nil
		}
	}
}

// waitRelease waits while a HoldReady matches the pod; false if it starts deleting meanwhile.
func (k *WorkloadKubelet) waitRelease(w *podWorker) bool {
	for {
		k.mu.Lock()
		held := !w.released && slices.ContainsFunc(k.holds, func(match func(*corev1.Pod) bool) bool { return match(w.latest) })
		w.held = held
		changed := k.holdsChg
		k.mu.Unlock()
		if !held {
			return !k.deleting(w)
		}
		select {
		case <-k.ctx.Done():
			return false
		case <-changed:
		case <-w.notify:
			if k.deleting(w) {
				k.mu.Lock()
				w.held = false
				k.mu.Unlock()
				return false
			}
		}
	}
}

// bind plays the scheduler: a DaemonSet pod goes to the node its required affinity names,
// every other pod to the kubelet's node, unless its requests alone exceed a node's
// allocatable (NodeAllocatable): then it stays Pending, PodScheduled False with the
// scheduler's reason Unschedulable (what the pods already on the node use is not counted).
func (k *WorkloadKubelet) bind(pod *corev1.Pod) error {
	if short := insufficient(pod); short != "" {
		patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable",`+
			`"message":"0/1 nodes are available: 1 Insufficient %s.","lastTransitionTime":%q}]}}`, short, time.Now().UTC().Format(time.RFC3339))
		if _, err := k.client.CoreV1().Pods(pod.Namespace).Patch(k.ctx, pod.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
			return fmt.Errorf("reporting %s/%s unschedulable: %w", pod.Namespace, pod.Name, err)
		}
		return nil
	}
	node := k.opts.Node
	if n := affinityNode(pod); n != "" {
		node = n
	}
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := k.client.CoreV1().Pods(pod.Namespace).Bind(k.ctx, b, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("binding %s/%s to %s: %w", pod.Namespace, pod.Name, node, err)
	}
	return nil
}

// insufficient names the resource (cpu, memory) of which the pod's containers request more
// than a node's allocatable; "" when it fits.
func insufficient(pod *corev1.Pod) string {
	alloc := NodeAllocatable()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		var sum resource.Quantity
		for _, c := range pod.Spec.Containers {
			if q, ok := c.Resources.Requests[name]; ok {
				sum.Add(q)
			}
		}
		if sum.Cmp(alloc[name]) > 0 {
			return string(name)
		}
	}
	return ""
}

// affinityNode is the node a DaemonSet pod must run on: its required node affinity
// `metadata.name In [node]`.
func affinityNode(pod *corev1.Pod) string {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

// start reports the containers running (not yet ready) with a fresh pod IP.
func (k *WorkloadKubelet) start(w *podWorker, pod *corev1.Pod) bool {
	now := metav1.Now()
	if w.ip == "" {
		n := podIPs.Add(1)
		w.ip = fmt.Sprintf("10.244.%d.%d", (n/250)%250, n%250+1)
	}
	w.startedAt = now
	status := map[string]any{
		"phase": corev1.PodRunning, "hostIP": NodeIP, "hostIPs": []corev1.HostIP{{IP: NodeIP}},
		"podIP": w.ip, "podIPs": []corev1.PodIP{{IP: w.ip}}, "startTime": now,
		"conditions": []corev1.PodCondition{
			condition(corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", now),
			condition(corev1.PodInitialized, corev1.ConditionTrue, "", now),
			condition(corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady", now),
			condition(corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", now),
		},
		"containerStatuses": containerStatuses(pod, false, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}),
	}
	w.running = k.patchStatus(pod, status)
	return w.running
}

// becomeReady reports the pod Ready and its containers ready.
func (k *WorkloadKubelet) becomeReady(w *podWorker, pod *corev1.Pod) bool {
	now := metav1.Now()
	status := map[string]any{
		"conditions": []corev1.PodCondition{
			condition(corev1.ContainersReady, corev1.ConditionTrue, "", now),
			condition(corev1.PodReady, corev1.ConditionTrue, "", now),
		},
		"containerStatuses": containerStatuses(pod, true, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: w.startedAt}}),
	}
	k.mu.Lock()
	w.held = false
	k.mu.Unlock()
	if w.ready = k.patchStatus(pod, status); w.ready {
		k.record(k.readyAt, pod.Name)
	}
	return w.ready
}

// terminate finishes a deleting pod as a kubelet does: not Ready at once (unless
// ReadyWhileStopping), containers terminated after StopAfter (at the deletionTimestamp at the
// latest), then the final DELETE with grace 0 and the pod's UID as precondition.
func (k *WorkloadKubelet) terminate(w *podWorker) {
	pod, _ := k.snapshot(w)
	if pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds == 0 {
		return // force-deleted, or already finished by a kubelet: nothing left to do
	}
	if w.running {
		if w.ready && !k.opts.ReadyWhileStopping {
			now := metav1.Now()
			k.patchStatus(pod, map[string]any{
				"conditions": []corev1.PodCondition{
					condition(corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady", now),
					condition(corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", now),
				},
				"containerStatuses": containerStatuses(pod, false, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: w.startedAt}}),
			})
		}
		k.mu.Lock()
		d, ok := k.stopAfter[pod.Name]
		k.mu.Unlock()
		if !ok {
			d = *k.opts.StopAfter
		}
		d = min(d, time.Until(pod.DeletionTimestamp.Time))
		if !k.waitStop(w, d) {
			return
		}
		pod, _ = k.snapshot(w)
		now := metav1.Now()
		status := map[string]any{
			"phase": k.opts.StoppedPhase,
			"conditions": []corev1.PodCondition{
				condition(corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", now),
				condition(corev1.PodReady, corev1.ConditionFalse, "PodCompleted", now),
			},
			"containerStatuses": containerStatuses(pod, false, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: w.startedAt, FinishedAt: now,
			}}),
		}
		if !k.patchStatus(pod, status) {
			return
		}
		k.record(k.stoppedAt, pod.Name)
	}
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(k.ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil {
		k.failed(fmt.Errorf("finishing deletion of %s/%s: %w", pod.Namespace, pod.Name, err))
		return
	}
	k.record(k.deletedAt, pod.Name)
}

// waitStop waits d while the containers still run; false if the pod went away, was
// force-deleted, or the kubelet stops.
func (k *WorkloadKubelet) waitStop(w *podWorker, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	for {
		pod, gone := k.snapshot(w)
		if gone || (pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds == 0) {
			return false
		}
		select {
		case <-k.ctx.Done():
			return false
		case <-w.notify:
		case <-t.C:
			return true
		}
	}
}

// patchStatus writes status with a strategic merge patch of the status subresource (conditions
// merge by type, so PodScheduled and DisruptionTarget stay); false if it failed.
func (k *WorkloadKubelet) patchStatus(pod *corev1.Pod, status map[string]any) bool {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID}, "status": status})
	if err != nil {
		k.failed(fmt.Errorf("encoding status of %s/%s: %w", pod.Namespace, pod.Name, err))
		return false
	}
	_, err = k.client.CoreV1().Pods(pod.Namespace).Patch(k.ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		k.failed(fmt.Errorf("updating status of %s/%s: %w", pod.Namespace, pod.Name, err))
		return false
	}
	return true
}

func condition(t corev1.PodConditionType, s corev1.ConditionStatus, reason string, at metav1.Time) corev1.PodCondition {
	return corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: at}
}

func containerStatuses(pod *corev1.Pod, ready bool, state corev1.ContainerState) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		out = append(out, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "docker.io/library/busybox@sha256:0",
			ContainerID: "containerd://" + string(pod.UID) + "-" + c.Name,
			Ready:       ready, Started: ptr.To(state.Running != nil), State: state,
		})
	}
	return out
}

// podTemplate is the pod of the workloads tests create: one container "app", grace 30 s, no
// service account token, labels app=name.
func podTemplate(name string, annotations map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: annotations},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			AutomountServiceAccountToken:  ptr.To(false),
			Containers: []corev1.Container{{
				Name: "app", Image: "busybox", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}},
		},
	}
}

// DeploymentSpec is a Deployment of replicas pods labelled app=name (see podTemplate).
func DeploymentSpec(namespace, name string, replicas int32, podAnnotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, podAnnotations),
		},
	}
}

// StatefulSetSpec is a StatefulSet of replicas pods name-0, name-1, ... labelled app=name,
// governed by the Service name (create it with ServiceSpec).
func StatefulSetSpec(namespace, name string, replicas int32, podAnnotations map[string]string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:    podTemplate(name, podAnnotations),
		},
	}
}

// DaemonSetSpec is a DaemonSet (one pod per Node) labelled app=name.
func DaemonSetSpec(namespace, name string, podAnnotations map[string]string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, podAnnotations),
		},
	}
}

// ServiceSpec is a ClusterIP Service on port 80 (to the pods' port 8080) selecting selector:
// the EndpointSlice controller lists its pods (Ready ones with a pod IP as ready).
func ServiceSpec(namespace, name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ReadyPods lists the names of the pods matching selector that are Ready and not deleting,
// sorted.
func ReadyPods(ctx context.Context, c kubernetes.Interface, namespace string, selector labels.Selector) ([]string, error) {
	list, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, fmt.Errorf("listing pods %s in %s: %w", selector, namespace, err)
	}
	var out []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && PodReady(&p) {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// WaitForReadyReplicas polls until exactly n pods matching selector are Ready and not
// deleting, and returns their names (sorted). It gives up when ctx ends.
func WaitForReadyReplicas(ctx context.Context, c kubernetes.Interface, namespace string, selector labels.Selector, n int) ([]string, error) {
	var last []string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		names, err := ReadyPods(ctx, c, namespace, selector)
		if err != nil {
			return false, nil //nolint:nilerr // retried until ctx ends
		}
		last = names
		return len(names) == n, nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("waiting for %d Ready pods %s in %s (last seen: %v)", n, selector, namespace, last), err)
	}
	return last, nil
}
