package surge_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"

	"function/handlers/surge"
)

// What each action is called, counted, recorded and replied as: the names logs and the pass's
// counts use, the surge_rollouts outcomes, the Kubernetes Events on the Deployment and the
// reply CloudEvent types, as users see them (README "Surge rollouts").
func TestActions(t *testing.T) {
	tests := []struct {
		action                   surge.Action
		name, outcome            string
		eventType, reason, reply string
		ends                     bool
	}{
		{action: surge.None, name: "none", outcome: "none"},
		{action: surge.Skip, name: "skip", outcome: "skipped", eventType: corev1.EventTypeNormal, reason: "SurgeRolloutSkipped"},
		{action: surge.Restart, name: "restart", outcome: "started", eventType: corev1.EventTypeNormal, reason: "SurgeRolloutStarted",
			reply: "dev.vpagracefuldrain.rollout.started"},
		{action: surge.Complete, name: "complete", outcome: "completed", eventType: corev1.EventTypeNormal, reason: "SurgeRolloutCompleted",
			reply: "dev.vpagracefuldrain.rollout.completed", ends: true},
		{action: surge.Abort, name: "abort", outcome: "aborted", eventType: corev1.EventTypeWarning, reason: "SurgeRolloutAborted",
			reply: "dev.vpagracefuldrain.rollout.aborted", ends: true},
		{action: surge.Release, name: "release", outcome: "released", eventType: corev1.EventTypeNormal, reason: "SurgeRolloutCompleted",
			reply: "dev.vpagracefuldrain.rollout.completed", ends: true},
		{action: surge.Track, name: "track", outcome: "tracked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.action
			assert.Equal(t, tt.name, a.String(), "name")
			assert.Equal(t, tt.outcome, a.Outcome(), "outcome")
			assert.Equal(t, tt.eventType, a.EventType(), "Event type")
			assert.Equal(t, tt.reason, a.EventReason(), "Event reason")
			assert.Equal(t, tt.reply, a.ReplyType(), "reply type")
			assert.Equal(t, tt.ends, a.Ends(), "ends the rollout")
			dec := surge.Decision{Action: a}
			typ, reason := dec.Event()
			assert.Equal(t, [2]string{tt.eventType, tt.reason}, [2]string{typ, reason}, "a decision's Event is its action's")
			assert.Equal(t, tt.outcome, dec.Outcome(), "a decision's outcome is its action's")
		})
	}
}

// The Skip that gives up after surgeMaxAttempts aborted rollouts is a Warning
// SurgeRolloutFailed, outcome failed; another Skip is its action's.
func TestDecisionGaveUp(t *testing.T) {
	gaveUp := surge.Decision{Action: surge.Skip, Failed: &surge.Failed{Condition: surge.CondGaveUp}}
	typ, reason := gaveUp.Event()
	assert.Equal(t, corev1.EventTypeWarning, typ)
	assert.Equal(t, "SurgeRolloutFailed", reason)
	assert.Equal(t, "failed", gaveUp.Outcome())

	skipped := surge.Decision{Action: surge.Skip, Failed: &surge.Failed{Condition: surge.CondPaused}}
	typ, reason = skipped.Event()
	assert.Equal(t, corev1.EventTypeNormal, typ)
	assert.Equal(t, "SurgeRolloutSkipped", reason)
	assert.Equal(t, "skipped", skipped.Outcome())
}
