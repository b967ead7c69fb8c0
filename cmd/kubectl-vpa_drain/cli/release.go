package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"function/handlers"
	"function/handlers/drain"
	"function/names"
)

const releaseHelp = `kubectl vpa-drain release: remove the finalizer ` + names.Finalizer + ` from one pod by
hand, the incident escape hatch (instead of a hand-typed JSON patch).

Usage:
  kubectl vpa-drain release POD [-n NAMESPACE] [--reason TEXT]

The patch is the function's: guarded by the pod's uid and the finalizer at its index, it
removes only this finalizer (others stay). If the pod changed meanwhile (409/422) it is read
again and patched once more. A FinalizerRemoved Event on the pod says who released it and why
(kubectl describe pod POD). A pod that is gone is not an error; a pod that does not hold the
finalizer is refused (exit code 1). A pod that is not deleting gets the finalizer back from
the function at its next event or sweep while it is managed.

Needs get and patch on pods, and create on events (the Event is skipped with a warning).

Examples:
  kubectl vpa-drain release web-7d9f8-abcde -n shop
  kubectl vpa-drain release pod/web-7d9f8-abcde -n shop --reason "INC-1234: replacement never Ready"
`

// fieldManager names the plugin's writes.
const fieldManager = "kubectl-vpa_drain"

func runRelease(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var kube kubeFlags
	var reason string
	fs := newFlagSet("release")
	kube.bind(fs)
	fs.StringVar(&reason, "reason", "", "why, for the Event (e.g. an incident id)")
	if done, code := parse(fs, args, releaseHelp, stdout, stderr); done {
		return code
	}
	pod, err := podArg(fs.Args())
	if err != nil {
		return reportUsage(stderr, "release", err)
	}
	c, err := connect(kube)
	if err != nil {
		return fail(stderr, err)
	}
	who := whoAmI(ctx, c.client, c.user)
	return release(ctx, c.client, c.namespace, pod, who, reason, stdout, stderr)
}

// podArg is the one POD argument (NAME, pod/NAME or pods/NAME).
func podArg(args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", fmt.Errorf("missing POD: which pod to release")
	case 1:
	default:
		return "", fmt.Errorf("one POD at a time (got %d arguments)", len(args))
	}
	pod := args[0]
	if kind, n, ok := strings.Cut(pod, "/"); ok {
		if kind != "pod" && kind != "pods" && kind != "po" {
			return "", fmt.Errorf("%q: want a pod name (or pod/NAME)", pod)
		}
		pod = n
	}
	if pod == "" {
		return "", fmt.Errorf("missing POD: which pod to release")
	}
	return pod, nil
}

// whoAmI is the user the API server sees (a SelfSubjectReview), else the kubeconfig's user.
func whoAmI(ctx context.Context, client kubernetes.Interface, fallback string) string {
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err == nil && review.Status.UserInfo.Username != "" {
		return review.Status.UserInfo.Username
	}
	if fallback != "" {
		return fallback
	}
	return "an unknown user"
}

// release removes the finalizer from namespace/name with a guarded patch (a RemoveFinalizer
// decision, reason released-by-hand, built by handlers.Patch), reads the pod again and retries
// once when it changed meanwhile (409/422), and records a FinalizerRemoved Event.
func release(ctx context.Context, client kubernetes.Interface, namespace, name, who, reason string, stdout, stderr io.Writer) int {
	pods := client.CoreV1().Pods(namespace)
	gone := func() int {
		fmt.Fprintf(stdout, "pod %s/%s not found: already gone, nothing to release\n", namespace, name)
		return exitOK
	}
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return gone()
	case err != nil:
		return fail(stderr, apiError(err, "get", "pods", name, namespace))
	case !slices.Contains(pod.Finalizers, names.Finalizer):
		return fail(stderr, fmt.Errorf("pod %s/%s does not hold the finalizer %s: nothing to release (its finalizers: %s)",
			namespace, name, names.Finalizer, strings.Join(cmpOrNone(pod.Finalizers), ", ")))
	}
	// One guarded patch, decided again once on a fresh read when the pod changed meanwhile
	// (the function, the kubelet): handlers.Guarded, the loop of every write decided on a read.
	var (
		goneNow  bool   // the pod was gone when patched or read again
		released bool   // the finalizer was removed meanwhile (by the function?)
		replaced string // the uid of the pod now of that name, when it is another
	)
	pod, err = handlers.Guarded(ctx, pod, 2,
		func(ctx context.Context, p *corev1.Pod) error {
			d := drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonReleasedByHand,
				FinalizerIndex: slices.Index(p.Finalizers, names.Finalizer)}
			patch, err := drain.Patch(p, d)
			if err != nil {
				return err
			}
			_, err = pods.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
			switch {
			case apierrors.IsNotFound(err):
				goneNow = true
				return nil
			case err != nil:
				return apiError(err, "patch", "pods", name, namespace)
			}
			return nil
		},
		func(ctx context.Context, p *corev1.Pod) (*corev1.Pod, bool, error) {
			live, err := pods.Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				goneNow = true
				return nil, false, nil
			case err != nil:
				return nil, false, apiError(err, "get", "pods", name, namespace)
			case live.UID != p.UID:
				replaced = string(live.UID)
				return nil, false, nil
			case !slices.Contains(live.Finalizers, names.Finalizer):
				released = true
				return nil, false, nil
			}
			return live, true, nil
		}, handlers.IsGuardFailure)
	switch {
	case goneNow:
		return gone()
	case released:
		fmt.Fprintf(stdout, "pod %s/%s: finalizer %s already removed meanwhile (by the function?)\n", namespace, name, names.Finalizer)
		return exitOK
	case replaced != "":
		return fail(stderr, fmt.Errorf("pod %s/%s was replaced by a new pod of the same name (uid %s, was %s): not released; run again to release the new one", namespace, name, replaced, pod.UID))
	case err != nil:
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "pod %s/%s released: finalizer %s removed\n", namespace, name, names.Finalizer)
	if pod.DeletionTimestamp == nil {
		fmt.Fprintf(stderr, "note: pod %s/%s is not deleting: the function adds the finalizer again at its next event or sweep while the pod is managed\n", namespace, name)
	}
	msg := fmt.Sprintf("Finalizer %s released by hand with kubectl vpa-drain by %s: %s", names.Finalizer, who, cmpOrString(reason, "no reason given"))
	rec := handlers.APIEventRecorder{Client: client, Now: time.Now}
	if err := rec.Record(ctx, pod, corev1.EventTypeNormal, names.EventFinalizerRemoved, msg); err != nil {
		fmt.Fprintf(stderr, "warning: the pod is released, but its %s Event was not recorded: %v\n", names.EventFinalizerRemoved, err)
	}
	return exitOK
}

func cmpOrNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

func cmpOrString(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
