package eventing

import (
	"fmt"
	"math"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"function/handlers"
	"function/handlers/advice"
	"function/handlers/drain"
)

// Reply event types, one per action.
const (
	TypeFinalizerAdded   = "dev.vpagracefuldrain.finalizer.added"
	TypeDrainStarted     = "dev.vpagracefuldrain.drain.started"
	TypeFinalizerRemoved = "dev.vpagracefuldrain.finalizer.removed"
	// TypeAdvice replaces finalizer.added when adding the finalizer found what defeats a
	// graceful eviction of the pod's owner (once per owner, at most daily): the same data,
	// plus the owner and the findings with their fixes.
	TypeAdvice = "dev.vpagracefuldrain.advice"
)

// Source is the source attribute of every reply.
const Source = "vpagracefuldrain.dev/function"

// ExtensionDryRun marks replies for actions that were decided but not written.
const ExtensionDryRun = "dryrun"

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
		e.SetType(TypeFinalizerAdded)
		if out.Advice != nil && len(out.Advice.Findings) > 0 {
			e.SetType(TypeAdvice)
			data.Findings = out.Advice.Findings
		}
	case drain.StartDrain:
		e.SetType(TypeDrainStarted)
		data.Started, data.Deadline = d.Started.Format(time.RFC3339), d.Deadline.Format(time.RFC3339)
		data.Deletion, data.Gates = d.Deletion(), d.Gates
	case drain.RemoveFinalizer:
		e.SetType(TypeFinalizerRemoved)
		e.SetExtension("reason", d.Reason)
		data.Reason, data.Gates = d.Reason, d.Gates
		secs := math.Round(d.DrainSeconds(out.At)*1000) / 1000
		data.DrainSeconds = &secs
	default:
		return nil, nil
	}
	e.SetID(uuid.NewString())
	e.SetSource(Source)
	e.SetSubject(PodPath(pod.Namespace, pod.Name))
	e.SetTime(out.At)
	if out.DryRun {
		e.SetExtension(ExtensionDryRun, "true")
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
