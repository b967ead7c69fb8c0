// Command soak runs the function for a long time against a real etcd and kube-apiserver,
// through the real Knative ApiServerSource adapter, under steady churn of managed pods: it
// keeps about 50 of them alive, and every second creates a few and evicts a few of the oldest
// (grace 2 s), playing the kubelet (containers stopped at the deletionTimestamp, the final
// grace-0 DELETE once the finalizer is gone), so pods flow through add -> drain -> release ->
// gone all the time. Every minute it prints the function process's RSS, threads and
// goroutines, the pods created and released, the pods stranded (drain past its deadline + 5 s
// and the finalizer still there) and how late the releases of the last minute came; at the end
// a summary. It fails (exit 1) if a pod was stranded or the RSS grew by more than 50% from
// the 2-minute mark to the end. Run it with `make soak DURATION=30m`.
//
// Goroutines: the function exposes no count and nothing is added to it for the soak. The
// function runs with GODEBUG=schedtrace=5000,scheddetail=1: the Go runtime itself prints every
// goroutine's state on stderr every 5 s, and the soak counts the live ones (the runtime's own
// goroutines included) in the latest complete dump.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"function/names"
	"function/test/cluster"
)

const (
	graceSeconds  = 2                // the function's gracePeriodSeconds and the evictions' grace period
	drainTimeout  = 20 * time.Second // the function's drainTimeoutSeconds
	sweepSeconds  = 30               // the function's sweepIntervalSeconds
	strandedAfter = 5 * time.Second  // a drain still holding the finalizer this long after its deadline is stranded
	slowAdd       = 5 * time.Second  // a pod without the finalizer this long after its creation is counted
	schedTraceMs  = 5000             // GODEBUG=schedtrace period of the function process
	maxRSSGrowth  = 0.5              // from the 2-minute mark to the end
)

func main() {
	duration := flag.Duration("duration", 30*time.Minute, "how long to churn pods")
	alive := flag.Int("pods", 50, "managed pods kept alive (not deleting)")
	rate := flag.Int("rate", 3, "pods created and pods evicted every second")
	flag.Parse()
	if *duration <= 0 || *alive <= 0 || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "soak: -duration, -pods and -rate must be positive")
		os.Exit(2)
	}
	code, err := run(*duration, *alive, *rate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak failed:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(duration time.Duration, target, rate int) (int, error) {
	begin := time.Now()
	say := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	ctx := context.Background()

	say("starting etcd and kube-apiserver (from bin/)")
	cp, err := cluster.NewControlPlane()
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		say("cleaned up: adapter, function, kube-apiserver and etcd stopped")
	}()
	disarm := cp.StopOnAbort()
	defer func() { disarm() }()

	ns, err := cp.NewNamespace(ctx, metav1.ObjectMeta{Name: "soak"})
	if err != nil {
		return 1, err
	}
	dir, err := os.MkdirTemp("", "vpagd-soak-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	say("building the function (cmd/vpa-graceful-drain)")
	bin, err := cluster.BuildFunction(dir)
	if err != nil {
		return 1, err
	}
	env := []string{
		fmt.Sprintf("gracePeriodSeconds=%d", graceSeconds),
		fmt.Sprintf("drainTimeoutSeconds=%d", int(drainTimeout.Seconds())),
		fmt.Sprintf("sweepIntervalSeconds=%d", sweepSeconds),
		"LOG_LEVEL=info", // as deployed; the harness keeps the function's output in memory
		fmt.Sprintf("GODEBUG=schedtrace=%d,scheddetail=1", schedTraceMs),
	}
	env = append(env, cluster.BarePods...) // the churned pods have no owner
	st, err := cluster.NewStack(cp, bin, ns, "Resource", env...)
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := st.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	fn := st.Function
	say("function pid %d serving on %s (%s); ApiServerSource adapter watching pods in %q",
		fn.Pid(), fn.Addr, strings.Join(env[:3], " "), ns)

	s := newSoak(cp.Client, ns, begin)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := s.watch(watchCtx); err != nil {
		return 1, err
	}
	defer s.closing.Store(true)

	// From here a signal ends the churn and goes to the summary; the control plane's own
	// abort handler comes back for the wind-down and the cleanup (a second signal: stop now).
	sigCtx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	disarm()
	disarm = func() {}

	say("creating %d managed pods", target)
	for range target {
		s.create(sigCtx)
	}
	if err := s.waitForFinalizers(sigCtx, 60*time.Second); err != nil && sigCtx.Err() == nil {
		return 1, err
	}
	say("churn: %d managed pods alive; every second %d created and %d of the oldest evicted (grace %ds); the soak plays the kubelet",
		target, rate, rate, graceSeconds)

	g := &schedScraper{proc: fn.Process}
	g.waitFirst(time.Duration(schedTraceMs+5000) * time.Millisecond)
	var samples []sample
	start := time.Now()
	s.setStart(start)
	fmt.Printf("%-9s %10s %8s %11s %8s %9s %9s  %s\n", "elapsed", "rss", "threads", "goroutines", "created", "released", "stranded", "release lateness, last minute")
	samples = append(samples, s.report("", time.Since(start), fn, g))

	interrupted := false
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	next := start.Add(time.Minute)
	end := start.Add(duration)
churn:
	for {
		select {
		case <-sigCtx.Done():
			interrupted = true
			break churn
		case <-ticker.C:
		}
		if fn.Exited() || st.Adapter.Exited() {
			return 1, fmt.Errorf("a process ended during the soak\nfunction (tail):\n%s\nadapter (tail):\n%s",
				tail(fn.Output(), 30), tail(st.Adapter.Output(), 30))
		}
		now := time.Now()
		if !now.Before(end) {
			break
		}
		s.tick(sigCtx, target, rate)
		if now = time.Now(); !now.Before(next) {
			samples = append(samples, s.report("", now.Sub(start), fn, g))
			next = next.Add(time.Minute)
		}
	}
	stopSignals()
	disarm = cp.StopOnAbort()

	if interrupted {
		fmt.Printf("interrupted after %s: no wind-down\n", fmtDur(time.Since(start)))
	} else {
		samples = append(samples, s.report("", time.Since(start), fn, g))
		if left := s.windDown(drainTimeout + strandedAfter + 10*time.Second); left > 0 {
			fmt.Printf("wind-down: %d evicted pod(s) still not gone\n", left)
		}
	}
	samples = append(samples, s.report("end", time.Since(start), fn, g))
	failed := s.summary(samples, time.Since(start), target, rate, interrupted)
	switch {
	case failed:
		return 1, nil
	case interrupted:
		return 130, nil
	}
	return 0, nil
}

// pod is what the soak knows about one pod it created.
type pod struct {
	uid         types.UID
	created     time.Time
	finalizerAt time.Time // first seen with the finalizer
	evictedAt   time.Time // eviction asked
	stopping    bool      // the kubelet's stop is scheduled
	stoppedAt   time.Time // first seen with every container terminated
	started     time.Time // drain-started annotation
	deadline    time.Time // drain-deadline annotation
	releasedAt  time.Time // first seen deleting without the finalizer
	finishAt    time.Time // last final DELETE sent
	stranded    bool
	slowAdd     bool
	early       bool
}

type soak struct {
	client  kubernetes.Interface
	ns      string
	begin   time.Time
	closing atomic.Bool

	mu        sync.Mutex
	start     time.Time
	pods      map[string]*pod
	seq       int
	created   int
	evicted   int
	released  int
	gone      int
	stranded  int
	slowAdds  int
	early     int
	window    []time.Duration // release lateness since the last report
	lateness  []time.Duration // all of them
	errCounts map[string]int
	lastErr   map[string]string
}

func newSoak(client kubernetes.Interface, ns string, begin time.Time) *soak {
	return &soak{client: client, ns: ns, begin: begin, pods: map[string]*pod{}, errCounts: map[string]int{}, lastErr: map[string]string{}}
}

func (s *soak) setStart(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.start = t
}

// watch follows the namespace's pods with an informer (it relists and rewatches by itself).
func (s *soak) watch(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(s.ns))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.observe(obj) },
		UpdateFunc: func(_, obj any) { s.observe(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				s.deleted(p)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	factory.Start(ctx.Done())
	for t, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("pod informer %v never synced", t)
		}
	}
	return nil
}

func (s *soak) fail(what string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errCounts[what]++
	s.lastErr[what] = err.Error()
}

// create makes one managed pod and reports its containers running.
func (s *soak) create(ctx context.Context) {
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("soak-%06d", s.seq)
	p := &pod{created: time.Now()}
	s.pods[name] = p // before the API call: the watch may see it first
	s.mu.Unlock()
	created, err := s.client.CoreV1().Pods(s.ns).Create(ctx, cluster.PodSpec(s.ns, name, true), metav1.CreateOptions{})
	if err != nil {
		s.mu.Lock()
		delete(s.pods, name)
		s.mu.Unlock()
		if ctx.Err() == nil {
			s.fail("create", err)
		}
		return
	}
	s.mu.Lock()
	p.uid = created.UID
	s.created++
	s.mu.Unlock()
	if _, err := cluster.MarkRunning(ctx, s.client, created); err != nil && ctx.Err() == nil {
		s.fail("mark running", err)
	}
}

func (s *soak) waitForFinalizers(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		missing := 0
		for _, p := range s.pods {
			if p.finalizerAt.IsZero() {
				missing++
			}
		}
		s.mu.Unlock()
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pod(s) without the finalizer after %s", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tick is one second of churn: rate new pods, then the oldest pods that hold the finalizer
// are evicted until target are alive, then the checks.
func (s *soak) tick(ctx context.Context, target, rate int) {
	for range rate {
		s.create(ctx)
	}
	s.mu.Lock()
	alive := 0
	var candidates []string
	for name, p := range s.pods {
		if p.evictedAt.IsZero() {
			alive++
			if !p.finalizerAt.IsZero() {
				candidates = append(candidates, name)
			}
		}
	}
	slices.Sort(candidates) // names are in creation order
	n := min(alive-target, 2*rate, len(candidates))
	victims := candidates[:max(n, 0)]
	now := time.Now()
	for _, name := range victims {
		s.pods[name].evictedAt = now
	}
	s.mu.Unlock()
	for _, name := range victims {
		err := cluster.Evict(ctx, s.client, s.ns, name, ptr.To[int64](graceSeconds))
		s.mu.Lock()
		if err == nil {
			s.evicted++
		} else if p := s.pods[name]; p != nil && p.stoppedAt.IsZero() && !p.stopping {
			p.evictedAt = time.Time{} // not evicted: a candidate again
		}
		s.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.fail("evict", err)
		}
	}
	s.check(time.Now())
}

// check counts stranded drains and slow finalizer adds, and sends the final DELETE again for
// released pods that are still there.
func (s *soak) check(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.pods {
		if p.finalizerAt.IsZero() && !p.slowAdd && now.Sub(p.created) > slowAdd {
			p.slowAdd = true
			s.slowAdds++
		}
		if !p.evictedAt.IsZero() && p.releasedAt.IsZero() && !p.stranded {
			deadline := p.deadline
			if deadline.IsZero() {
				deadline = p.evictedAt.Add(drainTimeout)
			}
			if now.After(deadline.Add(strandedAfter)) {
				p.stranded = true
				s.stranded++
				fmt.Printf("%9s STRANDED %s: drain deadline %s passed %s ago and it still holds %s\n",
					fmtDur(now.Sub(s.start)), name, deadline.Format("15:04:05"), now.Sub(deadline).Round(time.Second), names.Finalizer)
			}
		}
		if !p.releasedAt.IsZero() && now.Sub(p.finishAt) > 10*time.Second {
			p.finishAt = now
			go s.finish(name, p.uid)
		}
	}
}

// observe follows a pod's way: finalizer added, drain stamped, containers stopped (the soak's
// kubelet stops them at the deletionTimestamp), finalizer removed (then the final DELETE).
func (s *soak) observe(obj any) {
	pp, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[pp.Name]
	if p == nil || (p.uid != "" && p.uid != pp.UID) {
		return
	}
	has := slices.Contains(pp.Finalizers, names.Finalizer)
	if has && p.finalizerAt.IsZero() {
		p.finalizerAt = now
	}
	if t, err := time.Parse(time.RFC3339, pp.Annotations[names.AnnotationDrainStarted]); err == nil {
		p.started = t
	}
	if t, err := time.Parse(time.RFC3339, pp.Annotations[names.AnnotationDrainDeadline]); err == nil {
		p.deadline = t
	}
	if p.stoppedAt.IsZero() && containersStopped(pp) {
		p.stoppedAt = now
	}
	if pp.DeletionTimestamp == nil {
		return
	}
	if p.evictedAt.IsZero() {
		p.evictedAt = now
	}
	if !p.stopping {
		p.stopping = true
		s.stopAt(pp)
	}
	if !has && !p.finalizerAt.IsZero() && p.releasedAt.IsZero() {
		s.releasedLocked(pp.Name, p, now)
	}
}

// releasedLocked records a release and its lateness: how long after it was due (grace over and
// containers stopped) it came.
func (s *soak) releasedLocked(name string, p *pod, now time.Time) {
	p.releasedAt = now
	p.finishAt = now
	s.released++
	started := p.started
	if started.IsZero() {
		started = p.evictedAt
	}
	due := started.Add(graceSeconds * time.Second)
	if p.stoppedAt.After(due) {
		due = p.stoppedAt
	}
	timeout := !p.deadline.IsZero() && !now.Before(p.deadline)
	if (p.stoppedAt.IsZero() || now.Before(started.Add(graceSeconds*time.Second))) && !timeout {
		p.early = true
		s.early++
		fmt.Printf("%9s EARLY %s: finalizer removed before the grace period ended and the containers stopped\n", fmtDur(now.Sub(s.start)), name)
	}
	late := now.Sub(due)
	s.window = append(s.window, late)
	s.lateness = append(s.lateness, late)
	go s.finish(name, p.uid)
}

func (s *soak) deleted(pp *corev1.Pod) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[pp.Name]
	if p == nil || (p.uid != "" && p.uid != pp.UID) {
		return
	}
	if p.releasedAt.IsZero() && !p.finalizerAt.IsZero() {
		s.releasedLocked(pp.Name, p, now) // the watch skipped the release (a relist)
	}
	s.gone++
	delete(s.pods, pp.Name)
}

// stopAt reports the pod's containers terminated at its deletionTimestamp, as the kubelet does
// once it killed them.
func (s *soak) stopAt(pp *corev1.Pod) {
	time.AfterFunc(time.Until(pp.DeletionTimestamp.Time), func() {
		if s.closing.Load() {
			return
		}
		if _, err := cluster.MarkStopped(context.Background(), s.client, pp); err != nil && !apierrors.IsNotFound(err) {
			s.fail("kubelet: mark stopped", err)
		}
	})
}

// finish is the kubelet's final grace-0 DELETE.
func (s *soak) finish(name string, uid types.UID) {
	if s.closing.Load() {
		return
	}
	pp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name, UID: uid}}
	if err := cluster.FinishDeletion(context.Background(), s.client, pp); err != nil && !apierrors.IsNotFound(err) {
		s.fail("kubelet: final delete", err)
	}
}

// windDown waits until every evicted pod is gone (or stranded) or the timeout passes; it
// returns how many evicted pods are left.
func (s *soak) windDown(timeout time.Duration) int {
	from := time.Now()
	pending := func() (n int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range s.pods {
			if !p.evictedAt.IsZero() && !p.stranded {
				n++
			}
		}
		return n
	}
	fmt.Printf("wind-down: creating and evicting stopped; %d drain(s) in flight\n", pending())
	for time.Since(from) < timeout {
		s.check(time.Now())
		if pending() == 0 {
			fmt.Printf("wind-down: every evicted pod released and gone after %s\n", time.Since(from).Round(100*time.Millisecond))
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	left := 0
	for _, p := range s.pods {
		if !p.evictedAt.IsZero() {
			left++
		}
	}
	return left
}

type sample struct {
	at         time.Duration
	rssKiB     int64 // -1: unknown
	threads    int   // -1: unknown
	goroutines int   // -1: unknown
}

// report prints one line: the function's RSS, threads and goroutines, the totals, and the
// release lateness since the last line.
func (s *soak) report(label string, elapsed time.Duration, fn *cluster.Function, g *schedScraper) sample {
	smp := sample{at: elapsed, rssKiB: -1, threads: -1, goroutines: g.sample()}
	if rss, threads, err := procStatus(fn.Pid()); err == nil {
		smp.rssKiB, smp.threads = rss, threads
	}
	s.mu.Lock()
	window := s.window
	s.window = nil
	created, released, stranded := s.created, s.released, s.stranded
	s.mu.Unlock()
	if label == "" {
		label = fmtDur(elapsed)
	} else {
		label = label + " " + fmtDur(elapsed)
	}
	late := "no releases"
	if len(window) > 0 {
		late = fmt.Sprintf("p50 %s  max %s  (%d)", fmtMs(percentile(window, 0.5)), fmtMs(percentile(window, 1)), len(window))
	}
	fmt.Printf("%-9s %10s %8s %11s %8d %9d %9d  %s\n", label, fmtRSS(smp.rssKiB), fmtInt(smp.threads), fmtInt(smp.goroutines), created, released, stranded, late)
	return smp
}

// summary prints the totals and the verdict; it reports whether the soak failed.
func (s *soak) summary(samples []sample, elapsed time.Duration, target, rate int, interrupted bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Printf("\nsummary after %s of churn (%d managed pods alive, %d created and %d evicted a second; grace %ds, drain timeout %s):\n",
		fmtDur(elapsed), target, rate, rate, graceSeconds, drainTimeout)
	first, last := samples[0], samples[len(samples)-1]
	var rssMax int64 = -1
	threadsMax, goroutinesMax := -1, -1
	for _, smp := range samples {
		rssMax = max(rssMax, smp.rssKiB)
		threadsMax = max(threadsMax, smp.threads)
		goroutinesMax = max(goroutinesMax, smp.goroutines)
	}
	fmt.Printf("  function RSS        first %s  last %s  max %s\n", fmtRSS(first.rssKiB), fmtRSS(last.rssKiB), fmtRSS(rssMax))
	fmt.Printf("  function threads    first %s  last %s  max %s\n", fmtInt(first.threads), fmtInt(last.threads), fmtInt(threadsMax))
	fmt.Printf("  function goroutines first %s  last %s  max %s  (live ones in the runtime's GODEBUG=scheddetail dump, its own included)\n",
		fmtInt(first.goroutines), fmtInt(last.goroutines), fmtInt(goroutinesMax))
	alive := 0
	for _, p := range s.pods {
		if p.evictedAt.IsZero() {
			alive++
		}
	}
	fmt.Printf("  pods                created %d, evicted %d, released %d, gone %d; %d alive at the end\n", s.created, s.evicted, s.released, s.gone, alive)
	if len(s.lateness) > 0 {
		fmt.Printf("  release lateness    p50 %s  p99 %s  max %s  over %d releases (after the grace period ended and the containers stopped)\n",
			fmtMs(percentile(s.lateness, 0.5)), fmtMs(percentile(s.lateness, 0.99)), fmtMs(percentile(s.lateness, 1)), len(s.lateness))
	}
	fmt.Printf("  stranded            %d (drain past its deadline + %s, finalizer still there)\n", s.stranded, strandedAfter)
	fmt.Printf("  early releases      %d; finalizer added later than %s: %d\n", s.early, slowAdd, s.slowAdds)
	if len(s.errCounts) == 0 {
		fmt.Println("  API errors          none")
	}
	for _, what := range slices.Sorted(maps.Keys(s.errCounts)) {
		fmt.Printf("  API errors          %s: %d (last: %s)\n", what, s.errCounts[what], s.lastErr[what])
	}

	var problems, notes []string
	if s.stranded > 0 {
		problems = append(problems, fmt.Sprintf("%d pod(s) stranded", s.stranded))
	} else {
		notes = append(notes, "no pod stranded")
	}
	var at2m *sample
	for i := range samples {
		if samples[i].at >= 2*time.Minute {
			at2m = &samples[i]
			break
		}
	}
	switch {
	case at2m == nil || at2m == &samples[len(samples)-1] || elapsed < 3*time.Minute:
		notes = append(notes, "RSS growth not checked: the run is shorter than 3 minutes")
	case at2m.rssKiB <= 0 || last.rssKiB <= 0:
		problems = append(problems, "the function's RSS could not be read")
	default:
		growth := float64(last.rssKiB-at2m.rssKiB) / float64(at2m.rssKiB)
		msg := fmt.Sprintf("RSS %+.0f%% from the 2-minute mark (%s) to the end (%s), limit +%.0f%%",
			100*growth, fmtRSS(at2m.rssKiB), fmtRSS(last.rssKiB), 100*maxRSSGrowth)
		if growth > maxRSSGrowth {
			problems = append(problems, msg)
		} else {
			notes = append(notes, msg)
		}
	}
	if interrupted {
		notes = append(notes, "interrupted before the end")
	}
	if len(problems) > 0 {
		fmt.Printf("FAIL: %s\n", strings.Join(append(problems, notes...), "; "))
		return true
	}
	fmt.Printf("PASS: %s\n", strings.Join(notes, "; "))
	return false
}

// procStatus reads VmRSS (KiB) and Threads from /proc/PID/status.
func procStatus(pid int) (rssKiB int64, threads int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	rssKiB, threads = -1, -1
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
		case "Threads":
			threads, _ = strconv.Atoi(f[0])
		}
	}
	if rssKiB < 0 || threads < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS or Threads", pid)
	}
	return rssKiB, threads, nil
}

// schedScraper counts the live goroutines in the Go runtime's scheduler dumps
// (GODEBUG=schedtrace=N,scheddetail=1) in a process's output: a "SCHED ..." line, then one
// "  P..", "  M.." and "  G<id>: status=<n>(...)" line per P, M and goroutine. Idle (0), dead
// (6) and dead-extra (11) goroutine records are not counted.
type schedScraper struct {
	proc     *cluster.Process
	off      int
	inDump   bool
	cur      int
	headerAt time.Time // when the current dump's header was read
	last     int       // live goroutines in the latest complete dump; -1 before one
	seen     bool
}

var gLine = regexp.MustCompile(`^\s+G\d+: status=(\d+)`)

func (g *schedScraper) update() {
	out := g.proc.Output()
	if len(out) < g.off {
		g.off = 0
	}
	chunk := out[g.off:]
	i := strings.LastIndexByte(chunk, '\n')
	if i < 0 {
		return
	}
	g.off += i + 1
	for line := range strings.SplitSeq(chunk[:i], "\n") {
		if strings.HasPrefix(line, "SCHED ") {
			g.finish()
			// The runtime dumps once before main runs (SCHED 0ms): not a picture of the function.
			ms, _, _ := strings.Cut(strings.TrimPrefix(line, "SCHED "), "ms:")
			n, err := strconv.Atoi(ms)
			g.inDump, g.cur, g.headerAt = err == nil && n >= 1000, 0, time.Now()
			continue
		}
		if !g.inDump {
			continue
		}
		if m := gLine.FindStringSubmatch(line); m != nil {
			st, _ := strconv.Atoi(m[1])
			switch st &^ 0x1000 { // without the scan bit
			case 0, 6, 11: // idle, dead, a cgo extra M's (dead) g
			default:
				g.cur++
			}
		}
	}
}

func (g *schedScraper) finish() {
	if g.inDump {
		g.last, g.seen, g.inDump = g.cur, true, false
	}
}

// sample returns the live goroutines of the latest complete dump (-1 if none). A dump is
// written within a millisecond or so: one whose header was read 250 ms ago is complete.
func (g *schedScraper) sample() int {
	g.update()
	if g.inDump {
		time.Sleep(300 * time.Millisecond)
		g.update()
		if g.inDump && time.Since(g.headerAt) >= 250*time.Millisecond {
			g.finish()
		}
	}
	if !g.seen {
		return -1
	}
	return g.last
}

func (g *schedScraper) waitFirst(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if g.sample() >= 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// containersStopped: every container reported terminated.
func containersStopped(p *corev1.Pod) bool {
	if len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Terminated == nil {
			return false
		}
	}
	return true
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func fmtDur(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%dms", d.Round(time.Millisecond).Milliseconds())
}

func fmtRSS(kib int64) string {
	if kib < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

func fmtInt(n int) string {
	if n < 0 {
		return "?"
	}
	return strconv.Itoa(n)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
