package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"function/handlers/drain"
	"function/names"
	"function/test/cluster"
)

const (
	apiRequests   = "vpagracefuldrain_api_requests_total"
	sweepsTotal   = "vpagracefuldrain_sweeps_total"
	sweepDuration = "vpagracefuldrain_sweep_duration_seconds"
	sweepPods     = "vpagracefuldrain_sweep_pods_total"
	eventDuration = "vpagracefuldrain_event_duration_seconds"
	// graceSeconds is the eviction grace period of row 4 and the function's gracePeriodSeconds.
	graceSeconds = 5
	// creators create pods in parallel, as a ReplicaSet controller's burst would.
	creators = 16
)

// stack is the control plane, the function (its own ServiceAccount) and the real adapter
// watching one namespace, with the adapter sending straight to the function.
type stack struct {
	cp      *cluster.ControlPlane
	client  kubernetes.Interface // admin, no client-side rate limit
	floor   kubernetes.Interface // the function's ServiceAccount, no client-side rate limit
	fn      *server
	fnEnv   []string
	adapter *cluster.Adapter
	ns      string
}

// clusterRows measures rows 3 to 8 on one control plane.
func clusterRows(ctx context.Context, env *machineEnv, o options, want func(...int) bool) (rows []Row, err error) {
	env.say("starting etcd and kube-apiserver (from bin/)")
	cp, err := cluster.NewControlPlane()
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := cp.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	disarm := cp.StopOnAbort()
	defer disarm()

	st := &stack{cp: cp}
	if st.client, err = unlimited(cp.Config); err != nil {
		return nil, err
	}
	fnKubeconfig, err := cp.FunctionKubeconfig()
	if err != nil {
		return nil, err
	}
	fnConfig, err := cp.ServiceAccountConfig(ctx, cluster.FunctionNamespace, cluster.FunctionServiceAccount)
	if err != nil {
		return nil, err
	}
	if st.floor, err = unlimited(fnConfig); err != nil {
		return nil, err
	}
	if st.ns, err = cp.NewNamespace(ctx, metav1.ObjectMeta{Name: "bench"}); err != nil {
		return nil, err
	}
	st.fnEnv = append([]string{
		"KUBECONFIG=" + fnKubeconfig, "CONFIG_DIR=" + filepath.Join(env.dir, "no-config"), "LOG_LEVEL=info",
		fmt.Sprintf("gracePeriodSeconds=%d", graceSeconds), "drainTimeoutSeconds=300", "sweepIntervalSeconds=900",
	}, cluster.BarePods...)
	st.fnEnv = append(st.fnEnv, o.fnEnv...)
	st.fn, _, err = start(ctx, env.fn, nil, st.fnEnv, filepath.Join(env.dir, "function.log"))
	if err != nil {
		return nil, err
	}
	defer st.fn.stop()
	if st.adapter, err = cluster.StartAdapter(cp.Kubeconfig, st.ns, "Resource", st.fn.URL()); err != nil {
		return nil, err
	}
	defer func() { _ = st.adapter.Stop() }()
	env.say("function pid %d; adapter watching %q and sending straight to the function", st.fn.Pid(), st.ns)
	if err := st.waitForWatch(ctx); err != nil {
		return nil, err
	}
	// Idle: started, its first sweep done, the adapter connected, no events for 3 s.
	time.Sleep(3 * time.Second) // the idle period being measured, not a synchronisation
	idleKiB, err := rssKiB(st.fn.Pid(), "VmRSS")
	if err != nil {
		return nil, err
	}
	idle := float64(idleKiB) / 1024
	anonKiB, _ := rssKiB(st.fn.Pid(), "RssAnon")
	fileKiB, _ := rssKiB(st.fn.Pid(), "RssFile")
	idleAnon, idleFile := float64(anonKiB)/1024, float64(fileKiB)/1024
	peaks := map[string]float64{}

	if want(7) {
		env.say("row 7: %d cold starts of the function (with its cluster) and of the floor server", o.starts)
		row, err := coldStartRow(ctx, env, o, st)
		if err != nil {
			return rows, fmt.Errorf("row 7: %w", err)
		}
		rows = append(rows, row)
	}
	if want(3, 4, 5) {
		before, err := scrape(ctx, st.fn.URL())
		if err != nil {
			return rows, err
		}
		env.say("row 3: %d managed pods through the adapter, then the same patches from a bare loop", o.pods)
		peak := watchPeak(st.fn.Pid())
		row3, err := st.finalizersAtScale(ctx, env, o.pods)
		peaks["row 3"] = peak.peakMiB()
		if err != nil {
			return rows, fmt.Errorf("row 3: %w", err)
		}
		mid, err := scrape(ctx, st.fn.URL())
		if err != nil {
			return rows, err
		}
		events, meanMs := eventLoad(before, mid)
		row3.Values["events"], row3.Values["meanEventMs"] = events, meanMs
		env.say("  the function answered %.0f events (%.1f per pod), %.2f ms each on average", events, events/float64(o.pods), meanMs)
		rows = append(rows, row3)
		env.say("row 4: evicting the %d pods at once, %d s grace", o.pods, graceSeconds)
		peak = watchPeak(st.fn.Pid())
		row4, err := st.releaseLag(ctx, env, o.pods)
		peaks["row 4"] = peak.peakMiB()
		if err != nil {
			return rows, fmt.Errorf("row 4: %w", err)
		}
		rows = append(rows, row4)
		after, err := scrape(ctx, st.fn.URL())
		if err != nil {
			return rows, err
		}
		events, meanMs = eventLoad(mid, after)
		row4.Values["events"], row4.Values["meanEventMs"] = events, meanMs
		env.say("  the function answered %.0f events (%.1f per pod), %.2f ms each on average", events, events/float64(o.pods), meanMs)
		rows[len(rows)-1] = row4
		rows = append(rows, writesRow(before, after, o.pods))
	}
	if want(6) {
		env.say("row 6: one sweep of %d pods (%d managed)", o.sweepPods, o.sweepPods/10)
		row, peak, err := st.sweep(ctx, env, o.sweepPods)
		peaks["row 6"] = peak
		if err != nil {
			return rows, fmt.Errorf("row 6: %w", err)
		}
		rows = append(rows, row)
	}
	if want(8) {
		peak := 0.0
		var during []string
		for _, k := range slices.Sorted(maps.Keys(peaks)) {
			peak = max(peak, peaks[k])
			during = append(during, fmt.Sprintf("%s %.1f", k, peaks[k]))
		}
		rows = append(rows, Row{
			N: 8, Name: "function RSS",
			Result: fmt.Sprintf("idle %.1f MiB (%.1f anonymous, %.1f the binary's pages), peak %.1f MiB (%s)", idle, idleAnon, idleFile, peak, strings.Join(during, ", ")),
			Target: "idle ≤ 40 MiB, peak ≤ 120 MiB",
			Met:    idle <= 40 && peak <= 120 && len(peaks) == 3,
			Values: map[string]any{"idleMiB": idle, "idleAnonMiB": idleAnon, "idleFileMiB": idleFile, "peakMiB": peak, "peaksMiB": peaks},
		})
	}
	return rows, nil
}

// unlimited is a clientset on cfg without client-go's client-side rate limit.
func unlimited(cfg *rest.Config) (kubernetes.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	client, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	return client, nil
}

// waitForWatch creates a managed probe pod and touches it until it carries the finalizer: the
// adapter announces nothing that existed before its watch started.
func (st *stack) waitForWatch(ctx context.Context) error {
	pods := st.client.CoreV1().Pods(st.ns)
	if _, err := pods.Create(ctx, cluster.PodSpec(st.ns, "watch-probe", true), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the watch probe pod: %w", err)
	}
	n := 0
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pod, err := pods.Get(ctx, "watch-probe", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if slices.Contains(pod.Finalizers, names.Finalizer) {
			return true, nil
		}
		n++
		_, err = pods.Patch(ctx, pod.Name, types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"labels":{"probe":"%d"}}}`, n), metav1.PatchOptions{})
		return false, err
	})
}

// createPods creates n pods named prefix-NNNN with `creators` workers; each is reported
// running at once (a kubelet's status write, so the start burst of update events is there),
// then handed to then (if not nil). It returns when all are created.
func createPods(ctx context.Context, c kubernetes.Interface, namespace, prefix string, n int, managed bool, finalizers []string, running bool, then func(*corev1.Pod)) error {
	var (
		wg    sync.WaitGroup
		next  = make(chan int)
		mu    sync.Mutex
		first error
	)
	for range creators {
		wg.Go(func() {
			for i := range next {
				pod := cluster.PodSpec(namespace, fmt.Sprintf("%s-%04d", prefix, i), managed)
				pod.Finalizers = finalizers
				created, err := c.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
				if err == nil && running {
					created, err = cluster.MarkRunning(ctx, c, created)
				}
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					continue
				}
				if then != nil {
					then(created)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// podTimes records, from a watch of a namespace, when each pod (by name) first showed a
// condition.
type podTimes struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (p *podTimes) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

func (p *podTimes) snapshot() map[string]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.seen)
}

// watchPods calls on for every pod event of the namespace (until ctx ends) and records the
// time of the first event for which on returns true.
func watchPods(ctx context.Context, c kubernetes.Interface, namespace string, on func(watch.EventType, *corev1.Pod) bool) (*podTimes, error) {
	w, err := c.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("watching pods of %s: %w", namespace, err)
	}
	p := &podTimes{seen: map[string]time.Time{}}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			now := time.Now()
			if on(ev.Type, pod) {
				p.mu.Lock()
				if _, done := p.seen[pod.Name]; !done {
					p.seen[pod.Name] = now
				}
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// waitCount polls until p has n pods or timeout passes.
func waitCount(ctx context.Context, p *podTimes, n int, timeout time.Duration, what string) error {
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return p.count() >= n, nil
	})
	if err != nil {
		return fmt.Errorf("%d of %d pods %s within %s: %w", p.count(), n, what, timeout, err)
	}
	return nil
}

func hasFinalizer(pod *corev1.Pod) bool { return slices.Contains(pod.Finalizers, names.Finalizer) }

// finalizersAtScale is row 3. The floor first: in a namespace no adapter watches, the same
// creators create n pods while one bare client-go loop (concurrency 1, as the adapter delivers
// events one at a time) sends each the function's own add-finalizer patch as soon as it
// exists. Then the function: the same creators in the watched namespace, the function adds the
// finalizers. Each is timed from the first create to the last finalizer.
func (st *stack) finalizersAtScale(ctx context.Context, env *machineEnv, n int) (Row, error) {
	floorNs, err := st.cp.NewNamespace(ctx, metav1.ObjectMeta{Name: "bench-floor"})
	if err != nil {
		return Row{}, err
	}
	// The floor.
	queue := make(chan *corev1.Pod, n)
	var patchErr error
	patched := make(chan struct{})
	go func() {
		defer close(patched)
		for pod := range queue {
			patch, err := drain.Patch(pod, drain.Decision{Action: drain.AddFinalizer, ManagedBy: names.AnnotationManaged})
			if err == nil {
				_, err = st.floor.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
			}
			patchErr = cmpErr(patchErr, err)
		}
	}()
	t0 := time.Now()
	if err := createPods(ctx, st.client, floorNs, "f", n, true, nil, true, func(p *corev1.Pod) { queue <- p }); err != nil {
		return Row{}, err
	}
	floorCreated := time.Since(t0)
	close(queue)
	<-patched
	floor := time.Since(t0)
	if patchErr != nil {
		return Row{}, fmt.Errorf("the floor's patches: %w", patchErr)
	}
	env.say("  floor: %d pods created in %s, all patched by the bare loop after %s", n, floorCreated.Round(time.Millisecond), floor.Round(time.Millisecond))

	// The function.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	got, err := watchPods(wctx, st.client, st.ns, func(t watch.EventType, p *corev1.Pod) bool {
		return t != watch.Deleted && strings.HasPrefix(p.Name, "p-") && hasFinalizer(p)
	})
	if err != nil {
		return Row{}, err
	}
	t0 = time.Now()
	if err := createPods(ctx, st.client, st.ns, "p", n, true, nil, true, nil); err != nil {
		return Row{}, err
	}
	created := time.Since(t0)
	if err := waitCount(ctx, got, n, 5*time.Minute, "got the finalizer"); err != nil {
		return Row{}, err
	}
	last := time.Duration(0)
	for _, at := range got.snapshot() {
		last = max(last, at.Sub(t0))
	}
	env.say("  function: %d pods created in %s, all carried the finalizer after %s", n, created.Round(time.Millisecond), last.Round(time.Millisecond))
	ratio := last.Seconds() / floor.Seconds()
	return Row{
		N: 3, Name: fmt.Sprintf("finalizers on %d new pods, real adapter", n),
		Result:   fmt.Sprintf("%.2f s (ratio %.2f)", last.Seconds(), ratio),
		Baseline: fmt.Sprintf("bare client-go loop: %.2f s", floor.Seconds()),
		Target:   "ratio ≤ 1.3",
		Met:      ratio <= 1.3,
		Values: map[string]any{
			"seconds": last.Seconds(), "floorSeconds": floor.Seconds(), "ratio": ratio,
			"createSeconds": created.Seconds(), "floorCreateSeconds": floorCreated.Seconds(), "pods": n,
		},
	}, nil
}

// releaseLag is row 4: the n pods of row 3 evicted at once with a 5 s grace period (the
// function's gracePeriodSeconds too). A kubelet played here reports each pod's containers
// stopped at its deletionTimestamp and sends the final grace-0 DELETE once the finalizer is
// gone. A pod is due at its deletionTimestamp (its eviction + 5 s, by the API server's clock
// and its whole seconds, as the function reads it) or when its containers were reported
// stopped, whichever is later; the lag is the finalizer's removal (seen by a watch) minus that.
func (st *stack) releaseLag(ctx context.Context, env *machineEnv, n int) (Row, error) {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu        sync.Mutex
		scheduled = map[string]bool{}
		killAt    = map[string]time.Time{}
		stoppedAt = map[string]time.Time{}
		finished  = map[string]bool{}
		kubeErr   error
	)
	kubelet := func(t watch.EventType, p *corev1.Pod) {
		if t == watch.Deleted || p.DeletionTimestamp == nil || !strings.HasPrefix(p.Name, "p-") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !scheduled[p.Name] {
			scheduled[p.Name] = true
			killAt[p.Name] = p.DeletionTimestamp.Time
			pod := p.DeepCopy()
			time.AfterFunc(time.Until(pod.DeletionTimestamp.Time), func() {
				_, err := cluster.MarkStopped(wctx, st.client, pod)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					kubeErr = cmpErr(kubeErr, err)
					return
				}
				stoppedAt[pod.Name] = time.Now()
			})
		}
		if !hasFinalizer(p) && len(p.Finalizers) == 0 && !finished[p.Name] {
			finished[p.Name] = true
			pod := p.DeepCopy()
			go func() {
				if err := cluster.FinishDeletion(wctx, st.client, pod); err != nil && wctx.Err() == nil {
					mu.Lock()
					kubeErr = cmpErr(kubeErr, err)
					mu.Unlock()
				}
			}()
		}
	}
	released, err := watchPods(wctx, st.client, st.ns, func(t watch.EventType, p *corev1.Pod) bool {
		kubelet(t, p)
		return strings.HasPrefix(p.Name, "p-") && p.DeletionTimestamp != nil && (t == watch.Deleted || !hasFinalizer(p))
	})
	if err != nil {
		return Row{}, err
	}
	var emu sync.Mutex
	var evictErr error
	var wg sync.WaitGroup
	next := make(chan int)
	t0 := time.Now()
	for range creators {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("p-%04d", i)
				err := cluster.Evict(ctx, st.client, st.ns, name, ptr.To[int64](graceSeconds))
				emu.Lock()
				evictErr = cmpErr(evictErr, err)
				emu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if evictErr != nil {
		return Row{}, evictErr
	}
	env.say("  %d evictions sent in %s", n, time.Since(t0).Round(time.Millisecond))
	if err := waitCount(ctx, released, n, 5*time.Minute, "released"); err != nil {
		return Row{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	if kubeErr != nil {
		return Row{}, fmt.Errorf("the played kubelet: %w", kubeErr)
	}
	var lags []time.Duration
	early := 0
	for name, at := range released.snapshot() {
		due := killAt[name]
		if s, ok := stoppedAt[name]; !ok {
			early++ // released before its containers were reported stopped
		} else if s.After(due) {
			due = s
		}
		lags = append(lags, at.Sub(due))
	}
	slices.Sort(lags)
	p50, p99, worst := quantile(lags, 0.5), quantile(lags, 0.99), lags[len(lags)-1]
	env.say("  release lag p50 %s, p99 %s, max %s, min %s; %d released before their containers stopped", ms(p50), ms(p99), ms(worst), ms(lags[0]), early)
	return Row{
		N: 4, Name: fmt.Sprintf("release lag, %d pods evicted at once, %d s grace", n, graceSeconds),
		Result: fmt.Sprintf("p50 %s, p99 %s, max %s", ms(p50), ms(p99), ms(worst)),
		Target: "p99 ≤ 1 s",
		Met:    p99 <= time.Second && early == 0,
		Values: map[string]any{"p50Ms": ms64(p50), "p99Ms": ms64(p99), "maxMs": ms64(worst), "minMs": ms64(lags[0]),
			"pods": len(lags), "releasedBeforeStopped": early},
	}, nil
}

// writesRow is row 5: the function's own count of its API requests (its client's transport,
// vpagracefuldrain_api_requests_total) over rows 3 and 4, per pod. Writes to the pod (patch)
// are the lifecycle's: add, drain stamp, release. The Kubernetes Events (create: DrainStarted,
// DrainCompleted) are counted beside them, not among them.
func writesRow(before, after metrics, n int) Row {
	d := diff(before.byLabels(apiRequests, "verb", "code"), after.byLabels(apiRequests, "verb", "code"))
	writes, rejected, reads, events := 0.0, 0.0, 0.0, 0.0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		verb, code, _ := strings.Cut(k, " ")
		v := d[k]
		parts = append(parts, fmt.Sprintf("%s %s: %.0f", verb, code, v))
		switch {
		case verb == "get" || verb == "list" || verb == "watch":
			reads += v
		case verb == "create" && strings.HasPrefix(code, "2"):
			events += v
		case strings.HasPrefix(code, "2"):
			writes += v
		default:
			rejected += v
		}
	}
	per := func(v float64) float64 { return v / float64(n) }
	return Row{
		N: 5, Name: "API writes per pod lifecycle (add, drain, release)",
		Result: fmt.Sprintf("%.2f pod writes, %.2f rejected, %.2f reads; %.2f Events per pod",
			per(writes), per(rejected), per(reads), per(events)),
		Target: "≤ 3 successful, 0 rejected",
		Met:    per(writes) <= 3 && rejected == 0,
		Values: map[string]any{"podWritesPerPod": per(writes), "rejectedPerPod": per(rejected), "readsPerPod": per(reads),
			"eventsPerPod": per(events), "requests": d, "requestsByVerbAndCode": strings.Join(parts, ", "), "pods": n},
	}
}

// sweep is row 6: sweepPods pods in a namespace no adapter watches, a tenth of them managed
// and already holding the finalizer (the steady state), then one sweep asked for with a
// sweep event; its duration and pods come from the function's metrics.
func (st *stack) sweep(ctx context.Context, env *machineEnv, total int) (Row, float64, error) {
	ns, err := st.cp.NewNamespace(ctx, metav1.ObjectMeta{Name: "bench-sweep"})
	if err != nil {
		return Row{}, 0, err
	}
	t0 := time.Now()
	managed := total / 10
	if err := createPods(ctx, st.client, ns, "m", managed, true, []string{names.Finalizer}, false, nil); err != nil {
		return Row{}, 0, err
	}
	if err := createPods(ctx, st.client, ns, "u", total-managed, false, nil, false, nil); err != nil {
		return Row{}, 0, err
	}
	env.say("  %d pods created in %s", total, time.Since(t0).Round(time.Millisecond))
	before, err := scrape(ctx, st.fn.URL())
	if err != nil {
		return Row{}, 0, err
	}
	peak := watchPeak(st.fn.Pid())
	if err := postSweep(ctx, st.fn.URL()); err != nil {
		return Row{}, peak.peakMiB(), err
	}
	var after metrics
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		m, err := scrape(ctx, st.fn.URL())
		if err != nil {
			return false, err
		}
		after = m
		return m.sum(sweepsTotal, nil) > before.sum(sweepsTotal, nil), nil
	})
	peakMiB := peak.peakMiB()
	if err != nil {
		return Row{}, peakMiB, fmt.Errorf("waiting for the sweep: %w", err)
	}
	took := after.sum(sweepDuration, nil) - before.sum(sweepDuration, nil)
	pods := after.sum(sweepPods, nil) - before.sum(sweepPods, nil)
	failed := after.sum(sweepsTotal, map[string]string{"result": "failed"}) - before.sum(sweepsTotal, map[string]string{"result": "failed"})
	reqs := diff(before.byLabels(apiRequests, "verb", "code"), after.byLabels(apiRequests, "verb", "code"))
	count := 0.0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(reqs)) {
		count += reqs[k]
		parts = append(parts, fmt.Sprintf("%s %.0f", k, reqs[k]))
	}
	env.say("  sweep of %.0f pods took %.2f s, %.0f API requests (%s), peak RSS %.1f MiB", pods, took, count, strings.Join(parts, ", "), peakMiB)
	return Row{
		N: 6, Name: fmt.Sprintf("one sweep, %d pods (%d managed)", total, managed),
		Result: fmt.Sprintf("%.2f s, %.0f API requests, peak RSS %.1f MiB", took, count, peakMiB),
		Target: "< 10 s, < 100 MiB",
		Met:    failed == 0 && pods >= float64(total) && took < 10 && peakMiB < 100,
		Values: map[string]any{"seconds": took, "apiRequests": reqs, "apiRequestCount": count, "podsSwept": pods, "peakRSSMiB": peakMiB},
	}, peakMiB, nil
}

// postSweep posts a sweep request event to the function (202: the sweep is on its way).
func postSweep(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Type", names.TypeSweep)
	req.Header.Set("Ce-Source", "bench")
	req.Header.Set("Ce-Id", fmt.Sprint(time.Now().UnixNano()))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("posting a sweep event: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("posting a sweep event: %s, want 202", resp.Status)
	}
	return nil
}

// coldStartRow is row 7: the function (with its cluster, as deployed) and the floor server,
// each started o.starts times.
func coldStartRow(ctx context.Context, env *machineEnv, o options, st *stack) (Row, error) {
	fn, err := coldStarts(ctx, o.starts, env.fn, nil, st.fnEnv, filepath.Join(env.dir, "cold-start.log"))
	if err != nil {
		return Row{}, err
	}
	floor, err := coldStarts(ctx, o.starts, env.floor, []string{floorFlag}, nil, "")
	if err != nil {
		return Row{}, err
	}
	med, floorMed := quantile(fn, 0.5), quantile(floor, 0.5)
	return Row{
		N: 7, Name: fmt.Sprintf("cold start to readiness 200, median of %d", o.starts),
		Result:   fmt.Sprintf("%s (min %s, max %s)", ms(med), ms(fn[0]), ms(fn[len(fn)-1])),
		Baseline: fmt.Sprintf("bare Go server: %s", ms(floorMed)),
		Target:   "≤ 100 ms",
		Met:      med <= 100*time.Millisecond,
		Values:   map[string]any{"medianMs": ms64(med), "minMs": ms64(fn[0]), "maxMs": ms64(fn[len(fn)-1]), "floorMedianMs": ms64(floorMed), "starts": o.starts},
	}, nil
}
