package draintest

import (
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/names"
)

// What FuzzPod's flags turn on (FuzzDecide's and FuzzReconcileEventCopy's inputs).
const (
	FzManaged       = 1 << iota // annotation vpa-managed = managedVal
	FzVPA                       // annotation vpaUpdates (a VPA annotation)
	FzStarted                   // annotation drain-started
	FzStartedAt                 // ... = the RFC 3339 time at startedOff, else startedVal
	FzDeadline                  // annotation drain-deadline
	FzDeadlineAt                // ... = the RFC 3339 time at deadlineOff, else deadlineVal
	FzGrace                     // annotation grace-period-seconds = graceVal
	FzTimeout                   // annotation drain-timeout-seconds = timeoutVal
	FzOurs                      // our finalizer, at finalizerPos among the foreign ones
	FzDeleting                  // deletionTimestamp at deletionOff
	FzDeletionGrace             // deletionGracePeriodSeconds = deletionGrace
	FzExcluded                  // namespace kube-system (excluded by default)
)

// ForeignFinalizers are other finalizers, some of them lookalikes of ours.
var ForeignFinalizers = []string{
	"example.com/a", "vpagracefuldrain.dev/Drain", "kubernetes.io/pvc-protection", "vpagracefuldrain.dev/drain-x",
	"vpagracefuldrain.dev/drain/", "foregroundDeletion", " vpagracefuldrain.dev/drain",
}

var FuzzPhases = []corev1.PodPhase{"", corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown, "Bogus"}

// FuzzPod builds a pod from a fuzzer's inputs; its times are offsets in milliseconds from
// the tests' Now, so they reach any year (and beyond what RFC 3339 can write).
func FuzzPod(flags uint16, managedVal, startedVal, deadlineVal, graceVal, timeoutVal string,
	startedOff, deadlineOff, deletionOff, deletionGrace int64, finalizerPos, foreign, containers, phaseIdx uint8,
) *corev1.Pod {
	at := func(offMillis int64) time.Time { return time.UnixMilli(Now.UnixMilli() + offMillis).UTC() }
	pod := NewPod()
	pod.Status.ContainerStatuses = nil
	annotations := map[string]string{"app.kubernetes.io/name": "web"}
	set := func(flag uint16, key, value string) {
		if flags&flag != 0 {
			annotations[key] = value
		}
	}
	set(FzManaged, names.AnnotationManaged, managedVal)
	set(FzVPA, "vpaUpdates", "Pod resources updated by web")
	if flags&FzStartedAt != 0 {
		startedVal = Stamp(at(startedOff))
	}
	set(FzStarted, names.AnnotationDrainStarted, startedVal)
	if flags&FzDeadlineAt != 0 {
		deadlineVal = Stamp(at(deadlineOff))
	}
	set(FzDeadline, names.AnnotationDrainDeadline, deadlineVal)
	set(FzGrace, names.AnnotationGracePeriod, graceVal)
	set(FzTimeout, names.AnnotationDrainTimeout, timeoutVal)
	pod.Annotations = annotations

	fins := slices.Clone(ForeignFinalizers[:int(foreign)%(len(ForeignFinalizers)+1)])
	if flags&FzOurs != 0 {
		fins = slices.Insert(fins, int(finalizerPos)%(len(fins)+1), names.Finalizer)
	}
	pod.Finalizers = fins
	if flags&FzDeleting != 0 {
		ts := metav1.NewTime(at(deletionOff))
		pod.DeletionTimestamp = &ts
	}
	if flags&FzDeletionGrace != 0 {
		pod.DeletionGracePeriodSeconds = &deletionGrace
	}
	if flags&FzExcluded != 0 {
		pod.Namespace = "kube-system"
	}
	for i := range int(containers & 3) {
		name := "c" + strconv.Itoa(i)
		if containers&(4<<i) != 0 {
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, Terminated(name, int32(i)*137))
		} else {
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, Running(name))
		}
	}
	pod.Status.Phase = FuzzPhases[int(phaseIdx)%len(FuzzPhases)]
	return pod
}
