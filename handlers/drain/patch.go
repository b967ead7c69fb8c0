package drain

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"function/names"
)

// op is one RFC 6902 JSON patch operation.
type op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// Patch builds the JSON patch that applies d to pod, the pod as read from the API server.
// Every patch starts with `test` ops on metadata.uid and metadata.resourceVersion (the
// decision was made on exactly that state: it applies to nothing else), then on each value
// the decision read (the finalizer at its index, the
// annotations that made the pod managed or unmanaged, the drain annotations and overrides,
// the evidence that the containers stopped), so it fails with 422 instead of changing a pod
// whose live state differs from what was decided on. A key that was absent is tested as
// null, which the API server's JSON patch treats as "still absent".
func Patch(pod *corev1.Pod, d Decision) ([]byte, error) {
	ops := []op{{Op: "test", Path: "/metadata/uid", Value: string(pod.UID)}}
	if pod.ResourceVersion != "" {
		ops = append(ops, op{Op: "test", Path: "/metadata/resourceVersion", Value: pod.ResourceVersion})
	}
	switch d.Action {
	case AddFinalizer:
		ops = append(ops, testAnnotations(pod, []string{d.ManagedBy})...)
		if len(pod.Finalizers) == 0 {
			ops = append(ops,
				op{Op: "test", Path: "/metadata/finalizers", Value: nil},
				op{Op: "add", Path: "/metadata/finalizers", Value: []string{names.Finalizer}})
		} else {
			ops = append(ops,
				op{Op: "test", Path: "/metadata/finalizers", Value: pod.Finalizers},
				op{Op: "add", Path: "/metadata/finalizers/-", Value: names.Finalizer})
		}
	case StartDrain:
		if pod.DeletionTimestamp == nil {
			return nil, fmt.Errorf("action %s on a pod that is not deleting", d.Action)
		}
		// A drain is stamped only on a pod that is deleting, as read.
		ops = append(ops, testFinalizer(d),
			op{Op: "test", Path: "/metadata/deletionTimestamp", Value: pod.DeletionTimestamp.UTC().Format(time.RFC3339)})
		// The deadline written depends on the timeout override: guard it too.
		ops = append(ops, testAnnotations(pod, []string{d.ManagedBy, names.AnnotationDrainStarted, names.AnnotationDrainTimeout})...)
		ops = append(ops,
			op{Op: "add", Path: annotationPath(names.AnnotationDrainStarted), Value: d.Started.UTC().Format(time.RFC3339)},
			op{Op: "add", Path: annotationPath(names.AnnotationDrainDeadline), Value: d.Deadline.UTC().Format(time.RFC3339)})
	case RemoveFinalizer:
		ops = append(ops, testFinalizer(d))
		switch d.Reason {
		case names.ReasonUnmanaged:
			ops = append(ops, testAnnotations(pod, append([]string{names.AnnotationManaged}, names.VPAAnnotations()...))...)
		case names.ReasonNotEvicted:
			// Only a pod that is really deleting, with the deletion read, is let go unheld.
			if pod.DeletionTimestamp != nil {
				ops = append(ops, op{Op: "test", Path: "/metadata/deletionTimestamp", Value: pod.DeletionTimestamp.UTC().Format(time.RFC3339)})
			}
		case names.ReasonDrained, names.ReasonReplaced, names.ReasonTimeout:
			// The drain's annotations and the overrides of the gates it was decided on (Gates).
			ops = append(ops, testAnnotations(pod, append([]string{names.AnnotationDrainStarted, names.AnnotationDrainDeadline, names.AnnotationGracePeriod, names.AnnotationDrainTimeout},
				gateAnnotations()...))...)
			if d.Reason != names.ReasonTimeout {
				ops = append(ops, testStopped(pod, d)...)
			}
		}
		ops = append(ops, op{Op: "remove", Path: fmt.Sprintf("/metadata/finalizers/%d", d.FinalizerIndex)})
	default:
		return nil, fmt.Errorf("action %s writes nothing", d.Action)
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encoding patch: %w", err)
	}
	return b, nil
}

func testFinalizer(d Decision) op {
	return op{Op: "test", Path: fmt.Sprintf("/metadata/finalizers/%d", d.FinalizerIndex), Value: names.Finalizer}
}

// testAnnotations guards annotation keys at the values read (null when absent).
func testAnnotations(pod *corev1.Pod, keys []string) []op {
	if pod.Annotations == nil {
		return []op{{Op: "test", Path: "/metadata/annotations", Value: nil}}
	}
	ops := make([]op, 0, len(keys))
	for _, k := range keys {
		var v any
		if s, ok := pod.Annotations[k]; ok {
			v = s
		}
		ops = append(ops, op{Op: "test", Path: annotationPath(k), Value: v})
	}
	return ops
}

// testStopped guards the evidence that the containers stopped.
func testStopped(pod *corev1.Pod, d Decision) []op {
	switch d.Stopped {
	case GraceZero:
		return []op{{Op: "test", Path: "/metadata/deletionGracePeriodSeconds", Value: 0}}
	case TerminalPhase:
		return []op{{Op: "test", Path: "/status/phase", Value: string(pod.Status.Phase)}}
	}
	// Every container terminated: a non-null scalar inside each terminated state is present
	// only while that container is still terminated.
	ops := make([]op, 0, 2*len(pod.Status.ContainerStatuses))
	for i, s := range pod.Status.ContainerStatuses {
		ops = append(ops,
			op{Op: "test", Path: fmt.Sprintf("/status/containerStatuses/%d/name", i), Value: s.Name},
			op{Op: "test", Path: fmt.Sprintf("/status/containerStatuses/%d/state/terminated/exitCode", i), Value: s.State.Terminated.ExitCode})
	}
	// Native sidecars (restartable init containers) count too.
	for _, i := range sidecars(pod) {
		sc := pod.Status.InitContainerStatuses[i]
		ops = append(ops,
			op{Op: "test", Path: fmt.Sprintf("/status/initContainerStatuses/%d/name", i), Value: sc.Name},
			op{Op: "test", Path: fmt.Sprintf("/status/initContainerStatuses/%d/state/terminated/exitCode", i), Value: sc.State.Terminated.ExitCode})
	}
	return ops
}

func annotationPath(key string) string {
	return "/metadata/annotations/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
