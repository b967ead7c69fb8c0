package surge

import (
	corev1 "k8s.io/api/core/v1"

	"function/names"
)

// Action is what a surge decision does.
type Action int

// The actions of a surge decision. Each has its entry in actions (what it is called, counted,
// recorded and replied as): adding one is one constant and one entry.
const (
	// None writes nothing.
	None Action = iota
	// Skip records that a precondition fails (State.Skipped, a SurgeRolloutSkipped Event).
	Skip
	// Restart starts the rollout: the template annotations and the state, one guarded patch.
	Restart
	// Complete records a completed rollout.
	Complete
	// Abort restores the template annotations the restart changed and backs off.
	Abort
	// Release records that the user changed the Deployment during the rollout: theirs now.
	Release
	// Track records a larger capacity gap of a rollout in flight (State.Gap), nothing else.
	Track

	// numActions counts the actions: keep it last (actions has one entry per action).
	numActions
)

// OutcomeFailed is the metric outcome of a surge write the API server refused for good, and of
// the Skip that gives up after Limits.MaxAttempts aborted rollouts (Decision.Outcome).
const OutcomeFailed = "failed"

// actionSpec is what an action is called, counted, recorded and replied as. A field an action
// has none of is absent (never left empty: TestActionsAreComplete).
type actionSpec struct {
	// name is its String(): logs, the surge pass's counts, the refused-write key.
	name string
	// outcome is the surge_rollouts metric's outcome, also a reply's outcome.
	outcome string
	// eventType and reason are the Kubernetes Event recorded on the Deployment when it is
	// applied.
	eventType, reason string
	// reply is the type of the reply CloudEvent that reports it.
	reply string
	// ends: the action ends the rollout in flight (its budget slot ends, its duration is
	// measured).
	ends bool
}

// absent marks a field of actionSpec the action has none of.
const absent = "-"

// actions is the one table of the actions.
var actions = [numActions]actionSpec{
	None:     {name: "none", outcome: "none", eventType: absent, reason: absent, reply: absent},
	Skip:     {name: "skip", outcome: "skipped", eventType: corev1.EventTypeNormal, reason: names.EventSurgeRolloutSkipped, reply: absent},
	Restart:  {name: "restart", outcome: "started", eventType: corev1.EventTypeNormal, reason: names.EventSurgeRolloutStarted, reply: names.ReplyRolloutStarted},
	Complete: {name: "complete", outcome: "completed", eventType: corev1.EventTypeNormal, reason: names.EventSurgeRolloutCompleted, reply: names.ReplyRolloutCompleted, ends: true},
	Abort:    {name: "abort", outcome: "aborted", eventType: corev1.EventTypeWarning, reason: names.EventSurgeRolloutAborted, reply: names.ReplyRolloutAborted, ends: true},
	Release:  {name: "release", outcome: "released", eventType: corev1.EventTypeNormal, reason: names.EventSurgeRolloutCompleted, reply: names.ReplyRolloutCompleted, ends: true},
	Track:    {name: "track", outcome: "tracked", eventType: absent, reason: absent, reply: absent},
}

// present is v, or "" for absent.
func present(v string) string {
	if v == absent {
		return ""
	}
	return v
}

func (a Action) String() string { return actions[a].name }

// Outcome is the surge_rollouts metric's outcome of the action applied (Decision.Outcome says
// it of a decision).
func (a Action) Outcome() string { return actions[a].outcome }

// EventType is the type (Normal, Warning) of the Kubernetes Event the action records when
// applied, "" for none (None, Track); Decision.Event says it of a decision.
func (a Action) EventType() string { return present(actions[a].eventType) }

// EventReason is the reason of the Kubernetes Event the action records when applied (one of
// the Event* reasons), "" for none (None, Track); Decision.Event says it of a decision.
func (a Action) EventReason() string { return present(actions[a].reason) }

// ReplyType is the type of the reply CloudEvent that reports the action (one of the Reply*
// types), "" for none (None; Skip: its Event says it; Track).
func (a Action) ReplyType() string { return present(actions[a].reply) }

// Ends reports whether the action ends the rollout in flight (Complete, Abort, Release).
func (a Action) Ends() bool { return actions[a].ends }

// gaveUp: the decision is the Skip that reports Limits.MaxAttempts aborted rollouts in a row.
func (d Decision) gaveUp() bool { return d.Failed != nil && d.Failed.Condition == CondGaveUp }

// Outcome is the surge_rollouts metric's outcome of the decision applied: its action's, but
// OutcomeFailed for the Skip that gives up (CondGaveUp).
func (d Decision) Outcome() string {
	if d.gaveUp() {
		return OutcomeFailed
	}
	return d.Action.Outcome()
}

// Event is the type and reason of the Kubernetes Event the decision records when applied: its
// action's, but a Warning EventFailed for the Skip that gives up (CondGaveUp); "" for none.
func (d Decision) Event() (eventType, reason string) {
	if d.gaveUp() {
		return corev1.EventTypeWarning, names.EventSurgeRolloutFailed
	}
	return d.Action.EventType(), d.Action.EventReason()
}
