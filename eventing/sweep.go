package eventing

import (
	"github.com/cloudevents/sdk-go/v2/event"

	"function/names"
)

// IsSweep reports whether e asks for a sweep.
func IsSweep(e event.Event) bool {
	return e.Type() == names.TypeSweep || e.Type() == names.TypePing
}
