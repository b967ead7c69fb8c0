package drain_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/drain"
	"function/names"
)

// timeoutBound is the longest drain timeout the pod can have: the configured one (a per-pod
// override may only shorten it).
func timeoutBound(_ *corev1.Pod, cfg config.Config) time.Duration {
	return cfg.DrainTimeout
}

// FuzzDecide holds Decide to the safety rules whatever the pod looks like: it never adds a
// finalizer to a deleting pod, never removes one that is not ours, never holds a drain past
// a valid drain-started + the drain timeout, and every write it asks for is a guarded patch
// that applies to the pod it was decided on; once a finalizer is added or removed, the same
// change is not asked again. It asserts nothing on how a drain without a valid stamp is
// timed (from API-server times), only the rules above.
func FuzzDecide(f *testing.F) {
	const sec = int64(time.Second / time.Millisecond) // the time offsets of the pod are in milliseconds
	drainFlags := uint16(fzManaged | fzOurs | fzDeleting | fzDeletionGrace | fzStarted | fzStartedAt)
	// flags, managedVal, startedVal, deadlineVal, graceVal, timeoutVal, startedOff, deadlineOff,
	// deletionOff (milliseconds from the tests' now: any year), deletionGrace, finalizerPos,
	// foreign, containers, phase, nowOff (nanoseconds from the tests' now: within 292 years)
	f.Add(uint16(fzManaged), "true", "", "", "", "", int64(0), int64(0), int64(0), int64(0), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(uint16(fzVPA), "", "", "", "", "", int64(0), int64(0), int64(0), int64(0), uint8(0), uint8(3), uint8(2+4), uint8(2), int64(0))
	f.Add(uint16(fzVPA|fzOurs), "", "", "", "", "", int64(0), int64(0), int64(0), int64(0), uint8(0), uint8(2), uint8(1), uint8(2), int64(0))
	f.Add(uint16(fzManaged|fzOurs), "false", "", "", "", "", int64(0), int64(0), int64(0), int64(0), uint8(1), uint8(3), uint8(1), uint8(2), int64(0))
	f.Add(uint16(fzManaged|fzOurs|fzDeleting|fzDeletionGrace), "true", "", "", "", "", int64(0), int64(0), 30*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags, "true", "", "", "", "", -10*sec, int64(0), 20*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags, "true", "", "", "", "", -40*sec, int64(0), -10*sec, int64(30), uint8(0), uint8(0), uint8(1+4), uint8(2), int64(0))
	f.Add(drainFlags, "true", "", "", "", "", -300*sec, int64(0), -270*sec, int64(30), uint8(2), uint8(2), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags, " TRUE ", "", "", "", "", -40*sec, int64(0), -10*sec, int64(0), uint8(0), uint8(0), uint8(2), uint8(4), int64(0))
	f.Add(drainFlags|fzGrace|fzTimeout, "true", "", "", "-5", "999999999999999999999", -10*sec, int64(0), 20*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags|fzGrace|fzTimeout, "true", "", "", "600", "90", -100*sec, int64(0), 20*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags|fzTimeout, "true", "", "", "", "86400", -86399*sec, int64(0), 20*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(2*time.Second))
	f.Add(drainFlags|fzDeadline|fzDeadlineAt, "true", "", "", "", "", -40*sec, 3600*sec, 20*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags|fzDeadline|fzDeadlineAt, "true", "", "", "", "", -10*sec, -1*sec, 20*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags|fzDeadline, "true", "", "tomorrow", "", "", -40*sec, int64(0), 20*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(uint16(fzManaged|fzOurs|fzDeleting|fzStarted), "true", "yesterday", "", "", "", int64(0), int64(0), 30*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags, "true", "", "", "", "", 120*sec, int64(0), 30*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags, "true", "", "", "", "", -3155760000*sec, int64(0), -3155760000*sec, int64(30), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(drainFlags, "true", "", "", "", "", int64(0), int64(0), 30*sec, int64(10000000000), uint8(0), uint8(0), uint8(1), uint8(2), int64(0))
	f.Add(uint16(fzManaged|fzDeleting), "true", "", "", "", "", int64(0), int64(0), 30*sec, int64(30), uint8(3), uint8(7), uint8(1), uint8(2), int64(0))
	f.Add(uint16(fzManaged|fzOurs|fzExcluded), "true", "", "", "", "", int64(0), int64(0), int64(0), int64(0), uint8(0), uint8(1), uint8(1), uint8(2), int64(0))
	f.Fuzz(func(t *testing.T, flags uint16, managedVal, startedVal, deadlineVal, graceVal, timeoutVal string,
		startedOff, deadlineOff, deletionOff, deletionGrace int64, finalizerPos, foreign, containers, phaseIdx uint8, nowOff int64,
	) {
		built := fuzzPod(flags, managedVal, startedVal, deadlineVal, graceVal, timeoutVal,
			startedOff, deadlineOff, deletionOff, deletionGrace, finalizerPos, foreign, containers, phaseIdx)
		// Decide on the pod as it comes over the wire: its JSON, as the API server serves it.
		raw, err := json.Marshal(built)
		require.NoError(t, err)
		pod := &corev1.Pod{}
		if json.Unmarshal(raw, pod) != nil {
			return // not representable in JSON (a time outside years 0-9999): never sent
		}
		raw, err = json.Marshal(pod)
		require.NoError(t, err)
		at := now.Add(time.Duration(nowOff))
		checkDecision(t, pod, raw, bareConfig(), at, drain.Facts{})

		// The same pod as a Deployment's, StatefulSet's or DaemonSet's, with the default
		// configuration (evictions only) and each state of what the owner reads could give.
		for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
			owned := pod.DeepCopy()
			ownedBy(kind, "web")(owned)
			ownedRaw, err := json.Marshal(owned)
			require.NoError(t, err)
			for _, facts := range []drain.Facts{
				{Unavailable: drain.NeedOwner | drain.NeedReplicas | drain.NeedEndpoints, Errors: []string{"forbidden"}},
				{Replicas: &drain.Replicas{Desired: 2, Ready: 1}},
				{Replicas: &drain.Replicas{Desired: 2, Ready: 2, ReadyAt: at}, Serving: ptr.To(0)},
			} {
				checkDecision(t, owned, ownedRaw, config.Default(), at, facts)
			}
		}
	})
}

// checkDecision decides on pod (raw: its JSON) and checks every invariant of the decision and
// of its patch.
func checkDecision(t *testing.T, pod *corev1.Pod, raw []byte, cfg config.Config, at time.Time, facts drain.Facts) {
	d := drain.DecideWith(pod, cfg, at, facts)
	if d.Needs != 0 { // the reconciler reads what is needed; here, as if every read failed
		facts.Unavailable |= d.Needs
		d = drain.DecideWith(pod, cfg, at, facts)
	}
	require.Zero(t, d.Needs, "asked for %s again", d.Needs)

	ours := slices.Index(pod.Finalizers, names.Finalizer)
	deleting := pod.DeletionTimestamp != nil
	switch d.Action {
	case drain.AddFinalizer:
		require.False(t, deleting, "added a finalizer to a deleting pod")
		require.Negative(t, ours, "added our finalizer twice")
	case drain.RemoveFinalizer:
		require.GreaterOrEqual(t, d.FinalizerIndex, 0, "removing a finalizer at index %d", d.FinalizerIndex)
		require.Less(t, d.FinalizerIndex, len(pod.Finalizers), "removing a finalizer at index %d", d.FinalizerIndex)
		require.Equal(t, names.Finalizer, pod.Finalizers[d.FinalizerIndex], "removing a finalizer that is not ours")
	case drain.Wait:
		require.True(t, deleting, "waiting on a pod that is not deleting")
		require.GreaterOrEqual(t, ours, 0, "waiting without our finalizer")
	}
	if d.Action == drain.Wait {
		require.True(t, d.RecheckAt.After(at), "waiting with a re-check at %s, not after now %s", d.RecheckAt, at)
		require.False(t, d.RecheckAt.After(d.Deadline), "re-check at %s after the deadline %s", d.RecheckAt, d.Deadline)
	}

	// Never held past drain-started + the drain timeout (a valid stamp, not in the future),
	// timed from the latest moment the whole-second stamp stands for: at most 1 s longer.
	if v, ok := pod.Annotations[names.AnnotationDrainStarted]; ok && deleting && ours >= 0 {
		if stamped, perr := time.Parse(time.RFC3339, v); perr == nil && !stamped.After(at) {
			end := up(stamped).Add(timeoutBound(pod, cfg))
			if !at.Before(end) {
				require.Equal(t, drain.RemoveFinalizer, d.Action,
					"drain-started %s + timeout is %s, now is %s: reason %q", v, end, at, d.Reason)
			}
			if d.Action == drain.Wait {
				require.False(t, d.Deadline.After(end), "deadline %s after drain-started %s + timeout", d.Deadline, v)
			}
		}
	}

	// Never early: a drain released because its gates opened had its whole grace period,
	// from the latest moment its start stands for.
	if d.Action == drain.RemoveFinalizer && (d.Reason == names.ReasonDrained || d.Reason == names.ReasonReplaced) {
		require.False(t, at.Before(d.Started.Add(d.Grace)), "released %s after the start %s, grace %s", at.Sub(d.Started), d.Started, d.Grace)
		require.Equal(t, d.Started, up(d.Started.Truncate(time.Second)), "started %s is not the latest moment of its second", d.Started)
	}

	if !d.Action.Writes() {
		return
	}
	patch, err := drain.Patch(pod, d)
	require.NoError(t, err, "no patch for %s", d.Action)
	var ops []struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	require.NoError(t, json.Unmarshal(patch, &ops))
	require.NotEmpty(t, ops)
	require.Equal(t, "test", ops[0].Op, "the first op guards the uid")
	require.Equal(t, "/metadata/uid", ops[0].Path, "the first op guards the uid")
	require.Equal(t, string(pod.UID), ops[0].Value)
	if pod.ResourceVersion != "" {
		require.Equal(t, "test", ops[1].Op, "the second op guards the resourceVersion read")
		require.Equal(t, "/metadata/resourceVersion", ops[1].Path)
		require.Equal(t, pod.ResourceVersion, ops[1].Value)
	}

	// The guarded patch applies to the very pod it was decided on, as the API server
	// applies it (the same JSON patch library).
	p, err := jsonpatch.DecodePatch(patch)
	require.NoError(t, err)
	patched, err := p.Apply(raw)
	require.NoError(t, err, "the patch for %s does not apply to its own pod: %s", d.Action, patch)
	after := &corev1.Pod{}
	require.NoError(t, json.Unmarshal(patched, after))
	switch d.Action {
	case drain.AddFinalizer:
		require.Equal(t, append(slices.Clone(pod.Finalizers), names.Finalizer), after.Finalizers)
	case drain.RemoveFinalizer:
		require.Equal(t, slices.Delete(slices.Clone(pod.Finalizers), d.FinalizerIndex, d.FinalizerIndex+1), after.Finalizers)
	case drain.StartDrain:
		// What a drain start writes depends on how a missing stamp is timed: only that
		// it writes one, and holds on to the finalizer.
		require.Equal(t, pod.Finalizers, after.Finalizers)
		require.NotEmpty(t, after.Annotations[names.AnnotationDrainStarted])
		return
	}
	// Applied, the same finalizer change is not asked again: no write loop.
	again := drain.DecideWith(after, cfg, at, facts)
	require.NotEqual(t, d.Action, again.Action, "%s asked again right after it was applied (reason %q)", d.Action, again.Reason)
}
