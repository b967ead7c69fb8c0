package eventing

import "github.com/cloudevents/sdk-go/v2/event"

// Sweep requests: the function sweeps every pod when it receives one.
const (
	// TypeSweep asks for a sweep (curl, a CronJob, any scheduler).
	TypeSweep = "dev.vpagracefuldrain.sweep"
	// TypePing is a Knative PingSource tick: eventing/knative.yaml's PingSource sends one a
	// minute, and only the Trigger for it delivers this type to the function.
	TypePing = "dev.knative.sources.ping"
)

// IsSweep reports whether e asks for a sweep.
func IsSweep(e event.Event) bool {
	return e.Type() == TypeSweep || e.Type() == TypePing
}
