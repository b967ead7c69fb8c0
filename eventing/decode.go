// Package eventing turns ApiServerSource CloudEvents into pods or pod references (Decode) and
// the function's actions into reply CloudEvents (Reply). The Knative YAML that wires the
// source, broker and trigger to the function lives beside it.
package eventing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"knative.dev/eventing/pkg/apis/sources"
)

// MaxDataBytes is the largest event body accepted (1 MiB); larger ones are answered 413.
const MaxDataBytes = 1 << 20

// Mode is how ApiServerSource delivers objects.
type Mode int

const (
	// Resource mode: data is the whole Pod.
	Resource Mode = iota
	// Reference mode: data is {"kind","namespace","name","apiVersion"}; the pod must be read.
	Reference
)

// Op is the watch operation the event reports.
type Op string

// The three operations.
const (
	Add    Op = "add"
	Update Op = "update"
	Delete Op = "delete"
)

var eventTypes = map[string]struct {
	mode Mode
	op   Op
}{
	sources.ApiServerSourceAddEventType:       {Resource, Add},
	sources.ApiServerSourceUpdateEventType:    {Resource, Update},
	sources.ApiServerSourceDeleteEventType:    {Resource, Delete},
	sources.ApiServerSourceAddRefEventType:    {Reference, Add},
	sources.ApiServerSourceUpdateRefEventType: {Reference, Update},
	sources.ApiServerSourceDeleteRefEventType: {Reference, Delete},
}

// Input is a decoded event: the pod (Resource mode) or its reference (Reference mode).
type Input struct {
	Mode      Mode
	Op        Op
	Namespace string
	Name      string
	// Pod is set in Resource mode only.
	Pod *corev1.Pod
}

// InputError is a rejected event: the HTTP status to answer and a message naming the problem.
type InputError struct {
	Status  int
	Message string
}

// Error returns the message for the sender.
func (e *InputError) Error() string { return e.Message }

func reject(status int, format string, args ...any) *InputError {
	return &InputError{Status: status, Message: fmt.Sprintf(format, args...)}
}

// reference is the data of a Reference-mode event.
type reference struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
}

// Decode validates an ApiServerSource event and extracts the pod or its reference. It never
// panics; every rejection is an *InputError (400, or 413 for a body over MaxDataBytes).
func Decode(e event.Event) (Input, error) {
	t, ok := eventTypes[e.Type()]
	if !ok {
		return Input{}, reject(http.StatusBadRequest,
			"unsupported event type %q: expected one of dev.knative.apiserver.resource.{add,update,delete} or dev.knative.apiserver.ref.{add,update,delete}", e.Type())
	}
	data := e.Data()
	if len(data) > MaxDataBytes {
		return Input{}, reject(http.StatusRequestEntityTooLarge, "event data is %d bytes, the limit is %d", len(data), MaxDataBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Input{}, reject(http.StatusBadRequest, "event %s has no data: expected a JSON Pod or pod reference", e.Type())
	}
	if ct := e.DataContentType(); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Input{}, reject(http.StatusBadRequest, "datacontenttype %q is not JSON", ct)
		}
	}
	in := Input{Mode: t.mode, Op: t.op}
	var kind, apiVersion string
	if t.mode == Reference {
		var ref reference
		if err := json.Unmarshal(data, &ref); err != nil {
			return Input{}, dataError("a pod reference", err)
		}
		kind, apiVersion, in.Namespace, in.Name = ref.Kind, ref.APIVersion, ref.Namespace, ref.Name
	} else {
		pod := &corev1.Pod{}
		if err := json.Unmarshal(data, pod); err != nil {
			return Input{}, dataError("a Pod", err)
		}
		kind, apiVersion, in.Namespace, in.Name = pod.Kind, pod.APIVersion, pod.Namespace, pod.Name
		in.Pod = pod
	}
	if kind != "Pod" || apiVersion != "v1" {
		return Input{}, reject(http.StatusBadRequest, "event data is kind %q apiVersion %q, not a v1 Pod", kind, apiVersion)
	}
	if err := checkName("namespace", in.Namespace, validation.IsDNS1123Label); err != nil {
		return Input{}, err
	}
	if err := checkName("name", in.Name, validation.IsDNS1123Subdomain); err != nil {
		return Input{}, err
	}
	if in.Pod != nil && in.Pod.UID == "" && t.op != Delete {
		return Input{}, reject(http.StatusBadRequest, "pod %s/%s has no metadata.uid", in.Namespace, in.Name)
	}
	// ApiServerSource repeats the object's identity in extensions and the subject; they must
	// agree with the data.
	for _, attr := range []struct{ name, want string }{
		{"namespace", in.Namespace}, {"name", in.Name}, {"kind", "Pod"}, {"apiversion", "v1"},
	} {
		if v, ok := e.Extensions()[attr.name]; ok {
			if s := fmt.Sprint(v); s != attr.want {
				return Input{}, reject(http.StatusBadRequest, "extension %s=%q does not match the data (%q)", attr.name, s, attr.want)
			}
		}
	}
	if sub := e.Subject(); sub != "" && sub != PodPath(in.Namespace, in.Name) {
		return Input{}, reject(http.StatusBadRequest, "subject %q does not match the data (%q)", sub, PodPath(in.Namespace, in.Name))
	}
	return in, nil
}

func dataError(what string, err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return reject(http.StatusBadRequest, "event data is not valid JSON: %v (at byte %d)", err, syntax.Offset)
	}
	return reject(http.StatusBadRequest, "event data is not %s: %v", what, err)
}

func checkName(field, v string, valid func(string) []string) error {
	if v == "" {
		return reject(http.StatusBadRequest, "pod %s is missing", field)
	}
	if msgs := valid(v); len(msgs) > 0 {
		return reject(http.StatusBadRequest, "pod %s %q is invalid: %s", field, v, strings.Join(msgs, "; "))
	}
	return nil
}
