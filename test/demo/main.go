// Command demo shows one VPA-style eviction end to end on this machine: a real etcd and
// kube-apiserver, the real Knative ApiServerSource adapter, and the function as `make run`
// serves it. It evicts one pod of a small vpa-managed set through the Eviction API, plays the
// kubelet, prints a timeline, and cleans everything up. Run it with `make demo`.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"

	"function/eventing"
	"function/names"
	"function/test/cluster"
)

const (
	functionGrace = 3 // gracePeriodSeconds of the function
	evictionGrace = 6 // the pod's grace period: the kubelet stops it 6 s after eviction
	pods          = 3
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type timeline struct{ start time.Time }

func (t timeline) say(format string, args ...any) {
	fmt.Printf("[%5.1fs] %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

func run() error {
	tl := timeline{start: time.Now()}
	ctx := context.Background()
	tl.say("starting etcd and kube-apiserver %s (from bin/)", "v1.37.2")
	cp, err := cluster.NewControlPlane()
	if err != nil {
		return err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		tl.say("cleaned up: adapter, function, kube-apiserver and etcd stopped")
	}()
	defer cp.StopOnAbort()()
	ns, err := cp.NewNamespace(ctx, metav1.ObjectMeta{Name: "demo"})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vpagd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tl.say("building the function (cmd/vpa-graceful-drain, kn func's scaffolding)")
	bin, err := cluster.BuildFunction(dir)
	if err != nil {
		return err
	}
	s, err := cluster.NewStack(cp, bin, ns, "Resource", append([]string{fmt.Sprintf("gracePeriodSeconds=%d", functionGrace), "drainTimeoutSeconds=60"}, cluster.BarePods...)...)
	if err != nil {
		return err
	}
	defer s.Close()
	tl.say("function serving on %s (gracePeriodSeconds=%d, drainTimeoutSeconds=60); ApiServerSource adapter watching pods in %q", s.Function.Addr, functionGrace, ns)

	podNames := make([]string, pods)
	for i := range podNames {
		pod := cluster.PodSpec(ns, fmt.Sprintf("web-7d9f8-%d", i), true)
		pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](evictionGrace)
		created, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating pod: %w", err)
		}
		if _, err := cluster.MarkRunning(ctx, cp.Client, created); err != nil {
			return err
		}
		podNames[i] = created.Name
	}
	tl.say("created %s with annotation vpa-managed: \"true\", containers running", strings.Join(podNames, ", "))
	for _, name := range podNames {
		if err := poll(10*time.Second, func() (bool, error) {
			pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && len(pod.Finalizers) > 0, err
		}); err != nil {
			return fmt.Errorf("%s never got the finalizer: %w", name, err)
		}
		tl.say("%s: finalizer %s added (reply %s)", name, names.Finalizer, names.ReplyFinalizerAdded)
	}

	victim := podNames[1]
	tl.say("%s: evicted through the Eviction API, as the VPA updater does (pod grace period %ds)", victim, evictionGrace)
	if err := cluster.Evict(ctx, cp.Client, ns, victim, nil); err != nil {
		return err
	}
	return follow(ctx, tl, s, victim)
}

// follow prints the drain of one pod as its state changes, playing the kubelet on the way.
func follow(ctx context.Context, tl timeline, s *cluster.Stack, name string) error {
	pods := s.CP.Client.CoreV1().Pods(s.Namespace)
	var started, graceEnd time.Time
	var stopped, graceSaid bool
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		pod, err := pods.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			tl.say("%s: gone (the kubelet's final DELETE went through)", name)
			return printEvents(ctx, tl, s, name)
		}
		if err != nil {
			return err
		}
		if started.IsZero() {
			if v := pod.Annotations[names.AnnotationDrainStarted]; v != "" {
				started, _ = time.Parse(time.RFC3339, v)
				graceEnd = started.Add(functionGrace * time.Second)
				tl.say("%s: drain started (%s=%s, deadline %s); the kubelet kills the containers at %s",
					name, names.AnnotationDrainStarted, v, pod.Annotations[names.AnnotationDrainDeadline], pod.DeletionTimestamp.UTC().Format(time.RFC3339))
				tl.say("%s: waiting on: grace period (until %s) and containers running", name, graceEnd.Format("15:04:05"))
			}
		}
		if !started.IsZero() && !graceSaid && !time.Now().Before(graceEnd) && len(pod.Finalizers) > 0 {
			graceSaid = true
			tl.say("%s: grace period over; waiting on: containers running", name)
		}
		if !stopped && pod.DeletionTimestamp != nil && !time.Now().Before(pod.DeletionTimestamp.Time) {
			stopped = true
			if _, err := cluster.MarkStopped(ctx, s.CP.Client, pod); err != nil {
				return err
			}
			tl.say("%s: kubelet reports the containers terminated", name)
		}
		if !started.IsZero() && len(pod.Finalizers) == 0 {
			reason, secs := lastRemoval(s, name)
			tl.say("%s: finalizer removed, reason %s, %.1fs after the drain started", name, reason, secs)
			if err := cluster.FinishDeletion(ctx, s.CP.Client, pod); err != nil {
				return err
			}
			tl.say("%s: kubelet sends the final grace-0 DELETE", name)
			if err := poll(10*time.Second, func() (bool, error) {
				_, err := pods.Get(ctx, name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			}); err != nil {
				return err
			}
			continue
		}
		time.Sleep(20 * time.Millisecond) // the demo polls the pod to print its timeline
	}
	return fmt.Errorf("%s was not released within 90s", name)
}

// lastRemoval reads the reason from the function's finalizer.removed reply when the release
// answered an event, else from the pod's Kubernetes Events (a timer-driven release).
func lastRemoval(s *cluster.Stack, name string) (string, float64) {
	for _, x := range s.Proxy.Replies(names.ReplyFinalizerRemoved, s.Subject(name)) {
		var d eventing.ReplyData
		if json.Unmarshal(x.ReplyBody, &d) == nil && d.DrainSeconds != nil {
			return d.Reason + " (reply " + names.ReplyFinalizerRemoved + ")", *d.DrainSeconds
		}
	}
	return "drained (in-process re-check; no event to reply to)", 0
}

func printEvents(ctx context.Context, tl timeline, s *cluster.Stack, name string) error {
	list, err := s.CP.Client.CoreV1().Events(s.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String(),
	})
	if err != nil {
		return err
	}
	tl.say("Kubernetes Events on %s (kubectl describe pod shows them):", name)
	slices.SortFunc(list.Items, func(a, b corev1.Event) int { return a.FirstTimestamp.Compare(b.FirstTimestamp.Time) })
	for _, e := range list.Items {
		fmt.Printf("         %-8s %-15s %s\n", e.Type, e.Reason, e.Message)
	}
	return nil
}

func poll(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
