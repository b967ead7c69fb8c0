package surge

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/annotations"

	"function/config"
	"function/handlers/drain"
	"function/names"
)

// Phase is where a Deployment's surge rollout is.
type Phase string

// The phases of a surge rollout.
const (
	PhaseRolling   Phase = "rolling"
	PhaseCompleted Phase = "completed"
	PhaseAborted   Phase = "aborted"
)

// State is the rollout state kept in AnnotationState.
type State struct {
	Phase Phase `json:"phase,omitempty"`
	// Prediction is the hash of the prediction the last rollout was for: never twice for one.
	Prediction string `json:"prediction,omitempty"`
	// Started is when the last rollout was started; Generation the Deployment's generation
	// that restart produced (a later one: the user changed the Deployment, the rollout is theirs).
	Started    time.Time `json:"started,omitzero"`
	Generation int64     `json:"generation,omitempty"`
	// CoolDown is the cool-down that ends at Started + CoolDown (doubled when the Deployment
	// is selected again within the lifetime threshold).
	CoolDown time.Duration `json:"coolDown,omitempty"`
	// Requests are the predicted requests the rollout is for (the new pods must carry them).
	Requests map[string]corev1.ResourceList `json:"requests,omitempty"`
	// Before are the template annotations the restart changed, as they were ("" absent).
	Before map[string]string `json:"before,omitempty"`
	// Skipped is the precondition last reported failing (one Event per condition).
	Skipped Condition `json:"skipped,omitempty"`
	// Reason says why the last rollout ended as it did.
	Reason string `json:"reason,omitempty"`
	// Gap is the rollout's capacity gap: the most replicas short of Ready (not deleting) pods
	// seen at any evaluation while it rolled (0 is the point of a surge rollout).
	Gap int32 `json:"gap,omitempty"`
	// Failures counts the rollouts in a row that were aborted (0 again once one completes):
	// at Limits.MaxAttempts the Deployment's surge rollouts stop.
	Failures int `json:"failures,omitempty"`
	// Unsized: the last rollout was aborted because VPA's admission controller did not size
	// a new pod at all (a race in its caches): its prediction may be tried again at once.
	Unsized bool `json:"unsized,omitempty"`
}

// Phases is the closed set of phases a state may have ("" before the first rollout).
var phases = [...]Phase{"", PhaseRolling, PhaseCompleted, PhaseAborted}

// valid checks what a state says against the clock: a phase of the closed set, times not
// ahead of now by more than the clock skew (a state is written by the function on the API
// server's clock; one from the future was written by someone else), counts not negative.
func (s State) valid(now time.Time) error {
	switch {
	case !slices.Contains(phases[:], s.Phase):
		return fmt.Errorf("phase %s is not one of rolling, completed, aborted", drain.Quote(string(s.Phase)))
	case s.Started.After(now.Add(drain.ClockSkew)):
		return fmt.Errorf("started %s is in the future", s.Started.UTC().Format(time.RFC3339))
	case s.CoolDown < 0 || s.Gap < 0 || s.Failures < 0 || s.Generation < 0:
		return errors.New("a negative cool-down, gap, failure count or generation")
	}
	return nil
}

// ReadState parses the Deployment's state annotation; an absent or unreadable one is the zero
// State (an unreadable one is reported: it never blocks a rollout forever, nor starts two).
func ReadState(d *appsv1.Deployment) (State, error) {
	v, ok := d.Annotations[names.AnnotationSurgeState]
	if !ok {
		return State{}, nil
	}
	var s State
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return State{}, fmt.Errorf("invalid %s on Deployment %s/%s (%d bytes): %w", names.AnnotationSurgeState, d.Namespace, d.Name, len(v), err)
	}
	return s, nil
}

// StateOf is the Deployment's state as Decide takes it: ReadState's, checked against now; an
// unreadable or invalid one is ignored (the zero State) and reported in the error.
func StateOf(d *appsv1.Deployment, now time.Time) (State, error) {
	s, err := ReadState(d)
	if err == nil {
		if err = s.valid(now); err != nil {
			err = fmt.Errorf("invalid %s on Deployment %s/%s, ignored: %w", names.AnnotationSurgeState, d.Namespace, d.Name, err)
		}
	}
	if err != nil {
		return State{}, err
	}
	return s, nil
}

// Budget is how many surge rollouts are in flight and how many started in the last minute,
// over every Deployment.
type Budget struct {
	InFlight, LastMinute int
}

// Limits bound surge rollouts: at most MaxInFlight at once and MaxPerMinute started in a
// minute; a Deployment's next rollout no sooner than CoolDown after its last (doubling when it
// is selected again within the in-bounds lifetime threshold); a surge pod Pending longer than
// PendingTimeout, or a rollout not complete after Timeout, aborts the rollout; after
// MaxAttempts aborted rollouts in a row a Deployment's surge rollouts stop.
type Limits struct {
	MaxInFlight, MaxPerMinute int
	CoolDown, PendingTimeout  time.Duration
	Timeout                   time.Duration
	MaxAttempts               int
}

// LimitsOf are the limits the configuration sets (config.Default: 2 in flight, 6 a minute, a
// 30-minute cool-down, 5 minutes Pending, a 15-minute deadline, 2 attempts).
func LimitsOf(s config.Surge) Limits {
	return Limits{MaxInFlight: s.MaxInFlight, MaxPerMinute: s.MaxPerMinute, CoolDown: s.CoolDown, PendingTimeout: s.PendingTimeout,
		Timeout: s.Timeout, MaxAttempts: s.MaxAttempts}
}

// DecideInput is what a surge decision is made on.
type DecideInput struct {
	Input
	// Enabled is the surgeRollout configuration key (false while uninstalling): no rollout
	// starts, those in flight are followed to their end.
	Enabled bool
	// Excluded is a Deployment in a namespace the configuration does not select: never written.
	Excluded bool
	Limits   Limits
	Budget   Budget
	Now      time.Time
}

// Decision is what to do with one Deployment, and why.
type Decision struct {
	Action Action
	Reason string
	// Failed is the precondition that does not hold (Skip).
	Failed *Failed
	// Prediction is the prediction a Restart is for.
	Prediction Prediction
	// State is the state to write (Skip, Restart, Complete, Abort, Release, Track).
	State State
	// Template are the template annotations to set (Restart, Abort; "" removes one).
	Template map[string]string
	// Warning says why the Deployment's state was ignored (StateOf), for a Warning Event.
	Warning string
}

// Decide is the surge policy: a pure function of the Deployment, its pods, its VPA, the
// admission controller's liveness, the configuration, the budget and the clock. It never
// restarts when a precondition fails, never twice for one prediction, never inside the
// cool-down and never over the budget; a rollout it started is followed until it completes or
// aborts (restoring what it changed, unless the user changed the Deployment meanwhile).
func Decide(in DecideInput) Decision {
	st, stErr := StateOf(in.Deployment, in.Now)
	dec := decide(in, st)
	if stErr != nil {
		dec.Warning = stErr.Error()
	}
	return dec
}

// decide is Decide on the state st (valid, or the zero State in place of an invalid one).
func decide(in DecideInput, st State) Decision {
	d := in.Deployment
	switch {
	case in.Excluded:
		return Decision{Reason: "the namespace is not selected (namespaceSelector)"}
	case d.Annotations[names.AnnotationSurgeRollout] != "true":
		// Not even a rollout in flight is written: the opt-in was removed, the Deployment is
		// its owner's alone (and the admission policy refuses the function's writes).
		return Decision{Reason: names.AnnotationSurgeRollout + " is not \"true\""}
	case st.Phase == PhaseRolling:
		return follow(in, st)
	case !in.Enabled:
		return Decision{Reason: "surgeRollout is off"}
	}
	if f := Check(in.Input); f != nil {
		if st.Skipped == f.Condition {
			return Decision{Reason: "skipped: " + f.Detail}
		}
		st.Skipped = f.Condition
		return Decision{Action: Skip, Reason: f.Detail, Failed: f, State: st}
	}
	if len(SelectedWithLimits(in.VPA, in.Pods, in.LimitRanges, in.Now, in.Settings)) == 0 {
		return Decision{Reason: "VPA's updater would update no pod"}
	}
	tpl := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
	p, err := PredictWithLimits(in.VPA, tpl, in.LimitRanges)
	if err != nil {
		return Decision{Reason: err.Error()}
	}
	coolDown := in.Limits.CoolDown
	if in.Limits.MaxAttempts > 0 && st.Failures >= in.Limits.MaxAttempts {
		why := fmt.Sprintf("stopped: the last %d surge rollouts were aborted (the last: %s); remove the annotation %s to try again",
			st.Failures, drain.Quote(st.Reason), names.AnnotationSurgeState)
		if st.Skipped == CondGaveUp {
			return Decision{Reason: why}
		}
		st.Skipped = CondGaveUp
		return Decision{Action: Skip, Reason: why, Failed: &Failed{Condition: CondGaveUp, Detail: why}, State: st}
	}
	switch {
	case p.Hash == st.Prediction && st.Phase != PhaseAborted:
		return Decision{Reason: "already rolled out for this prediction " + p.Hash}
	case !st.Started.IsZero() && in.Now.Before(st.Started.Add(st.CoolDown)) && !(st.Unsized && p.Hash == st.Prediction):
		return Decision{Reason: fmt.Sprintf("cool-down until %s", st.Started.Add(st.CoolDown).Format(time.RFC3339))}
	case in.Budget.InFlight >= in.Limits.MaxInFlight:
		return Decision{Reason: fmt.Sprintf("budget: %d rollouts in flight", in.Budget.InFlight)}
	case in.Budget.LastMinute >= in.Limits.MaxPerMinute:
		return Decision{Reason: fmt.Sprintf("budget: %d rollouts started in the last minute", in.Budget.LastMinute)}
	case !st.Started.IsZero() && in.Now.Before(st.Started.Add(in.Settings.InRecommendationBoundsEvictionLifetimeThreshold)):
		coolDown = max(2*st.CoolDown, coolDown) // selected again soon: back off
	}
	// A retry after a pod VPA did not match restores the aborted attempt's template exactly (its
	// restarted-at is the second it started), so the Deployment controller scales up the
	// ReplicaSet it made then, which VPA's caches hold by now, rather than a third one.
	restartedAt := in.Now.UTC().Format(time.RFC3339)
	if st.Unsized && p.Hash == st.Prediction && !st.Started.IsZero() {
		restartedAt = st.Started.UTC().Format(time.RFC3339)
	}
	before := map[string]string{}
	for _, k := range []string{names.AnnotationRestartedAt, names.AnnotationPredictedResources} {
		before[k] = d.Spec.Template.Annotations[k]
	}
	return Decision{
		Action:     Restart,
		Reason:     "VPA's updater would update " + fmt.Sprint(len(in.Pods)) + " pod(s); prediction " + p.Hash,
		Prediction: p,
		State: State{Phase: PhaseRolling, Prediction: p.Hash, Requests: p.Requests, Started: in.Now.UTC().Truncate(time.Second),
			Generation: d.Generation + 1, CoolDown: coolDown, Before: before, Failures: st.Failures},
		Template: map[string]string{names.AnnotationRestartedAt: restartedAt, names.AnnotationPredictedResources: p.Hash},
	}
}

// follow decides on a rollout the function started: complete once the new pods are Available
// and sized as predicted, abort when it makes no progress or they were not sized.
func follow(in DecideInput, st State) Decision {
	d := in.Deployment
	if d.Generation != st.Generation || d.Spec.Template.Annotations[names.AnnotationPredictedResources] != st.Prediction {
		st.Phase, st.Reason = PhaseCompleted, "the Deployment changed during the rollout: the rollout is the user's"
		return Decision{Action: Release, Reason: st.Reason, State: st}
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	gap := max(0, replicas-serving(in.Pods))
	tracked := gap > st.Gap
	if tracked {
		st.Gap = gap
	}
	// rolling's Track writes the state annotation, and the API server counts a Deployment's
	// annotation change as a new generation: the state records the one its write makes.
	tracking := st
	tracking.Generation = d.Generation + 1
	// rolling is the decision while the rollout goes on: Track when the gap grew.
	rolling := func(why string) Decision {
		if tracked {
			return Decision{Action: Track, Reason: fmt.Sprintf("rolling: %s; capacity gap %d", why, gap), State: tracking}
		}
		return Decision{Reason: "rolling: " + why}
	}
	if in.Limits.Timeout > 0 && in.Now.Sub(st.Started) > in.Limits.Timeout {
		return abort(st, fmt.Sprintf("not complete within surgeRolloutTimeout %s", in.Limits.Timeout))
	}
	// Every new pod (its template's prediction annotation, not deleting) must carry the
	// predicted requests (VPA's admission controller sized it): checked as soon as one exists,
	// so a mis-sized rollout is aborted while the old pods still serve.
	newPods := 0
	for _, p := range in.Pods {
		if p.DeletionTimestamp != nil || p.Annotations[names.AnnotationPredictedResources] != st.Prediction {
			continue
		}
		newPods++
		for _, c := range p.Spec.Containers {
			r, ok := st.Requests[c.Name]
			if !ok || equality.Semantic.DeepEqual(r, c.Resources.Requests) {
				continue
			}
			why := fmt.Sprintf("pod %s was not sized as predicted (container %s asks %s, predicted %s)",
				p.Name, c.Name, drain.Quote(listString(c.Resources.Requests)), drain.Quote(listString(r)))
			if _, seen := p.Annotations[annotations.VpaObservedContainersLabel]; !seen {
				// VPA's admission controller did not match the pod to its VPA: it finds a
				// pod's workload in its informers' caches, which may not hold the ReplicaSet
				// the Deployment controller created a moment before the pod. The rollback
				// may be tried again at once (once: it counts as a failed attempt).
				dec := abort(st, why+": VPA's admission controller did not size it (no "+annotations.VpaObservedContainersLabel+
					" annotation: its cache may not have held the new ReplicaSet yet)")
				dec.State.CoolDown, dec.State.Unsized = st.CoolDown, true
				return dec
			}
			return abort(st, why+": does a LimitRange or another webhook change it, or did the recommendation change meanwhile?")
		}
	}
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded",
			c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return abort(st, fmt.Sprintf("%s: %s", drain.Quote(c.Reason), drain.Quote(c.Message)))
		}
	}
	for _, p := range in.Pods {
		if p.Status.Phase == corev1.PodPending && p.DeletionTimestamp == nil && !p.CreationTimestamp.IsZero() &&
			in.Now.Sub(p.CreationTimestamp.Time) > in.Limits.PendingTimeout {
			return abort(st, fmt.Sprintf("surge pod %s Pending for more than %s", p.Name, in.Limits.PendingTimeout))
		}
	}
	if why := rolloutComplete(d, replicas); why != "" {
		return rolling(why)
	}
	if newPods == 0 {
		return rolling("no pod of the new template read yet")
	}
	st.Phase, st.Reason, st.Failures = PhaseCompleted, "the new pods are Available with the predicted requests", 0
	return Decision{Action: Complete, Reason: st.Reason, State: st}
}

// serving counts the pods that are Ready (drain.Ready) and not deleting.
func serving(pods []*corev1.Pod) int32 {
	n := int32(0)
	for _, p := range pods {
		if p.DeletionTimestamp == nil && drain.Ready(p) {
			n++
		}
	}
	return n
}

// abort restores the template annotations the restart changed (a rollout back to the old pods,
// which kept serving) and doubles the cool-down. The prediction is not tried again: the next
// one is.
func abort(st State, why string) Decision {
	tpl := map[string]string{}
	for k, v := range st.Before {
		tpl[k] = v
	}
	st.Phase, st.Reason = PhaseAborted, why
	st.CoolDown *= 2 // back off
	st.Failures++
	return Decision{Action: Abort, Reason: why, State: st, Template: tpl}
}

// listString is a resource list as name=quantity pairs, in name order.
func listString(l corev1.ResourceList) string {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, string(n))
	}
	slices.Sort(names)
	for i, n := range names {
		q := l[corev1.ResourceName(n)]
		names[i] = n + "=" + q.String()
	}
	return strings.Join(names, ",")
}
