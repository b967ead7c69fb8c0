package eventing

import (
	"fmt"
	"math"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"

	"function/handlers"
	"function/handlers/advice"
	"function/handlers/drain"
	"function/handlers/surge"
	"function/names"
)

// ReplyData is the JSON data of a reply event.
type ReplyData struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	// Reason is set on finalizer.removed: one of drain's removal reasons (handlers/drain/names.go).
	Reason string `json:"reason,omitempty"`
	// DrainSeconds is set on finalizer.removed: seconds since the drain started.
	DrainSeconds *float64 `json:"drainSeconds,omitempty"`
	// Started and Deadline are set on drain.started (RFC 3339).
	Started  string `json:"started,omitempty"`
	Deadline string `json:"deadline,omitempty"`
	// Deletion is set on drain.started: "eviction" (through the Eviction API) or "delete".
	Deletion string `json:"deletion,omitempty"`
	// OwnerKind and Owner name the pod's workload (a Deployment for its ReplicaSet's pods).
	OwnerKind string `json:"ownerKind,omitempty"`
	Owner     string `json:"owner,omitempty"`
	// Gates are what the drain waits for (drain.started) or waited for (finalizer.removed).
	Gates []drain.Gate `json:"gates,omitempty"`
	// Findings are set on advice: what defeats a graceful eviction, each with its fix.
	Findings []advice.Finding `json:"findings,omitempty"`
}

// Reply is the CloudEvent that reports what the function did, or nil when it did nothing.
func Reply(out handlers.Outcome) (*event.Event, error) {
	if !out.Applied || out.Pod == nil {
		return nil, nil
	}
	d, pod := out.Decision, out.Pod
	data := ReplyData{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), OwnerKind: string(d.Kind), Owner: d.Owner}
	e := event.New()
	switch d.Action {
	case drain.AddFinalizer:
		e.SetType(names.ReplyFinalizerAdded)
		if out.Advice != nil && len(out.Advice.Findings) > 0 {
			e.SetType(names.ReplyAdvice)
			data.Findings = out.Advice.Findings
		}
	case drain.StartDrain:
		e.SetType(names.ReplyDrainStarted)
		data.Started, data.Deadline = d.Started.Format(time.RFC3339), d.Deadline.Format(time.RFC3339)
		data.Deletion, data.Gates = d.Deletion(), d.Gates
	case drain.RemoveFinalizer:
		e.SetType(names.ReplyFinalizerRemoved)
		e.SetExtension("reason", d.Reason)
		data.Reason, data.Gates = d.Reason, d.Gates
		secs := math.Round(d.DrainSeconds(out.At)*1000) / 1000
		data.DrainSeconds = &secs
	default:
		return nil, nil
	}
	e.SetID(uuid.NewString())
	e.SetSource(names.ReplySource)
	e.SetSubject(PodPath(pod.Namespace, pod.Name))
	e.SetTime(out.At)
	if out.DryRun {
		e.SetExtension(names.ExtensionDryRun, "true")
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return nil, fmt.Errorf("encoding reply data: %w", err)
	}
	return &e, nil
}

// RolloutData is the JSON data of a rollout.* reply: the Deployment, what was decided and why.
type RolloutData struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	// Outcome is the metric's: started, completed, released (the user changed the Deployment
	// during the rollout: theirs now) or aborted; also the extension attribute `outcome`.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
	// Prediction is the hash of the predicted requests the rollout is for; Requests (started)
	// are those requests, by container.
	Prediction string                         `json:"prediction,omitempty"`
	Requests   map[string]corev1.ResourceList `json:"requests,omitempty"`
	// Seconds (from the start) and CapacityGap (the most replicas short of Ready pods seen)
	// are set when the rollout ended.
	Seconds     *float64 `json:"seconds,omitempty"`
	CapacityGap *int32   `json:"capacityGap,omitempty"`
}

// RolloutReply is the CloudEvent that reports a surge-rollout decision, or nil for one without
// a reply (none, a skip: its Event says it, a tracked gap).
func RolloutReply(rep *handlers.SurgeReport) (*event.Event, error) {
	if rep == nil {
		return nil, nil
	}
	typ := rep.Decision.Action.ReplyType() // (surge's table of actions)
	if typ == "" {
		return nil, nil
	}
	st := rep.Decision.State
	outcome := rep.Decision.Action.Outcome()
	data := RolloutData{Namespace: rep.Namespace, Name: rep.Name, UID: string(rep.UID), Outcome: outcome, Reason: rep.Decision.Reason,
		Prediction: st.Prediction}
	if rep.Decision.Action == surge.Restart {
		data.Requests = st.Requests
	} else {
		secs := math.Round(rep.At.Sub(st.Started).Seconds()*1000) / 1000
		data.Seconds, data.CapacityGap = &secs, &st.Gap
	}
	e := event.New()
	e.SetType(typ)
	e.SetID(uuid.NewString())
	e.SetSource(names.ReplySource)
	e.SetSubject("/apis/apps/v1/namespaces/" + rep.Namespace + "/deployments/" + rep.Name)
	e.SetTime(rep.At)
	e.SetExtension("outcome", outcome)
	if rep.DryRun {
		e.SetExtension(names.ExtensionDryRun, "true")
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return nil, fmt.Errorf("encoding reply data: %w", err)
	}
	return &e, nil
}

// PodPath is the pod's API path, as ApiServerSource writes it in the subject attribute.
func PodPath(namespace, name string) string {
	return ObjectPath(ObjectPod, namespace, name)
}
