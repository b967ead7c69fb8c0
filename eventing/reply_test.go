package eventing_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"function/config"
	"function/eventing"
	"function/handlers"
	"function/handlers/advice"
	"function/handlers/drain"
	"function/handlers/surge"
	"function/names"
)

var replyAt = time.Date(2026, 11, 26, 5, 10, 30, 500_000_000, time.UTC)

func replyPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "prod", UID: "uid-1"}}
}

func TestReplyNothingToReport(t *testing.T) {
	tests := []struct {
		name string
		out  handlers.Outcome
	}{
		{"not applied", handlers.Outcome{Pod: replyPod(), Decision: drain.Decision{Action: drain.AddFinalizer}, At: replyAt}},
		{"not applied, dry-run", handlers.Outcome{Pod: replyPod(), Decision: drain.Decision{Action: drain.RemoveFinalizer}, DryRun: true, At: replyAt}},
		{"no pod (reference to a pod that is gone)", handlers.Outcome{Applied: true, Decision: drain.Decision{Action: drain.AddFinalizer}, At: replyAt}},
		{"applied none", handlers.Outcome{Pod: replyPod(), Applied: true, Decision: drain.Decision{Action: drain.None}, At: replyAt}},
		{"applied wait", handlers.Outcome{Pod: replyPod(), Applied: true, Decision: drain.Decision{Action: drain.Wait}, At: replyAt}},
		{"zero outcome", handlers.Outcome{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := eventing.Reply(tt.out)
			require.NoError(t, err)
			assert.Nil(t, e)
		})
	}
}

func TestReply(t *testing.T) {
	started := time.Date(2026, 11, 26, 5, 10, 0, 0, time.UTC)
	tests := []struct {
		name     string
		decision drain.Decision
		advice   *handlers.Advice
		dryRun   bool
		wantType string
		wantData map[string]any
	}{
		{
			name:     "finalizer added",
			decision: drain.Decision{Action: drain.AddFinalizer, ManagedBy: "vpa-managed", FinalizerIndex: -1},
			wantType: names.ReplyFinalizerAdded,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1"},
		},
		{
			name:     "finalizer added, dry-run",
			decision: drain.Decision{Action: drain.AddFinalizer, FinalizerIndex: -1},
			dryRun:   true,
			wantType: names.ReplyFinalizerAdded,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1"},
		},
		{
			name:     "finalizer added with advice",
			decision: drain.Decision{Action: drain.AddFinalizer, FinalizerIndex: -1, Kind: config.KindDeployment, Owner: "web"},
			advice: &handlers.Advice{Namespace: "prod", Owner: drain.Owner{Kind: config.KindDeployment, Name: "web"},
				Findings: []advice.Finding{{ID: advice.FindingSingleReplica, Message: "one replica", Fix: "replicas: 2"}}},
			wantType: names.ReplyAdvice,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "ownerKind": "Deployment", "owner": "web",
				"findings": []any{map[string]any{"id": "single-replica", "message": "one replica", "fix": "replicas: 2"}}},
		},
		{
			name:     "finalizer added, advice with no findings",
			decision: drain.Decision{Action: drain.AddFinalizer, FinalizerIndex: -1},
			advice:   &handlers.Advice{Namespace: "prod"},
			wantType: names.ReplyFinalizerAdded,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1"},
		},
		{
			name: "drain started: an eviction, with its gates",
			decision: drain.Decision{Action: drain.StartDrain, Started: started, Deadline: started.Add(5 * time.Minute), Evicted: true,
				Kind: config.KindDeployment, Owner: "web", Gates: []drain.Gate{{Name: names.GateContainers, Detail: "containers running"}, {Name: names.GateReplacement}}},
			wantType: names.ReplyDrainStarted,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "started": "2026-11-26T05:10:00Z", "deadline": "2026-11-26T05:15:00Z",
				"deletion": "eviction", "ownerKind": "Deployment", "owner": "web",
				"gates": []any{map[string]any{"name": "containers-stopped", "open": false, "detail": "containers running"}, map[string]any{"name": "replacement-ready", "open": false}}},
		},
		{
			name:     "drain started: a plain delete (holdOn: all)",
			decision: drain.Decision{Action: drain.StartDrain, Started: started, Deadline: started.Add(5 * time.Minute)},
			wantType: names.ReplyDrainStarted,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "started": "2026-11-26T05:10:00Z", "deadline": "2026-11-26T05:15:00Z", "deletion": "delete"},
		},
		{
			name:     "finalizer removed: replaced",
			decision: drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonReplaced, Started: started, Kind: config.KindDeployment, Owner: "web"},
			wantType: names.ReplyFinalizerRemoved,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "reason": "replaced", "drainSeconds": 30.5, "ownerKind": "Deployment", "owner": "web"},
		},
		{
			name:     "finalizer removed: not evicted",
			decision: drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonNotEvicted},
			wantType: names.ReplyFinalizerRemoved,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "reason": "not-evicted", "drainSeconds": 0.0},
		},
		{
			name:     "finalizer removed: drained",
			decision: drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonDrained, Started: started, Stopped: drain.AllTerminated},
			wantType: names.ReplyFinalizerRemoved,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "reason": "drained", "drainSeconds": 30.5},
		},
		{
			name:     "finalizer removed: drained, dry-run",
			decision: drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonDrained, Started: started},
			dryRun:   true,
			wantType: names.ReplyFinalizerRemoved,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "reason": "drained", "drainSeconds": 30.5},
		},
		{
			name:     "finalizer removed: timeout, rounded to milliseconds",
			decision: drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonTimeout, Started: replyAt.Add(-300*time.Second - 1234567*time.Nanosecond)},
			wantType: names.ReplyFinalizerRemoved,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "reason": "timeout", "drainSeconds": 300.001},
		},
		{
			name:     "finalizer removed: unmanaged, no drain",
			decision: drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonUnmanaged},
			wantType: names.ReplyFinalizerRemoved,
			wantData: map[string]any{"namespace": "prod", "name": "web-1", "uid": "uid-1", "reason": "unmanaged", "drainSeconds": 0.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := eventing.Reply(handlers.Outcome{Pod: replyPod(), Decision: tt.decision, Applied: true, DryRun: tt.dryRun, At: replyAt, Advice: tt.advice})
			require.NoError(t, err)
			require.NotNil(t, e)
			require.NoError(t, e.Validate())

			assert.Equal(t, tt.wantType, e.Type())
			assert.Equal(t, names.ReplySource, e.Source())
			assert.Equal(t, "vpagracefuldrain.dev/function", e.Source())
			assert.Equal(t, "/apis/v1/namespaces/prod/pods/web-1", e.Subject())
			assert.NotEmpty(t, e.ID())
			assert.Equal(t, replyAt, e.Time())
			assert.Equal(t, "application/json", e.DataContentType())

			v, ok := e.Extensions()[names.ExtensionDryRun]
			if tt.dryRun {
				require.True(t, ok, "dry-run replies carry the dryrun extension")
				assert.Equal(t, "true", v)
			} else {
				assert.False(t, ok, "no dryrun extension outside dry-run")
			}

			var data map[string]any
			require.NoError(t, json.Unmarshal(e.Data(), &data))
			assert.Equal(t, tt.wantData, data)

			// finalizer.removed carries its reason as an extension too, for Trigger filters.
			reason, ok := e.Extensions()["reason"]
			if tt.wantType == names.ReplyFinalizerRemoved {
				assert.Equal(t, tt.wantData["reason"], reason)
			} else {
				assert.False(t, ok, "reason extension only on finalizer.removed")
			}
		})
	}
}

func TestReplyIDsAreUnique(t *testing.T) {
	out := handlers.Outcome{Pod: replyPod(), Decision: drain.Decision{Action: drain.AddFinalizer}, Applied: true, At: replyAt}
	a, err := eventing.Reply(out)
	require.NoError(t, err)
	b, err := eventing.Reply(out)
	require.NoError(t, err)
	assert.NotEqual(t, a.ID(), b.ID())
}

func TestPodPath(t *testing.T) {
	assert.Equal(t, "/apis/v1/namespaces/default/pods/web-7d9f8-abcde", eventing.PodPath("default", "web-7d9f8-abcde"))
}

// A surge decision applied is reported about the Deployment: started with the predicted
// requests, completed (or released) and aborted with the duration and the capacity gap; a
// skip, a tracked gap and nothing have no reply.
func TestRolloutReply(t *testing.T) {
	requests := map[string]corev1.ResourceList{"app": {corev1.ResourceCPU: resource.MustParse("500m")}}
	started := replyAt.Add(-11 * time.Second)
	report := func(a surge.Action, dryRun bool) *handlers.SurgeReport {
		return &handlers.SurgeReport{Namespace: "prod", Name: "web", UID: "uid-web", DryRun: dryRun, At: replyAt,
			Decision: surge.Decision{Action: a, Reason: "why", State: surge.State{Prediction: "abc", Requests: requests, Started: started, Gap: 1}}}
	}
	tests := []struct {
		name     string
		rep      *handlers.SurgeReport
		wantType string // "": no reply
		want     eventing.RolloutData
	}{
		{"started", report(surge.Restart, false), names.ReplyRolloutStarted,
			eventing.RolloutData{Namespace: "prod", Name: "web", UID: "uid-web", Outcome: "started", Reason: "why", Prediction: "abc", Requests: requests}},
		{"completed", report(surge.Complete, false), names.ReplyRolloutCompleted,
			eventing.RolloutData{Namespace: "prod", Name: "web", UID: "uid-web", Outcome: "completed", Reason: "why", Prediction: "abc", Seconds: ptr.To(11.0), CapacityGap: ptr.To[int32](1)}},
		{"released: completed by the user", report(surge.Release, false), names.ReplyRolloutCompleted,
			eventing.RolloutData{Namespace: "prod", Name: "web", UID: "uid-web", Outcome: "released", Reason: "why", Prediction: "abc", Seconds: ptr.To(11.0), CapacityGap: ptr.To[int32](1)}},
		{"aborted, dry-run", report(surge.Abort, true), names.ReplyRolloutAborted,
			eventing.RolloutData{Namespace: "prod", Name: "web", UID: "uid-web", Outcome: "aborted", Reason: "why", Prediction: "abc", Seconds: ptr.To(11.0), CapacityGap: ptr.To[int32](1)}},
		{"skipped: the Event says it", report(surge.Skip, false), "", eventing.RolloutData{}},
		{"a gap tracked", report(surge.Track, false), "", eventing.RolloutData{}},
		{"nothing", nil, "", eventing.RolloutData{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := eventing.RolloutReply(tt.rep)
			require.NoError(t, err)
			if tt.wantType == "" {
				assert.Nil(t, e)
				return
			}
			require.NotNil(t, e)
			require.NoError(t, e.Validate())
			assert.Equal(t, tt.wantType, e.Type())
			assert.Equal(t, names.ReplySource, e.Source())
			assert.Equal(t, "/apis/apps/v1/namespaces/prod/deployments/web", e.Subject())
			assert.Equal(t, tt.want.Outcome, e.Extensions()["outcome"])
			_, dry := e.Extensions()[names.ExtensionDryRun]
			assert.Equal(t, tt.rep.DryRun, dry)
			var got eventing.RolloutData
			require.NoError(t, json.Unmarshal(e.Data(), &got))
			assert.Equal(t, tt.want, got)
		})
	}
}
