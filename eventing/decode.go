// Package eventing turns ApiServerSource CloudEvents into pods or pod references (Decode) and
// the function's actions into reply CloudEvents (Reply). The Knative YAML that wires the
// source, broker and trigger to the function lives beside it.
package eventing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
	"knative.dev/eventing/pkg/apis/sources"

	"function/handlers/drain"
	"function/names"
)

// MaxDataBytes is the largest event data accepted (3 MiB); larger data is answered 413. The
// API server takes requests of up to 3 MiB (apiserver's MaxRequestBodyBytes), so the largest
// pod it accepts fits, whatever its annotations.
const MaxDataBytes = 3 << 20

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

// HandledType reports whether the function handles events of type t: the six ApiServerSource
// types Decode reads and the two sweep requests (IsSweep). Anything else is answered 400.
func HandledType(t string) bool {
	_, ok := eventTypes[t]
	return ok || t == names.TypeSweep || t == names.TypePing
}

// HandledTypes lists the types HandledType reports, sorted.
func HandledTypes() []string {
	types := append(slices.Collect(maps.Keys(eventTypes)), names.TypeSweep, names.TypePing)
	slices.Sort(types)
	return types
}

// Object is the kind of object an event is about.
type Object int

const (
	// ObjectPod: a v1 Pod.
	ObjectPod Object = iota
	// ObjectVPA: an autoscaling.k8s.io/v1 VerticalPodAutoscaler (surge rollouts). Only its
	// identity is decoded: what it says is read from the API server.
	ObjectVPA
)

// objects are the kinds of object the function takes events about, by Object: kind, API
// version, and the API path prefix and resource ApiServerSource writes the subject with.
var objects = [...]struct {
	kind, apiVersion, prefix, resource string
}{
	ObjectPod: {"Pod", "v1", "/apis/v1", "pods"},
	ObjectVPA: {"VerticalPodAutoscaler", "autoscaling.k8s.io/v1", "/apis/autoscaling.k8s.io/v1", "verticalpodautoscalers"},
}

// objectOf is the Object of kind and apiVersion, and whether it is one.
func objectOf(kind, apiVersion string) (Object, bool) {
	for o, spec := range objects {
		if spec.kind == kind && spec.apiVersion == apiVersion {
			return Object(o), true
		}
	}
	return 0, false
}

// ObjectPath is the object's API path, as ApiServerSource writes it in the subject attribute.
func ObjectPath(o Object, namespace, name string) string {
	return objects[o].prefix + "/namespaces/" + namespace + "/" + objects[o].resource + "/" + name
}

// Input is a decoded event: the pod (Resource mode) or its reference (Reference mode), or a
// VerticalPodAutoscaler's identity.
type Input struct {
	Mode      Mode
	Op        Op
	Object    Object
	Namespace string
	Name      string
	// Pod is set in Resource mode only. Its metadata.managedFields are not decoded (always
	// empty): the function never reads them, and they are most of the bytes of an event.
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

// dataJSON are the options event data is unmarshaled with (github.com/go-json-experiment/json,
// the Go team's encoding/json/v2): encoding/json's semantics (jsonv1.DefaultOptionsV1:
// case-insensitive names, the last of duplicate names wins, invalid UTF-8 replaced by U+FFFD,
// v1 merge rules, UnmarshalJSON methods), except that
//   - errors are v2's (ReportErrorsWithLegacySemantics off): no validation pass over the whole
//     input before decoding, decoding stops at the first error, and dataError words it;
//   - metadata.managedFields are skipped unread (see Input.Pod);
//   - metav1.Time is parsed by unmarshalTime, not by its UnmarshalJSON, which unmarshals the
//     string again with encoding/json.
//
// Never modified: Unmarshal copies what it needs.
var dataJSON = jsonv2.JoinOptions(
	jsonv1.DefaultOptionsV1(),
	jsonv1.ReportErrorsWithLegacySemantics(false),
	jsonv2.WithUnmarshalers(jsonv2.JoinUnmarshalers(
		jsonv2.UnmarshalFromFunc(skipManagedFields),
		jsonv2.UnmarshalFromFunc(unmarshalTime),
	)),
)

// skipManagedFields leaves metadata.managedFields empty, checking only that the value is JSON.
func skipManagedFields(dec *jsontext.Decoder, _ *[]metav1.ManagedFieldsEntry) error {
	return dec.SkipValue()
}

// unmarshalTime is metav1.Time.UnmarshalJSON without the second unmarshal of the string: null
// is the zero time, a string is parsed as RFC 3339 into local time. Other values are left to
// UnmarshalJSON (errors.ErrUnsupported), which rejects them as before.
func unmarshalTime(dec *jsontext.Decoder, t *metav1.Time) error {
	switch dec.PeekKind() {
	case 'n':
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		*t = metav1.Time{}
		return nil
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		pt, err := time.Parse(time.RFC3339, tok.String())
		if err != nil {
			return err
		}
		*t = metav1.NewTime(pt.Local())
		return nil
	default:
		return errors.ErrUnsupported
	}
}

// identity is what is decoded of a Resource-mode object other than a pod: its identity.
type identity struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		UID       string `json:"uid"`
	} `json:"metadata"`
}

// decodePod unmarshals Resource-mode data.
func decodePod(data []byte) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	if err := jsonv2.Unmarshal(data, pod, dataJSON); err != nil {
		return nil, dataError("a Pod", "Pod", data, err)
	}
	return pod, nil
}

// The times a decoded pod carries (see checkTimes) must lie in [earliestTime, now +
// maxTimeAhead]: no API server stamped an object before 2000 (Kubernetes is from 2014), and a
// clock wrong by hours or days still passes where one wrong by a decade is no clock. A time
// outside is not one a Kubernetes object can hold: the event is refused (400) before it costs
// anything.
const (
	// earliestTime is 2000-01-01T00:00:00Z, in Unix seconds.
	earliestTime = 946684800
	// maxTimeAhead is how far after now a time may lie: 10 years.
	maxTimeAhead = 10 * 365 * 24 * time.Hour
)

// Decoder decodes events against a clock: the bound on the times a pod may carry follows its
// now. The zero Decoder uses the real clock.
type Decoder struct {
	// Clock is the now times are checked against (nil: clock.RealClock).
	Clock clock.PassiveClock
}

// Decode is Decoder{}.Decode: times are checked against the real clock.
func Decode(e event.Event) (Input, error) {
	return Decoder{}.Decode(e)
}

// Decode validates an ApiServerSource event and extracts the pod or its reference (or a
// VerticalPodAutoscaler's identity). It never
// panics; every rejection is an *InputError (400, or 413 for a body over MaxDataBytes). Input
// that cannot be a Kubernetes object is rejected before it costs an API call: a pod name that
// is no DNS subdomain, a namespace that is no DNS label, a uid that is no UUID, a time out of
// range (see earliestTime).
func (d Decoder) Decode(e event.Event) (Input, error) {
	t, ok := eventTypes[e.Type()]
	if !ok {
		return Input{}, reject(http.StatusBadRequest,
			"unsupported event type %s: expected one of dev.knative.apiserver.resource.{add,update,delete} or dev.knative.apiserver.ref.{add,update,delete}", drain.Quote(e.Type()))
	}
	data := e.Data()
	if len(data) > MaxDataBytes {
		return Input{}, reject(http.StatusRequestEntityTooLarge, "event data is %d bytes, the limit is %d", len(data), MaxDataBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Input{}, reject(http.StatusBadRequest, "event %s has no data: expected a JSON Pod or pod reference", e.Type())
	}
	if ct := e.DataContentType(); ct != "" && ct != event.ApplicationJSON {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Input{}, reject(http.StatusBadRequest, "datacontenttype %s is not JSON", drain.Quote(ct))
		}
	}
	in := Input{Mode: t.mode, Op: t.op}
	ext := Extensions(e)
	var kind, apiVersion, uid string
	switch {
	case t.mode == Reference:
		var ref reference
		if err := jsonv2.Unmarshal(data, &ref, dataJSON); err != nil {
			return Input{}, dataError("a pod reference", "reference", data, err)
		}
		kind, apiVersion, in.Namespace, in.Name = ref.Kind, ref.APIVersion, ref.Namespace, ref.Name
	case ext["kind"] == objects[ObjectVPA].kind:
		// ApiServerSource names the kind in an extension: a VerticalPodAutoscaler is not
		// decoded beyond its identity (kind, apiVersion, namespace, name, uid).
		var id identity
		if err := jsonv2.Unmarshal(data, &id, dataJSON); err != nil {
			return Input{}, dataError("a VerticalPodAutoscaler", "VerticalPodAutoscaler", data, err)
		}
		kind, apiVersion, in.Namespace, in.Name, uid = id.Kind, id.APIVersion, id.Metadata.Namespace, id.Metadata.Name, id.Metadata.UID
		if kind != objects[ObjectVPA].kind {
			return Input{}, reject(http.StatusBadRequest, "extension kind=%q does not match the data (%s)", objects[ObjectVPA].kind, drain.Quote(kind))
		}
	default:
		pod, err := decodePod(data)
		if err != nil {
			return Input{}, err
		}
		kind, apiVersion, in.Namespace, in.Name, uid = pod.Kind, pod.APIVersion, pod.Namespace, pod.Name, string(pod.UID)
		in.Pod = pod
	}
	obj, ok := objectOf(kind, apiVersion)
	if !ok {
		return Input{}, reject(http.StatusBadRequest, "event data is kind %s apiVersion %s, not a v1 Pod or an autoscaling.k8s.io/v1 VerticalPodAutoscaler", drain.Quote(kind), drain.Quote(apiVersion))
	}
	in.Object = obj
	if obj != ObjectPod {
		in.Pod = nil // its identity only (data without the kind extension decodes as a Pod)
	}
	noun := "pod"
	if obj == ObjectVPA {
		noun = "VerticalPodAutoscaler"
	}
	if err := checkName(noun, "namespace", in.Namespace, dns1123Label, validation.IsDNS1123Label); err != nil {
		return Input{}, err
	}
	if err := checkName(noun, "name", in.Name, dns1123Subdomain, validation.IsDNS1123Subdomain); err != nil {
		return Input{}, err
	}
	if obj == ObjectVPA && t.mode == Resource {
		switch {
		case uid == "" && t.op != Delete:
			return Input{}, reject(http.StatusBadRequest, "VerticalPodAutoscaler %s/%s has no metadata.uid", in.Namespace, in.Name)
		case uid != "" && !isUUID(uid):
			return Input{}, reject(http.StatusBadRequest, "VerticalPodAutoscaler %s/%s metadata.uid %s is not a UUID", in.Namespace, in.Name, drain.Quote(uid))
		}
	}
	if in.Pod != nil {
		// A delete event needs no uid (nothing is written for it), but one it carries is a
		// pod's.
		switch uid := string(in.Pod.UID); {
		case uid == "" && t.op != Delete:
			return Input{}, reject(http.StatusBadRequest, "pod %s/%s has no metadata.uid", in.Namespace, in.Name)
		case uid != "" && !isUUID(uid):
			return Input{}, reject(http.StatusBadRequest, "pod %s/%s metadata.uid %s is not a UUID", in.Namespace, in.Name, drain.Quote(uid))
		}
		var now time.Time
		if d.Clock != nil {
			now = d.Clock.Now()
		} else {
			now = time.Now()
		}
		if err := checkTimes(in.Pod, now); err != nil {
			return Input{}, err
		}
		if err := checkRefs(in.Pod); err != nil {
			return Input{}, err
		}
	}
	// ApiServerSource repeats the object's identity in extensions and the subject; they must
	// agree with the data.
	if len(ext) > 0 {
		for _, attr := range [...]struct{ name, want string }{
			{"namespace", in.Namespace}, {"name", in.Name}, {"kind", objects[obj].kind}, {"apiversion", objects[obj].apiVersion},
		} {
			if v, ok := ext[attr.name]; ok {
				s, isString := v.(string)
				if !isString {
					s = fmt.Sprint(v)
				}
				if s != attr.want {
					return Input{}, reject(http.StatusBadRequest, "extension %s=%s does not match the data (%q)", attr.name, drain.Quote(s), attr.want)
				}
			}
		}
	}
	if sub, want := e.Subject(), ObjectPath(obj, in.Namespace, in.Name); sub != "" && sub != want {
		return Input{}, reject(http.StatusBadRequest, "subject %s does not match the data (%q)", drain.Quote(sub), want)
	}
	return in, nil
}

// Extensions are the event's extension attributes, read in place (not to be changed):
// Event.Extensions copies the map on every call.
func Extensions(e event.Event) map[string]any {
	if c, ok := e.Context.(*event.EventContextV1); ok && c != nil {
		return c.Extensions
	}
	return e.Extensions()
}

// dataError words a failed unmarshal of data as encoding/json did: a syntax error as "not valid
// JSON" with encoding/json's message and offset, anything else as "not <what>".
//
// json v2 reports the first error it meets while decoding, which for a document that is also
// malformed further on may be a type error, and words syntax errors differently (offsets one
// less). So the data is first checked with encoding/json, as Decode did before decoding: this
// costs a second pass over rejected data only.
func dataError(what, root string, data []byte, err error) error {
	var syntax *json.SyntaxError
	if errors.As(json.Unmarshal(data, &struct{}{}), &syntax) {
		return reject(http.StatusBadRequest, "event data is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	}
	var v2syntax *jsontext.SyntacticError
	if errors.As(err, &v2syntax) {
		// Not a syntax error to encoding/json (json v2 is stricter at the edges): v2's own words.
		msg := v2syntax.Err
		if errors.Is(msg, io.ErrUnexpectedEOF) {
			msg = errors.New("unexpected end of JSON input")
		}
		return reject(http.StatusBadRequest, "event data is not valid JSON: %v (at byte %d)", msg, v2syntax.ByteOffset)
	}
	var semantic *jsonv2.SemanticError
	if errors.As(err, &semantic) {
		return reject(http.StatusBadRequest, "event data is not %s: %s", what, semanticMessage(root, semantic))
	}
	return reject(http.StatusBadRequest, "event data is not %s: %v", what, err)
}

// semanticMessage words a json v2 type error like encoding/json's UnmarshalTypeError ("json:
// cannot unmarshal number into Go struct field Pod.metadata.name of type string", where root
// is "Pod"), followed by the error of an UnmarshalJSON method or parser if there was one.
func semanticMessage(root string, e *jsonv2.SemanticError) string {
	var b strings.Builder
	b.WriteString("json: cannot unmarshal")
	switch e.JSONKind {
	case 'n':
		b.WriteString(" null")
	case 'f', 't':
		b.WriteString(" bool")
	case '"':
		b.WriteString(" string")
	case '0':
		b.WriteString(" number")
	case '{', '}':
		b.WriteString(" object")
	case '[', ']':
		b.WriteString(" array")
	}
	cause := e.Err
	if e.JSONKind == '0' && len(e.JSONValue) > 0 && len(e.JSONValue) <= 64 {
		b.WriteString(" " + string(e.JSONValue))
		if errors.Is(cause, strconv.ErrRange) || errors.Is(cause, strconv.ErrSyntax) {
			cause = nil // said by the number and the type
		}
	}
	typ := "?"
	if e.GoType != nil {
		t := e.GoType
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		typ = t.String()
	}
	if p := e.JSONPointer; p != "" {
		var field strings.Builder
		for tok := range p.Tokens() {
			field.WriteString(".")
			field.WriteString(tok)
		}
		f := field.String()
		if len(f) > 200 {
			f = strings.ToValidUTF8(f[:200], "") + "..."
		}
		fmt.Fprintf(&b, " into Go struct field %s%s of type %s", root, f, typ)
	} else {
		fmt.Fprintf(&b, " into Go value of type %s", typ)
	}
	if cause != nil {
		b.WriteString(": ")
		b.WriteString(cause.Error())
	}
	return b.String()
}

// checkName rejects a missing or invalid pod name or namespace. valid is the check that words
// the problem; ok, the same check without a regular expression, spares calling it for a
// valid value.
func checkName(noun, field, v string, ok func(string) bool, valid func(string) []string) error {
	if v == "" {
		return reject(http.StatusBadRequest, "%s %s is missing", noun, field)
	}
	if ok(v) {
		return nil
	}
	if msgs := valid(v); len(msgs) > 0 {
		return reject(http.StatusBadRequest, "%s %s %s is invalid: %s", noun, field, drain.Quote(v), strings.Join(msgs, "; "))
	}
	return nil
}

// maxResourceVersion bounds a resourceVersion: the API server writes etcd's revision, a
// decimal number (64 bytes leaves room for any other storage's opaque token).
const maxResourceVersion = 64

// checkRefs rejects a pod whose identity fields that are logged and replied with are longer
// than the API server writes them: a resourceVersion over maxResourceVersion bytes, an owner
// reference whose kind, name or apiVersion is over 253 bytes (a name's longest; only the
// length is checked, a custom resource's name need not be a DNS subdomain).
func checkRefs(pod *corev1.Pod) error {
	if n := len(pod.ResourceVersion); n > maxResourceVersion {
		return reject(http.StatusBadRequest, "pod %s/%s metadata.resourceVersion is %d bytes, more than %d", pod.Namespace, pod.Name, n, maxResourceVersion)
	}
	for _, o := range pod.OwnerReferences {
		if len(o.Name) > validation.DNS1123SubdomainMaxLength || len(o.Kind) > validation.DNS1123SubdomainMaxLength ||
			len(o.APIVersion) > validation.DNS1123SubdomainMaxLength {
			return reject(http.StatusBadRequest, "pod %s/%s has an ownerReference longer than the API server writes (kind %s, name %s, apiVersion %s)",
				pod.Namespace, pod.Name, drain.Quote(o.Kind), drain.Quote(o.Name), drain.Quote(o.APIVersion))
		}
	}
	return nil
}

// isUUID reports whether v is a UUID in the form the API server writes a uid:
// 8-4-4-4-12 hexadecimal digits (uuid.Parse also reads the braced, urn: and undashed forms,
// which no uid has).
func isUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	_, err := uuid.Parse(v)
	return err == nil
}

// checkTimes rejects a pod carrying a time outside [earliestTime, now+maxTimeAhead]: its
// creation, deletion and start, its conditions' last transitions, and its containers' (init,
// regular, ephemeral; current and last state) starts and ends. A time not set is not checked.
func checkTimes(pod *corev1.Pod, now time.Time) error {
	lo, hi := time.Unix(earliestTime, 0), now.Add(maxTimeAhead)
	bad := func(t *metav1.Time) bool {
		return t != nil && !t.IsZero() && (t.Time.Before(lo) || t.Time.After(hi))
	}
	out := func(field string, t *metav1.Time) error {
		return reject(http.StatusBadRequest, "pod %s/%s %s %s is out of range: a pod's times lie from %s to %d years after now",
			pod.Namespace, pod.Name, field, t.UTC().Format(time.RFC3339), lo.UTC().Format(time.RFC3339), maxTimeAhead/(365*24*time.Hour))
	}
	if bad(&pod.CreationTimestamp) {
		return out("metadata.creationTimestamp", &pod.CreationTimestamp)
	}
	if bad(pod.DeletionTimestamp) {
		return out("metadata.deletionTimestamp", pod.DeletionTimestamp)
	}
	if bad(pod.Status.StartTime) {
		return out("status.startTime", pod.Status.StartTime)
	}
	for i := range pod.Status.Conditions {
		if c := &pod.Status.Conditions[i]; bad(&c.LastTransitionTime) {
			return out(fmt.Sprintf("status.conditions[%d].lastTransitionTime", i), &c.LastTransitionTime)
		}
	}
	for _, list := range [...]struct {
		field    string
		statuses []corev1.ContainerStatus
	}{
		{"status.initContainerStatuses", pod.Status.InitContainerStatuses},
		{"status.containerStatuses", pod.Status.ContainerStatuses},
		{"status.ephemeralContainerStatuses", pod.Status.EphemeralContainerStatuses},
	} {
		for i := range list.statuses {
			cs := &list.statuses[i]
			for _, st := range [...]struct {
				field string
				state *corev1.ContainerState
			}{{"state", &cs.State}, {"lastState", &cs.LastTerminationState}} {
				var field string
				var t *metav1.Time
				switch {
				case st.state.Running != nil && bad(&st.state.Running.StartedAt):
					field, t = "running.startedAt", &st.state.Running.StartedAt
				case st.state.Terminated != nil && bad(&st.state.Terminated.StartedAt):
					field, t = "terminated.startedAt", &st.state.Terminated.StartedAt
				case st.state.Terminated != nil && bad(&st.state.Terminated.FinishedAt):
					field, t = "terminated.finishedAt", &st.state.Terminated.FinishedAt
				default:
					continue
				}
				return out(fmt.Sprintf("%s[%d].%s.%s", list.field, i, st.field, field), t)
			}
		}
	}
	return nil
}

// dns1123Label is validation.IsDNS1123Label without messages: at most 63 characters, and
// label characters (see dns1123LabelChars).
func dns1123Label(v string) bool {
	return len(v) <= validation.DNS1123LabelMaxLength && dns1123LabelChars(v)
}

// dns1123Subdomain is validation.IsDNS1123Subdomain without messages: at most 253
// characters, dot-separated labels of any length.
func dns1123Subdomain(v string) bool {
	if len(v) > validation.DNS1123SubdomainMaxLength {
		return false
	}
	for label := range strings.SplitSeq(v, ".") {
		if !dns1123LabelChars(label) {
			return false
		}
	}
	return true
}

// dns1123LabelChars reports whether v matches [a-z0-9]([-a-z0-9]*[a-z0-9])?.
func dns1123LabelChars(v string) bool {
	if v == "" || v[0] == '-' || v[len(v)-1] == '-' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
