package drain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"function/config"
	"function/handlers/drain"
	"function/names"
)

func TestDecide(t *testing.T) {
	def := bareConfig() // grace 30 s, timeout 300 s
	noDetect := bareConfig()
	noDetect.DetectVpaAnnotations = false
	onlyProd := bareConfig()
	onlyProd.Namespaces = config.NamespaceSelector{Include: []string{"prod"}}
	uninstalling := bareConfig()
	uninstalling.Uninstalling = true

	s10 := now.Add(-10 * time.Second).Truncate(time.Second) // drain started 10 s ago: in the grace period
	s40 := now.Add(-40 * time.Second).Truncate(time.Second) // 40 s ago: grace over, before the deadline
	s5m := now.Add(-5 * time.Minute)                        // 300 s ago: at the deadline on the whole second its stamp shows
	s6m := now.Add(-6 * time.Minute).Truncate(time.Second)  // past the deadline

	type want struct {
		action    drain.Action
		reason    string // exact for RemoveFinalizer, a substring otherwise
		managedBy string
		idx       int
		started   time.Time
		deadline  time.Time
		recheckAt time.Time
		stopped   drain.Evidence
		warnings  []string // substrings, one per warning
	}
	tests := []struct {
		name string
		cfg  config.Config
		pod  *corev1.Pod
		want want
	}{
		// ---- not ours, not deleting: add the finalizer to managed pods -----------------------
		{"vpa-managed=true", def, newPod(managed),
			want{action: drain.AddFinalizer, reason: "managed by annotation vpa-managed", managedBy: names.AnnotationManaged, idx: -1}},
		{"vpa-managed TRUE with spaces", def, newPod(ann(names.AnnotationManaged, " TRUE ")),
			want{action: drain.AddFinalizer, managedBy: names.AnnotationManaged, idx: -1}},
		{"vpaObservedContainers", def, newPod(ann("vpaObservedContainers", "app")),
			want{action: drain.AddFinalizer, reason: "vpaObservedContainers", managedBy: "vpaObservedContainers", idx: -1}},
		{"vpaUpdates", def, newPod(ann("vpaUpdates", "Pod resources updated by web")),
			want{action: drain.AddFinalizer, managedBy: "vpaUpdates", idx: -1}},
		{"legacy vpa-updater annotation", def, newPod(ann("vpa-updater.client.k8s.io/last-updated", "2026-01-01")),
			want{action: drain.AddFinalizer, managedBy: "vpa-updater.client.k8s.io/last-updated", idx: -1}},
		{"legacy vpa resource-name annotation", def, newPod(ann("vpa.k8s.io/resource-name", "web")),
			want{action: drain.AddFinalizer, managedBy: "vpa.k8s.io/resource-name", idx: -1}},
		{"VPA annotation with an empty value", def, newPod(ann("vpaUpdates", "")),
			want{action: drain.AddFinalizer, managedBy: "vpaUpdates", idx: -1}},
		{"vpa-managed=true wins over VPA annotations", def, newPod(managed, ann("vpaUpdates", "x")),
			want{action: drain.AddFinalizer, managedBy: names.AnnotationManaged, idx: -1}},
		{"other finalizers present", def, newPod(managed, finalizers("example.com/a", "example.com/b")),
			want{action: drain.AddFinalizer, managedBy: names.AnnotationManaged, idx: -1}},
		{"detect off, vpa-managed=true still manages", noDetect, newPod(managed, ann("vpaUpdates", "x")),
			want{action: drain.AddFinalizer, managedBy: names.AnnotationManaged, idx: -1}},
		{"include list, pod in it", onlyProd, newPod(managed, inNamespace("prod")),
			want{action: drain.AddFinalizer, managedBy: names.AnnotationManaged, idx: -1}},

		// ---- not ours, not deleting, not managed: nothing --------------------------------------
		{"no annotations", def, newPod(),
			want{action: drain.None, reason: "not managed (no vpa-managed or VPA annotation)", idx: -1}},
		{"unrelated annotations", def, newPod(ann("app.kubernetes.io/name", "web")),
			want{action: drain.None, reason: "not managed", idx: -1}},
		{"vpa-managed=false opt-out wins over VPA annotations", def, newPod(ann(names.AnnotationManaged, "false", "vpaUpdates", "x", "vpaObservedContainers", "app")),
			want{action: drain.None, reason: `opted out (vpa-managed="false")`, idx: -1}},
		{"vpa-managed other than true opts out", def, newPod(ann(names.AnnotationManaged, "yes", "vpaUpdates", "x")),
			want{action: drain.None, reason: `opted out (vpa-managed="yes")`, idx: -1}},
		{"detect off ignores VPA annotations", noDetect, newPod(ann("vpaUpdates", "x", "vpaObservedContainers", "app")),
			want{action: drain.None, reason: "not managed", idx: -1}},
		{"excluded namespace", def, newPod(managed, inNamespace("kube-system")),
			want{action: drain.None, reason: "namespace kube-system not selected", idx: -1}},
		{"include list, pod not in it", onlyProd, newPod(managed),
			want{action: drain.None, reason: "namespace default not selected", idx: -1}},

		// ---- uninstalling: add nothing, remove every finalizer of ours ---------------------------
		{"uninstalling: managed pod gets no finalizer", uninstalling, newPod(managed),
			want{action: drain.None, reason: "uninstalling", managedBy: names.AnnotationManaged, idx: -1}},
		{"uninstalling: finalizer removed", uninstalling, newPod(ours, managed),
			want{action: drain.RemoveFinalizer, reason: names.ReasonUninstalled, managedBy: names.AnnotationManaged, idx: 0}},
		{"uninstalling: a draining pod is released at once", uninstalling, newPod(finalizers("example.com/a", names.Finalizer), managed, deleting, started(s10)),
			want{action: drain.RemoveFinalizer, reason: names.ReasonUninstalled, managedBy: names.AnnotationManaged, idx: 1}},

		// ---- deleting without our finalizer: too late -----------------------------------------
		{"deleting managed pod without finalizer", def, newPod(managed, deleting),
			want{action: drain.None, reason: "deleting without our finalizer", managedBy: names.AnnotationManaged, idx: -1}},
		{"deleting with other finalizers only", def, newPod(managed, deleting, finalizers("example.com/a")),
			want{action: drain.None, reason: "deleting without our finalizer", managedBy: names.AnnotationManaged, idx: -1}},

		// ---- ours but no longer managed: remove --------------------------------------------------
		{"finalizer, annotation gone", def, newPod(ours),
			want{action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged, idx: 0}},
		{"finalizer, opted out", def, newPod(ours, ann(names.AnnotationManaged, "false", "vpaUpdates", "x")),
			want{action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged, idx: 0}},
		{"finalizer, namespace excluded", def, newPod(ours, managed, inNamespace("kube-system")),
			want{action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged, idx: 0}},
		{"finalizer, VPA annotation only and detect off", noDetect, newPod(finalizers("example.com/a", names.Finalizer), ann("vpaUpdates", "x")),
			want{action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged, idx: 1}},
		{"finalizer, unmanaged, deleting mid-drain", def, newPod(ours, deleting, started(s10)),
			want{action: drain.RemoveFinalizer, reason: names.ReasonUnmanaged, idx: 0}},

		// ---- ours, managed, not deleting: nothing ------------------------------------------------
		{"finalizer in place", def, newPod(ours, managed),
			want{action: drain.None, reason: "finalizer in place, pod not deleting", managedBy: names.AnnotationManaged, idx: 0}},
		{"finalizer in place at index 1", def, newPod(finalizers("example.com/a", names.Finalizer), ann("vpaUpdates", "x")),
			want{action: drain.None, reason: "finalizer in place", managedBy: "vpaUpdates", idx: 1}},

		// ---- deleting, ours, managed: start the drain --------------------------------------------
		{"start drain", def, newPod(ours, managed, deleting),
			want{action: drain.StartDrain, managedBy: names.AnnotationManaged, idx: 0, started: drainStamp, deadline: drainStamp.Add(300 * time.Second), recheckAt: up(drainStamp).Add(30 * time.Second)}},
		{"start drain waits for the grace even when the containers stopped", def, newPod(ours, managed, deleting, graceZero, phase(corev1.PodSucceeded)),
			want{action: drain.StartDrain, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0, started: drainStamp, deadline: drainStamp.Add(300 * time.Second), recheckAt: up(drainStamp).Add(30 * time.Second), stopped: drain.GraceZero}},
		{"invalid drain-started is stamped again", def, newPod(ours, managed, deleting, ann(names.AnnotationDrainStarted, "yesterday")),
			want{action: drain.StartDrain, managedBy: names.AnnotationManaged, idx: 0, started: drainStamp, deadline: drainStamp.Add(300 * time.Second), recheckAt: up(drainStamp).Add(30 * time.Second),
				warnings: []string{`invalid vpagracefuldrain.dev/drain-started "yesterday": stamped again`}}},
		{"empty drain-started restarts the drain", def, newPod(ours, managed, deleting, ann(names.AnnotationDrainStarted, "")),
			want{action: drain.StartDrain, managedBy: names.AnnotationManaged, idx: 0, started: drainStamp, deadline: drainStamp.Add(300 * time.Second), recheckAt: up(drainStamp).Add(30 * time.Second),
				warnings: []string{`invalid vpagracefuldrain.dev/drain-started ""`}}},
		{"drain-started over a minute after the deletion request is never moved, the request times the drain", def, newPod(ours, managed, deleting, started(now.Add(2*time.Minute))),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0, started: drainStamp, deadline: drainStamp.Add(300 * time.Second), recheckAt: up(drainStamp).Add(30 * time.Second),
				warnings: []string{"is over 1m0s after the deletion was requested"}}},
		{"start drain with per-pod timeout", def, newPod(ours, managed, deleting, ann(names.AnnotationDrainTimeout, "90")),
			want{action: drain.StartDrain, managedBy: names.AnnotationManaged, idx: 0, started: drainStamp, deadline: drainStamp.Add(90 * time.Second), recheckAt: up(drainStamp).Add(30 * time.Second)}},
		{"start drain with invalid per-pod timeout", def, newPod(ours, managed, deleting, ann(names.AnnotationDrainTimeout, "soon")),
			want{action: drain.StartDrain, managedBy: names.AnnotationManaged, idx: 0, started: drainStamp, deadline: drainStamp.Add(300 * time.Second), recheckAt: up(drainStamp).Add(30 * time.Second),
				warnings: []string{`invalid vpagracefuldrain.dev/drain-timeout-seconds "soon" (not a whole number of seconds): using 300s`}}},

		// ---- draining: wait ----------------------------------------------------------------------
		{"grace period not over", def, newPod(ours, managed, deleting, started(s10)),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s10, deadline: s10.Add(300 * time.Second), recheckAt: up(s10).Add(30 * time.Second)}},
		{"grace period not over, containers already stopped", def, newPod(ours, managed, deleting, started(s10), graceZero),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s10, deadline: s10.Add(300 * time.Second), recheckAt: up(s10).Add(30 * time.Second), stopped: drain.GraceZero}},
		{"drain-started within the allowed clock skew", def, newPod(ours, managed, deleting, started(now.Add(30*time.Second))),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: nowSec.Add(30 * time.Second), deadline: nowSec.Add(330 * time.Second), recheckAt: up(nowSec.Add(30 * time.Second)).Add(30 * time.Second)}},
		{"drain-started before the deletion request is kept", def, newPod(ours, managed, deletedAt(s40, 30), started(s40.Add(-5*time.Second))),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40.Add(-5 * time.Second), deadline: s40.Add(295 * time.Second), recheckAt: lookAfterKill(s40.Add(30 * time.Second))}},
		{"grace over, containers running", def, newPod(ours, managed, deleting, started(s40)),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second)}},
		{"grace over, one of two containers terminated", def, newPod(ours, managed, deleting, started(s40), statuses(terminated("a", 0), running("b"))),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second)}},
		{"grace over, no container statuses", def, newPod(ours, managed, deleting, started(s40), statuses()),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second)}},
		{"grace over from the whole second the stamp shows, not from the latest moment it stands for: a wait (never early)", def,
			newPod(ours, managed, deleting, started(now.Add(-30*time.Second)), graceZero),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: nowSec.Add(-30 * time.Second), deadline: nowSec.Add(270 * time.Second), recheckAt: up(nowSec), stopped: drain.GraceZero}},
		{"grace over from the latest moment the stamp stands for is not a wait", def, newPod(ours, managed, deleting, started(now.Add(-31*time.Second)), graceZero),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 0,
				started: nowSec.Add(-31 * time.Second), deadline: nowSec.Add(269 * time.Second), stopped: drain.GraceZero}},

		// ---- draining: drained -------------------------------------------------------------------
		{"drained: all containers terminated", def, newPod(ours, managed, deleting, started(s40), statuses(terminated("a", 0), terminated("b", 137))),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), stopped: drain.AllTerminated}},
		{"drained: phase Succeeded", def, newPod(ours, managed, deleting, started(s40), phase(corev1.PodSucceeded)),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), stopped: drain.TerminalPhase}},
		{"drained: phase Failed", def, newPod(ours, managed, deleting, started(s40), phase(corev1.PodFailed)),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), stopped: drain.TerminalPhase}},
		{"drained: deletionGracePeriodSeconds=0 while phase Running", def, newPod(ours, managed, deleting, started(s40), graceZero),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), stopped: drain.GraceZero}},
		{"drained: finalizer at index 2", def, newPod(finalizers("a.io/x", "b.io/y", names.Finalizer), managed, deleting, started(s40), phase(corev1.PodFailed)),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 2,
				started: s40, deadline: s40.Add(300 * time.Second), stopped: drain.TerminalPhase}},

		// ---- draining: timeout -------------------------------------------------------------------
		{"deadline on the whole second the stamp shows, not on the latest moment: not yet a timeout", def, newPod(ours, managed, deleting, started(s5m)),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s5m.Truncate(time.Second), deadline: s5m.Truncate(time.Second).Add(300 * time.Second), recheckAt: up(nowSec)}},
		{"timeout at the latest moment the stamp stands for, containers running", def, newPod(ours, managed, deleting, started(s5m.Add(-time.Second))),
			want{action: drain.RemoveFinalizer, reason: names.ReasonTimeout, managedBy: names.AnnotationManaged, idx: 0,
				started: s5m.Add(-time.Second).Truncate(time.Second), deadline: s5m.Truncate(time.Second).Add(299 * time.Second)}},
		{"timeout past the deadline, containers running", def, newPod(ours, managed, deleting, started(s6m)),
			want{action: drain.RemoveFinalizer, reason: names.ReasonTimeout, managedBy: names.AnnotationManaged, idx: 0,
				started: s6m, deadline: s6m.Add(300 * time.Second)}},
		{"deadline annotation shortens the drain", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainDeadline, stamp(now.Add(-time.Second)))),
			want{action: drain.RemoveFinalizer, reason: names.ReasonTimeout, managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: nowSec.Add(-time.Second)}},
		{"deadline annotation before the grace end caps the recheck", def, newPod(ours, managed, deleting, started(s10), ann(names.AnnotationDrainDeadline, stamp(s10.Add(20*time.Second)))),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s10, deadline: s10.Add(20 * time.Second), recheckAt: up(s10).Add(20 * time.Second)}},
		{"deadline annotation later than started+timeout is capped", def, newPod(ours, managed, deleting, started(s6m), ann(names.AnnotationDrainDeadline, stamp(now.Add(time.Hour)))),
			want{action: drain.RemoveFinalizer, reason: names.ReasonTimeout, managedBy: names.AnnotationManaged, idx: 0,
				started: s6m, deadline: s6m.Add(300 * time.Second)}},
		{"deadline annotation later than started+timeout is capped while waiting", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainDeadline, stamp(now.Add(time.Hour)))),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second)}},
		{"invalid deadline annotation uses started+timeout", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainDeadline, "tomorrow")),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second),
				warnings: []string{`invalid vpagracefuldrain.dev/drain-deadline "tomorrow": using ` + stamp(s40.Add(300*time.Second))}}},

		// ---- per-pod overrides -------------------------------------------------------------------
		{"grace override extends the grace period", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationGracePeriod, "60"), graceZero),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: up(s40).Add(60 * time.Second), stopped: drain.GraceZero}},
		{"grace override zero", def, newPod(ours, managed, deleting, started(now.Add(-time.Second)), ann(names.AnnotationGracePeriod, "0"), phase(corev1.PodSucceeded)),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 0,
				started: nowSec.Add(-time.Second), deadline: nowSec.Add(299 * time.Second), stopped: drain.TerminalPhase}},
		{"invalid grace override uses the default", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationGracePeriod, "abc")),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second),
				warnings: []string{`invalid vpagracefuldrain.dev/grace-period-seconds "abc" (not a whole number of seconds): using 30s`}}},
		{"negative grace override uses the default", def, newPod(ours, managed, deleting, started(s10), ann(names.AnnotationGracePeriod, "-5")),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s10, deadline: s10.Add(300 * time.Second), recheckAt: up(s10).Add(30 * time.Second),
				warnings: []string{`invalid vpagracefuldrain.dev/grace-period-seconds "-5" (must be between 0 and 86400 seconds): using 30s`}}},
		{"timeout override shortens the drain", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainTimeout, "100")),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(100 * time.Second), recheckAt: nowSec.Add(30 * time.Second)}},
		{"timeout override reached", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainTimeout, "39")),
			want{action: drain.RemoveFinalizer, reason: names.ReasonTimeout, managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(39 * time.Second)}},
		{"timeout override zero is invalid", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainTimeout, "0")),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second),
				warnings: []string{`invalid vpagracefuldrain.dev/drain-timeout-seconds "0" (must be between 1 and 86400 seconds): using 300s`}}},
		{"timeout override over one day is invalid", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainTimeout, "86401")),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second),
				warnings: []string{"invalid vpagracefuldrain.dev/drain-timeout-seconds"}}},
		{"timeout override above drainTimeoutSeconds is capped at it", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainTimeout, "3600")),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second),
				warnings: []string{`vpagracefuldrain.dev/drain-timeout-seconds "3600" exceeds drainTimeoutSeconds: using 300s`}}},
		{"timeout override below drainTimeoutSeconds shortens the drain", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainTimeout, "120")),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(120 * time.Second), recheckAt: nowSec.Add(30 * time.Second)}},
		{"deadline annotation before the start is ignored", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainDeadline, s40.Add(-time.Second).Format(time.RFC3339))),
			want{action: drain.Wait, reason: "containers running", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: nowSec.Add(30 * time.Second),
				warnings: []string{"vpagracefuldrain.dev/drain-deadline " + s40.Add(-time.Second).Format(time.RFC3339) + " is before the drain started"}}},
		{"deadline annotation after the start shortens the drain", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationDrainDeadline, s40.Add(time.Second).Format(time.RFC3339))),
			want{action: drain.RemoveFinalizer, reason: names.ReasonTimeout, managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(time.Second)}},
		{"both overrides invalid: two warnings", def, newPod(ours, managed, deleting, started(s10), ann(names.AnnotationGracePeriod, "x", names.AnnotationDrainTimeout, "y")),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s10, deadline: s10.Add(300 * time.Second), recheckAt: up(s10).Add(30 * time.Second),
				warnings: []string{"grace-period-seconds", "drain-timeout-seconds"}}},
		// A grace override longer than the timeout is cut to the timeout (with a warning); at
		// the deadline a pod whose containers stopped is drained, one still running times out.
		{"grace override beyond the timeout waits for the deadline", def, newPod(ours, managed, deleting, started(s40), ann(names.AnnotationGracePeriod, "600"), graceZero),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s40, deadline: s40.Add(300 * time.Second), recheckAt: up(s40).Add(300 * time.Second), stopped: drain.GraceZero,
				warnings: []string{"grace period 600s exceeds drain timeout 300s: using 300s"}}},
		{"grace override beyond the timeout, stopped at the deadline: drained", def, newPod(ours, managed, deleting, started(s6m), ann(names.AnnotationGracePeriod, "600"), graceZero),
			want{action: drain.RemoveFinalizer, reason: names.ReasonDrained, managedBy: names.AnnotationManaged, idx: 0,
				started: s6m, deadline: s6m.Add(300 * time.Second), stopped: drain.GraceZero,
				warnings: []string{"exceeds drain timeout"}}},
		{"grace override beyond the timeout, running at the deadline: timeout", def, newPod(ours, managed, deleting, started(s6m), ann(names.AnnotationGracePeriod, "600")),
			want{action: drain.RemoveFinalizer, reason: names.ReasonTimeout, managedBy: names.AnnotationManaged, idx: 0,
				started: s6m, deadline: s6m.Add(300 * time.Second),
				warnings: []string{"exceeds drain timeout"}}},
		{"timeout override below the grace period cuts the grace", def, newPod(ours, managed, deleting, started(s10), ann(names.AnnotationDrainTimeout, "20")),
			want{action: drain.Wait, reason: "grace period", managedBy: names.AnnotationManaged, idx: 0,
				started: s10, deadline: s10.Add(20 * time.Second), recheckAt: up(s10).Add(20 * time.Second),
				warnings: []string{"grace period 30s exceeds drain timeout 20s: using 20s"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := drain.Decide(tt.pod, tt.cfg, now)
			assert.Equal(t, tt.want.action, got.Action, "action (reason %q)", got.Reason)
			if tt.want.action == drain.RemoveFinalizer {
				assert.Equal(t, tt.want.reason, got.Reason)
			} else {
				assert.Contains(t, got.Reason, tt.want.reason)
			}
			assert.Equal(t, tt.want.managedBy, got.ManagedBy, "managedBy")
			assert.Equal(t, tt.want.idx, got.FinalizerIndex, "finalizer index")
			// The table gives times as the API shows them (whole seconds); a drain is timed
			// from the latest moment they stand for.
			assert.True(t, up(tt.want.started).Equal(got.Started), "started: want %s, got %s", up(tt.want.started), got.Started)
			assert.True(t, up(tt.want.deadline).Equal(got.Deadline), "deadline: want %s, got %s", up(tt.want.deadline), got.Deadline)
			assert.True(t, tt.want.recheckAt.Equal(got.RecheckAt), "recheckAt: want %s, got %s", tt.want.recheckAt, got.RecheckAt)
			assert.Equal(t, tt.want.stopped, got.Stopped, "stopped evidence")
			require.Len(t, got.Warnings, len(tt.want.warnings), "warnings: %q", got.Warnings)
			for i, w := range tt.want.warnings {
				assert.Contains(t, got.Warnings[i], w)
			}
		})
	}
}

// A drain is timed from what the API server recorded, so a stamp that cannot be written, or
// one written by a replica whose clock is off, neither leaves it unbounded nor shortens it.
func TestDecideDrainStart(t *testing.T) {
	def := bareConfig() // grace 30 s, timeout 300 s
	t40 := nowSec.Add(-40 * time.Second)
	t6m := nowSec.Add(-6 * time.Minute)
	tests := []struct {
		name     string
		pod      *corev1.Pod
		action   drain.Action
		reason   string
		from     drain.StartSource
		started  time.Time
		recheck  time.Time
		warnings int
	}{
		{"eviction, not stamped yet: stamped with the eviction time", newPod(ours, managed, deletedAt(t40, 30), evicted(t40)),
			drain.StartDrain, "containers running", drain.StartEviction, t40, lookAfterKill(t40.Add(30 * time.Second)), 0},
		{"eviction, stamp never written, past the deadline: released without it", newPod(ours, managed, deletedAt(t6m, 30), evicted(t6m)),
			drain.RemoveFinalizer, names.ReasonTimeout, drain.StartEviction, t6m, time.Time{}, 0},
		{"eviction, stamp never written, stopped after the grace: drained without it", newPod(ours, managed, deletedAt(t40, 30), evicted(t40), graceZero),
			drain.RemoveFinalizer, names.ReasonDrained, drain.StartEviction, t40, time.Time{}, 0},
		{"eviction wins over a stamp from a clock behind (earlier)", newPod(ours, managed, deletedAt(t40, 30), evicted(t40), started(t6m)),
			drain.Wait, "containers running", drain.StartEviction, t40, lookAfterKill(t40.Add(30 * time.Second)), 0},
		{"eviction wins over a stamp from a clock ahead (later)", newPod(ours, managed, deletedAt(t40, 30), evicted(t40), started(nowSec.Add(5*time.Minute))),
			drain.Wait, "containers running", drain.StartEviction, t40, lookAfterKill(t40.Add(30 * time.Second)), 0},
		{"eviction after the kubelet's final DELETE moved deletionTimestamp: timed from the eviction", newPod(ours, managed, evicted(t40), graceZero),
			drain.RemoveFinalizer, names.ReasonDrained, drain.StartEviction, t40, time.Time{}, 0},
		{"a DisruptionTarget from an older disruption is not this deletion's", newPod(ours, managed, deleting, evicted(nowSec.Add(-2*time.Hour))),
			drain.StartDrain, "grace period", drain.StartDeletion, nowSec, up(nowSec).Add(30 * time.Second), 0},
		{"plain delete, stamp never written, past the deadline: released", newPod(ours, managed, deletedAt(t6m, 30)),
			drain.RemoveFinalizer, names.ReasonTimeout, drain.StartDeletion, t6m, time.Time{}, 0},
		{"plain delete after the kubelet's final DELETE: a later, finite start", newPod(ours, managed, graceZero),
			drain.StartDrain, "grace period", drain.StartDeletion, nowSec, up(nowSec).Add(30 * time.Second), 0},
		{"stamp ahead of the deletion request by over a minute: the request", newPod(ours, managed, deletedAt(t40, 30), started(nowSec.Add(time.Hour))),
			drain.Wait, "containers running", drain.StartStamp, t40, lookAfterKill(t40.Add(30 * time.Second)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := drain.Decide(tt.pod, def, now)
			assert.Equal(t, tt.action, d.Action, "reason %q", d.Reason)
			assert.Contains(t, d.Reason, tt.reason)
			assert.Equal(t, tt.from, d.StartedFrom)
			assert.True(t, up(tt.started).Equal(d.Started), "started: want %s, got %s", up(tt.started), d.Started)
			assert.True(t, tt.recheck.Equal(d.RecheckAt), "recheck: want %s, got %s", tt.recheck, d.RecheckAt)
			assert.Len(t, d.Warnings, tt.warnings, "%q", d.Warnings)
			if d.Action == drain.StartDrain {
				assert.Equal(t, time.UTC, d.Started.UTC().Location())
			}
		})
	}
}

// Native sidecars (init containers with restartPolicy Always) run beside the app until the
// pod stops: a pod whose sidecar still runs has not drained.
func TestDecideCountsNativeSidecars(t *testing.T) {
	s40 := nowSec.Add(-40 * time.Second)
	allDone := statuses(terminated("app", 0))
	tests := []struct {
		name    string
		pod     *corev1.Pod
		action  drain.Action
		stopped drain.Evidence
	}{
		{"sidecar running", newPod(ours, managed, deletedAt(s40, 30), started(s40), allDone, sidecar(running("envoy"))), drain.Wait, drain.NotStopped},
		{"sidecar terminated", newPod(ours, managed, deletedAt(s40, 30), started(s40), allDone, sidecar(terminated("envoy", 0))), drain.RemoveFinalizer, drain.AllTerminated},
		{"ordinary init container terminated long ago, ignored", newPod(ours, managed, deletedAt(s40, 30), started(s40), allDone, initContainer(terminated("migrate", 0))), drain.RemoveFinalizer, drain.AllTerminated},
		{"ordinary init container status without a terminated state is not a sidecar", newPod(ours, managed, deletedAt(s40, 30), started(s40), allDone, initContainer(running("init"))), drain.RemoveFinalizer, drain.AllTerminated},
		{"sidecar declared but never started", newPod(ours, managed, deletedAt(s40, 30), started(s40), allDone, func(p *corev1.Pod) {
			always := corev1.ContainerRestartPolicyAlways
			p.Spec.InitContainers = []corev1.Container{{Name: "envoy", RestartPolicy: &always}}
		}), drain.RemoveFinalizer, drain.AllTerminated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := drain.Decide(tt.pod, bareConfig(), now)
			assert.Equal(t, tt.action, d.Action, "reason %q", d.Reason)
			assert.Equal(t, tt.stopped, d.Stopped)
		})
	}
}

func TestDecideDoesNotModifyThePod(t *testing.T) {
	pod := newPod(ours, managed, deleting, started(now.Add(-40*time.Second)), ann(names.AnnotationGracePeriod, "bad"))
	before := pod.DeepCopy()
	_ = drain.Decide(pod, bareConfig(), now)
	assert.Equal(t, before, pod)
}

func TestDrainSeconds(t *testing.T) {
	assert.Zero(t, drain.Decision{}.DrainSeconds(now), "before the drain started")
	d := drain.Decision{Started: now.Add(-1500 * time.Millisecond)}
	assert.InDelta(t, 1.5, d.DrainSeconds(now), 1e-9)
}

func TestActionStringAndWrites(t *testing.T) {
	tests := []struct {
		action drain.Action
		name   string
		writes bool
	}{
		{drain.None, "none", false},
		{drain.AddFinalizer, "add-finalizer", true},
		{drain.StartDrain, "start-drain", true},
		{drain.Wait, "wait", false},
		{drain.RemoveFinalizer, "remove-finalizer", true},
		{drain.Action(99), "none", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.name, tt.action.String())
			assert.Equal(t, tt.writes, tt.action.Writes())
		})
	}
}

func TestEvidenceString(t *testing.T) {
	assert.Equal(t, "containers running", drain.NotStopped.String())
	assert.Equal(t, "deletionGracePeriodSeconds=0", drain.GraceZero.String())
	assert.Equal(t, "terminal phase", drain.TerminalPhase.String())
	assert.Equal(t, "all containers terminated", drain.AllTerminated.String())
}

func BenchmarkDecide(b *testing.B) {
	cfg := bareConfig()
	pods := []*corev1.Pod{
		newPod(managed),
		newPod(ours, managed, deleting),
		newPod(ours, managed, deleting, started(now.Add(-40*time.Second)), statuses(terminated("a", 0), terminated("b", 0))),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = drain.Decide(pods[i%len(pods)], cfg, now)
	}
}

// lookAfterKill is when Decide looks again at a pod whose containers still run although the
// kubelet killed them at kill: a quarter of the time since then (at least 500 ms, at most 30 s).
func lookAfterKill(kill time.Time) time.Time {
	return now.Add(min(max(now.Sub(kill)/4, 500*time.Millisecond), 30*time.Second))
}

// After the grace period, a pod whose containers still run is looked at again at the kill
// time, then more and more rarely, never after its deadline.
func TestDecideLooksAgainWhileContainersRun(t *testing.T) {
	s40 := nowSec.Add(-40 * time.Second)
	tests := []struct {
		name string
		pod  *corev1.Pod
		want time.Time
	}{
		{"before the kubelet kills: at the kill time", newPod(ours, managed, deletedAt(s40, 60), started(s40)), s40.Add(60 * time.Second)},
		{"just after the kill: 500 ms", newPod(ours, managed, deletedAt(now.Add(-40*time.Second-500*time.Millisecond), 40), started(s40)), now.Add(500 * time.Millisecond)},
		{"40 s after the kill: 10 s", newPod(ours, managed, deletedAt(now.Add(-80*time.Second), 40), started(s40)), now.Add(10 * time.Second)},
		{"long after the kill: 30 s at most", newPod(ours, managed, deletedAt(now.Add(-230*time.Second), 30), started(now.Add(-200*time.Second)), ann(names.AnnotationDrainTimeout, "3600")), now.Add(30 * time.Second)},
		{"never after the deadline", newPod(ours, managed, deletedAt(now.Add(-290*time.Second), 30), started(now.Add(-290*time.Second).Truncate(time.Second))), up(now.Add(-290 * time.Second).Truncate(time.Second)).Add(300 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := drain.Decide(tt.pod, bareConfig(), now)
			require.Equal(t, drain.Wait, d.Action, "reason %q", d.Reason)
			assert.Equal(t, "containers running", d.Reason)
			assert.True(t, tt.want.Equal(d.RecheckAt), "want %s, got %s", tt.want, d.RecheckAt)
		})
	}
}
