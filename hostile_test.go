package function_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	goruntime "runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"function/config"
	"function/eventing"
	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
)

// ---- hostile events over real HTTP ----------------------------------------------------------

const (
	hostileAdd    = "dev.knative.apiserver.resource.add"
	hostileUpdate = "dev.knative.apiserver.resource.update"
	hostileDelete = "dev.knative.apiserver.resource.delete"
	hostileRefAdd = "dev.knative.apiserver.ref.add"
)

// hostilePod is a pod web-1 in default, as the API server serves it; opts adjust it.
func hostilePod(opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "6b1d3c2e-5f4a-4e6b-8c0d-5a7f9e1b3d2c", ResourceVersion: "7",
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second)),
			// A Deployment's pod (the kind managed by default).
			Labels:          map[string]string{"app": "web", "pod-template-hash": "7d9f8"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8", UID: "uid-rs", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withAnnotations(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func withFinalizers(f ...string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Finalizers = f } }

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// evictedAgo is a pod evicted `ago` with a 30 s grace period, its drain stamped at the
// deletion request; the grace period runs until 30 s after the request.
func evictedAgo(ago time.Duration) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		requested := time.Now().Add(-ago).Truncate(time.Second)
		ts, grace := metav1.NewTime(requested.Add(30*time.Second)), int64(30)
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &grace
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
			Reason: drain.ReasonEvictionByEvictionAPI, LastTransitionTime: metav1.NewTime(requested)})
		withFinalizers(names.Finalizer)(p)
		withAnnotations(names.AnnotationManaged, "true", names.AnnotationDrainStarted, rfc3339(requested))(p)
	}
}

// podJSON is the pod's JSON document.
func podJSON(t testing.TB, p *corev1.Pod) []byte {
	t.Helper()
	b, err := json.Marshal(p)
	require.NoError(t, err)
	return b
}

// setField sets a JSON field of a pod document (dotted path, objects only) to a raw value,
// for values a corev1.Pod cannot hold.
func setField(t *testing.T, doc []byte, path, raw string) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(doc, &m))
	keys := strings.Split(path, ".")
	obj := m
	for _, k := range keys[:len(keys)-1] {
		next, ok := obj[k].(map[string]any)
		require.True(t, ok, "no object at %s", k)
		obj = next
	}
	obj[keys[len(keys)-1]] = json.RawMessage(raw)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// binaryHeader is a binary-mode request's headers as ApiServerSource sends them for web-1;
// kv overrides headers ("" deletes one).
func binaryHeader(typ string, kv ...string) http.Header {
	h := http.Header{}
	for k, v := range map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "hostile-1", "Ce-Source": "https://127.0.0.1:6443", "Ce-Type": typ,
		"Ce-Subject": "/apis/v1/namespaces/default/pods/web-1", "Ce-Time": "2026-11-26T05:00:44Z",
		"Ce-Kind": "Pod", "Ce-Apiversion": "v1", "Ce-Name": "web-1", "Ce-Namespace": "default",
		"Content-Type": "application/json",
	} {
		h.Set(k, v)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			h.Del(kv[i])
		} else {
			h.Set(kv[i], kv[i+1])
		}
	}
	return h
}

var structuredHeader = http.Header{"Content-Type": {"application/cloudevents+json"}}

// envelope is a structured-mode event around data (raw JSON, or nil for none); kv adds or
// overrides attributes with raw JSON values ("" deletes one).
func envelope(t *testing.T, data []byte, kv ...string) []byte {
	t.Helper()
	m := map[string]json.RawMessage{
		"specversion": json.RawMessage(`"1.0"`), "id": json.RawMessage(`"hostile-1"`),
		"source": json.RawMessage(`"https://127.0.0.1:6443"`), "type": json.RawMessage(`"` + hostileUpdate + `"`),
		"datacontenttype": json.RawMessage(`"application/json"`),
	}
	if data != nil {
		m["data"] = data
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = json.RawMessage(kv[i+1])
		}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func quoted(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// nested is a JSON document nested depth arrays deep.
func nested(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }

// podWithExtra is a pod document with one more top-level field (unknown to a Pod), written
// as is (a JSON encoder would refuse a value nested too deep).
func podWithExtra(t *testing.T, p *corev1.Pod, field, raw string) []byte {
	t.Helper()
	doc := podJSON(t, p)
	return []byte(string(doc[:len(doc)-1]) + "," + quoted(field) + ":" + raw + "}")
}

// exchange sends a raw HTTP/1.1 request over TCP and reads the answer: the way to send a
// Content-Length that lies. halfClose closes the sending side after the request, as a client
// that sent less than it announced and stopped.
func exchange(t *testing.T, base, raw string, halfClose bool) (*http.Response, string) {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)), "a bound, should the server wait for the body")
	_, err = io.WriteString(conn, raw)
	require.NoError(t, err)
	if halfClose {
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// rawRequest is a binary-mode request whose Content-Length header says announced while body
// is what follows.
func rawRequest(announced int, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST / HTTP/1.1\r\nHost: function\r\nConnection: close\r\n")
	for k, v := range binaryHeader(hostileUpdate) {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v[0])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", announced, body)
	return b.String()
}

// A table of hostile requests through func-go's http runtime. Malformed or invalid ones get a
// 4xx naming the problem and make no API call. Well-formed pod events with odd values are not
// rejected (a pod with a bad override must still be managed and released): they get what the
// function does today, and nothing is ever written for them — the fake cluster holds none of
// the pods the events name (a write would show as a patch) or holds them with nothing to do.
func TestHTTPHostileEvents(t *testing.T) {
	now := time.Now()
	unmanaged := hostilePod()
	draining := hostilePod(evictedAgo(5 * time.Second)) // managed, stamped, in its grace period
	drainingJSON := podJSON(t, draining)
	unmanagedJSON := podJSON(t, unmanaged)

	longName := strings.Repeat("a", 254)
	longestName := strings.Repeat("a", 253)
	hundredFinalizers := make([]string, 100)
	for i := range hundredFinalizers {
		hundredFinalizers[i] = fmt.Sprintf("example.com/guard-%d", i)
	}
	manyAnnotations := make([]string, 0, 2*20000)
	for i := range 20000 {
		manyAnnotations = append(manyAnnotations, fmt.Sprintf("example.com/a-%d", i), "x")
	}
	deletingForeign := func(p *corev1.Pod) {
		ts, grace := metav1.NewTime(now.Add(30*time.Second)), int64(30)
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &grace
	}
	far := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	epoch := time.Unix(0, 0).UTC()
	reference := func(name, kind string) []byte {
		return []byte(`{"kind":` + quoted(kind) + `,"namespace":"default","name":` + quoted(name) + `,"apiVersion":"v1"}`)
	}
	overLimit := bytes.Repeat([]byte("x"), eventing.MaxBodyBytes+1)
	// largest is a draining pod of exactly MaxDataBytes, padded in an annotation: the largest
	// pod the API server takes (its request limit is 3 MiB).
	largest := func() *corev1.Pod {
		p := hostilePod(evictedAgo(5*time.Second), withAnnotations("example.com/blob", ""))
		p.Annotations["example.com/blob"] = strings.Repeat("b", eventing.MaxDataBytes-len(podJSON(t, p)))
		require.Len(t, podJSON(t, p), eventing.MaxDataBytes)
		return p
	}()
	bigData := podJSON(t, hostilePod(withAnnotations("pad", strings.Repeat("x", eventing.MaxDataBytes))))

	type row struct {
		name   string
		method string // "" is POST
		header http.Header
		body   []byte
		// raw, when set, is sent as-is over TCP instead (header and body unused); halfClose
		// closes the sending side after it.
		raw       string
		halfClose bool
		chunked   bool // send body without a Content-Length

		status  int
		message string // in an error answer (4xx): names the problem

		// For well-formed events: the pods the fake cluster holds, and whether the event
		// reads one (Reference mode).
		stored []runtime.Object
		gets   bool
		// guardedRelease: the event's pod looks released (a deletion that is no eviction), so
		// the live pod is read before anything is written; the fake cluster does not hold that
		// pod, so nothing is written (test/integration's forgery table does this against real
		// pods).
		guardedRelease bool
		// pod is the pod in the event (its JSON is the body when body is nil); decide is
		// what Decide makes of it now (an Action's String), and releaseBy how long after now
		// it is released at the latest (0: not checked).
		pod       *corev1.Pod
		decide    string
		releaseBy time.Duration
	}
	rows := []row{
		// ---- encodings: structured, batch, content types ------------------------------------
		{name: "structured mode, a pod in its grace period", header: structuredHeader, body: envelope(t, drainingJSON),
			status: 200, pod: draining, decide: "wait", releaseBy: 300 * time.Second},
		{name: "structured mode, data_base64", header: structuredHeader,
			body:   envelope(t, nil, "data_base64", quoted(base64.StdEncoding.EncodeToString(unmanagedJSON))),
			status: 200},
		{name: "structured mode, data a JSON string holding the pod", header: structuredHeader, body: envelope(t, []byte(quoted(string(unmanagedJSON)))),
			status: 400, message: "event data is not a Pod: json: cannot unmarshal string"},
		{name: "structured mode, broken base64", header: structuredHeader, body: envelope(t, nil, "data_base64", `"!!not base64"`),
			status: 400, message: "malformed CloudEvent"},
		{name: "structured mode, extension name disagrees", header: structuredHeader, body: envelope(t, unmanagedJSON, "name", `"web-2"`),
			status: 400, message: `extension name="web-2" does not match the data ("web-1")`},
		{name: "structured mode, an array (a batch in disguise)", header: structuredHeader, body: []byte("[" + string(envelope(t, unmanagedJSON)) + "]"),
			status: 400, message: "malformed CloudEvent"},
		{name: "batch", header: http.Header{"Content-Type": {"application/cloudevents-batch+json"}}, body: []byte("[" + string(envelope(t, unmanagedJSON)) + "]"),
			status: 415, message: "batched CloudEvents (application/cloudevents-batch+json) are not supported"},
		{name: "batch, content type in capitals with a charset", header: http.Header{"Content-Type": {"Application/CloudEvents-Batch+JSON; charset=utf-8"}}, body: []byte("[]"),
			status: 415, message: "batched CloudEvents"},
		{name: "binary mode, text/plain", header: binaryHeader(hostileUpdate, "Content-Type", "text/plain"), body: unmanagedJSON,
			status: 400, message: `datacontenttype "text/plain" is not JSON`},
		{name: "binary mode, a form", header: binaryHeader(hostileUpdate, "Content-Type", "application/x-www-form-urlencoded"), body: []byte("kind=Pod&name=web-1"),
			status: 400, message: `datacontenttype "application/x-www-form-urlencoded" is not JSON`},
		{name: "binary mode, an unparsable content type (the SDK rejects it)", header: binaryHeader(hostileUpdate, "Content-Type", "application/json; ;;"), body: unmanagedJSON,
			status: 400, message: "invalid CloudEvent: datacontenttype: failed to parse RFC 2046 media type"},
		{name: "no CloudEvent headers, XML", header: http.Header{"Content-Type": {"application/xml"}}, body: []byte("<pod/>"),
			status: 415, message: "not a CloudEvent"},

		// ---- CloudEvent attributes ---------------------------------------------------------
		{name: "specversion 2.0", header: binaryHeader(hostileUpdate, "Ce-Specversion", "2.0"), body: unmanagedJSON,
			status: 415, message: "not a CloudEvent"},
		{name: "specversion 0.3 (an older spec, still read)", header: binaryHeader(hostileUpdate, "Ce-Specversion", "0.3"),
			pod: draining, status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "structured specversion 2.0", header: structuredHeader, body: envelope(t, unmanagedJSON, "specversion", `"2.0"`),
			status: 400, message: "malformed CloudEvent: specversion: unknown value: 2.0"},
		{name: "no specversion", header: binaryHeader(hostileUpdate, "Ce-Specversion", ""), body: unmanagedJSON,
			status: 415, message: "not a CloudEvent"},
		{name: "no source", header: binaryHeader(hostileUpdate, "Ce-Source", ""), body: unmanagedJSON,
			status: 400, message: "invalid CloudEvent: source: REQUIRED"},
		{name: "no type", header: binaryHeader(hostileUpdate, "Ce-Type", ""), body: unmanagedJSON,
			status: 400, message: "invalid CloudEvent: type: MUST be a non-empty string"},
		{name: "structured mode without an id", header: structuredHeader, body: envelope(t, unmanagedJSON, "id", ""),
			status: 400, message: "invalid CloudEvent: id: MUST be a non-empty string"},
		{name: "time not a time", header: binaryHeader(hostileUpdate, "Ce-Time", "yesterday"), body: unmanagedJSON,
			status: 400, message: `malformed CloudEvent: invalid value for time: "yesterday"`},
		{name: "an unknown type", header: binaryHeader("dev.knative.apiserver.resource.patch"), body: unmanagedJSON,
			status: 400, message: `unsupported event type "dev.knative.apiserver.resource.patch"`},

		// ---- identity ------------------------------------------------------------------------
		{name: "extension name disagrees", header: binaryHeader(hostileUpdate, "Ce-Name", "web-2"), body: drainingJSON,
			status: 400, message: `extension name="web-2" does not match the data ("web-1")`},
		{name: "extension namespace disagrees", header: binaryHeader(hostileUpdate, "Ce-Namespace", "kube-system"), body: drainingJSON,
			status: 400, message: `extension namespace="kube-system" does not match the data ("default")`},
		{name: "extension kind disagrees", header: binaryHeader(hostileUpdate, "Ce-Kind", "Secret"), body: drainingJSON,
			status: 400, message: `extension kind="Secret" does not match the data ("Pod")`},
		{name: "subject names another pod", header: binaryHeader(hostileUpdate, "Ce-Subject", "/apis/v1/namespaces/prod/pods/db-0"), body: drainingJSON,
			status: 400, message: `subject "/apis/v1/namespaces/prod/pods/db-0" does not match the data ("/apis/v1/namespaces/default/pods/web-1")`},
		{name: "extension apiversion v2", header: binaryHeader(hostileUpdate, "Ce-Apiversion", "v2"), body: unmanagedJSON,
			status: 400, message: `extension apiversion="v2" does not match the data ("v1")`},
		{name: "no uid", header: binaryHeader(hostileUpdate), body: podJSON(t, hostilePod(evictedAgo(5*time.Second), func(p *corev1.Pod) { p.UID = "" })),
			status: 400, message: "pod default/web-1 has no metadata.uid"},
		{name: "duplicate name keys, the last one disagreeing with the extension", header: binaryHeader(hostileUpdate),
			body:   []byte(strings.Replace(string(drainingJSON), `"name":"web-1"`, `"name":"web-1","name":"db-0"`, 1)),
			status: 400, message: `extension name="web-1" does not match the data ("db-0")`},

		// ---- names -----------------------------------------------------------------------------
		{name: "unicode name", header: binaryHeader(hostileUpdate, "Ce-Name", ""), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Name = "wéb-1" })),
			status: 400, message: `pod name "wéb-1" is invalid`},
		{name: "name with a right-to-left override", header: binaryHeader(hostileUpdate, "Ce-Name", ""), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Name = "web-1\u202e" })),
			status: 400, message: "pod name"},
		{name: "name with a NUL", header: binaryHeader(hostileUpdate, "Ce-Name", ""), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Name = "web\x001" })),
			status: 400, message: `pod name "web\x001" is invalid`},
		{name: "name of 254 characters", header: binaryHeader(hostileUpdate, "Ce-Name", ""), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Name = longName })),
			status: 400, message: "must be no more than 253 characters"},
		{name: "name of 253 characters (the longest valid)", header: binaryHeader(hostileUpdate, "Ce-Name", longestName, "Ce-Subject", "/apis/v1/namespaces/default/pods/"+longestName), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Name = longestName })),
			status: 200},
		{name: "namespace of 64 characters", header: binaryHeader(hostileUpdate, "Ce-Namespace", ""), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Namespace = strings.Repeat("n", 64) })),
			status: 400, message: "must be no more than 63 characters"},
		{name: "unicode namespace", header: binaryHeader(hostileUpdate, "Ce-Namespace", ""), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Namespace = "défaut" })),
			status: 400, message: `pod namespace "défaut" is invalid`},
		{name: "reference mode, a path for a name", header: binaryHeader(hostileRefAdd, "Ce-Name", ""), body: reference("../../secrets", "Pod"),
			status: 400, message: `pod name "../../secrets" is invalid`},

		// ---- other payloads --------------------------------------------------------------------
		{name: "a Service", header: binaryHeader(hostileUpdate, "Ce-Kind", ""),
			body:   []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web-1","namespace":"default","uid":"u"},"spec":{"ports":[{"port":80}]}}`),
			status: 400, message: `event data is kind "Service" apiVersion "v1", not a v1 Pod`},
		{name: "a Node", header: binaryHeader(hostileUpdate, "Ce-Kind", "", "Ce-Namespace", ""),
			body:   []byte(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-1","uid":"u"},"spec":{"unschedulable":true}}`),
			status: 400, message: `event data is kind "Node" apiVersion "v1", not a v1 Pod`},
		{name: "a PodList", header: binaryHeader(hostileUpdate, "Ce-Kind", ""),
			body:   []byte(`{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[` + string(drainingJSON) + `]}`),
			status: 400, message: `event data is kind "PodList" apiVersion "v1", not a v1 Pod`},
		{name: "a Pod of apiVersion v2", header: binaryHeader(hostileUpdate), body: setField(t, unmanagedJSON, "apiVersion", `"v2"`),
			status: 400, message: `event data is kind "Pod" apiVersion "v2", not a v1 Pod`},
		{name: "reference mode, a Secret", header: binaryHeader(hostileRefAdd, "Ce-Kind", ""), body: reference("web-1", "Secret"),
			status: 400, message: `event data is kind "Secret" apiVersion "v1", not a v1 Pod`},
		{name: "a whole Pod under a reference-mode type", header: binaryHeader(hostileRefAdd), body: unmanagedJSON,
			status: 400, message: "pod namespace is missing"},
		{name: "a reference under a resource-mode type", header: binaryHeader(hostileUpdate), body: reference("web-1", "Pod"),
			status: 400, message: "pod namespace is missing"},

		// ---- data that is not a pod --------------------------------------------------------
		{name: "empty body", header: binaryHeader(hostileUpdate), body: nil,
			status: 400, message: "event dev.knative.apiserver.resource.update has no data"},
		{name: "JSON null", header: binaryHeader(hostileUpdate), body: []byte("null"),
			status: 400, message: `event data is kind "" apiVersion "", not a v1 Pod`},
		{name: "JSON array", header: binaryHeader(hostileUpdate), body: []byte("[" + string(unmanagedJSON) + "]"),
			status: 400, message: "event data is not a Pod: json: cannot unmarshal array"},
		{name: "JSON number", header: binaryHeader(hostileUpdate), body: []byte("1e999"),
			status: 400, message: "event data is not a Pod: json: cannot unmarshal number"},
		{name: "nested 100,000 deep", header: binaryHeader(hostileUpdate), body: podWithExtra(t, unmanaged, "x", nested(100_000)),
			status: 400, message: "event data is not valid JSON: invalid character '[' exceeded max depth"},
		{name: "nested 5,000 deep in an unknown field (skipped)", header: binaryHeader(hostileUpdate), body: podWithExtra(t, draining, "x", nested(5_000)),
			pod: draining, status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "a creationTimestamp that is not a time", header: binaryHeader(hostileUpdate), body: setField(t, drainingJSON, "metadata.creationTimestamp", `"last week"`),
			status: 400, message: "event data is not a Pod"},
		{name: "a deletionTimestamp that is a number", header: binaryHeader(hostileUpdate), body: setField(t, drainingJSON, "metadata.deletionTimestamp", `1764133244`),
			status: 400, message: "event data is not a Pod"},

		// ---- values no Kubernetes object holds: refused before any API call ------------------
		{name: "uid not a UUID", header: binaryHeader(hostileUpdate), body: podJSON(t, hostilePod(evictedAgo(5*time.Second), func(p *corev1.Pod) { p.UID = "uid-web-1" })),
			status: 400, message: `pod default/web-1 metadata.uid "uid-web-1" is not a UUID`},
		{name: "uid not a UUID, structured mode", header: structuredHeader, body: envelope(t, podJSON(t, hostilePod(func(p *corev1.Pod) { p.UID = "../../x" }))),
			status: 400, message: `metadata.uid "../../x" is not a UUID`},
		{name: "uid not a UUID in a delete event", header: binaryHeader(hostileDelete), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.UID = "u" })),
			status: 400, message: `metadata.uid "u" is not a UUID`},
		{name: "uid of 100,000 characters (the message repeats 256 bytes, and the length)", header: binaryHeader(hostileUpdate), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.UID = types.UID(strings.Repeat("f", 100_000)) })),
			status: 400, message: `metadata.uid "` + strings.Repeat("f", drain.MaxQuoted) + `…" (100000 bytes) is not a UUID`},
		{name: "deletionTimestamp in the year 9999", header: binaryHeader(hostileUpdate),
			body:   podJSON(t, hostilePod(evictedAgo(5*time.Second), func(p *corev1.Pod) { ts := metav1.NewTime(far); p.DeletionTimestamp = &ts })),
			status: 400, message: "pod default/web-1 metadata.deletionTimestamp 9999-12-31T23:59:59Z is out of range"},
		{name: "created in the year 9999", header: binaryHeader(hostileUpdate),
			body:   podJSON(t, hostilePod(withAnnotations(names.AnnotationManaged, "true"), withFinalizers(names.Finalizer), func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(far) })),
			status: 400, message: "metadata.creationTimestamp 9999-12-31T23:59:59Z is out of range"},
		{name: "created at the Unix epoch", header: binaryHeader(hostileUpdate), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(epoch) })),
			status: 400, message: "metadata.creationTimestamp 1970-01-01T00:00:00Z is out of range"},
		{name: "an eviction condition from 1999", header: binaryHeader(hostileUpdate),
			body: podJSON(t, hostilePod(evictedAgo(5*time.Second), func(p *corev1.Pod) {
				p.Status.Conditions[len(p.Status.Conditions)-1].LastTransitionTime = metav1.NewTime(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC))
			})),
			status: 400, message: "status.conditions[0].lastTransitionTime 1999-01-01T00:00:00Z is out of range"},
		{name: "a container running since 9999", header: binaryHeader(hostileUpdate),
			body:   podJSON(t, hostilePod(func(p *corev1.Pod) { p.Status.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(far) })),
			status: 400, message: "status.containerStatuses[0].state.running.startedAt 9999-12-31T23:59:59Z is out of range"},
		{name: "a container that finished in 9999", header: binaryHeader(hostileUpdate),
			body: podJSON(t, hostilePod(func(p *corev1.Pod) {
				p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: metav1.NewTime(now), FinishedAt: metav1.NewTime(far)}}
			})),
			status: 400, message: "status.containerStatuses[0].state.terminated.finishedAt 9999-12-31T23:59:59Z is out of range"},
		{name: "name of 100,000 characters (the message repeats 256 bytes, and the length)", header: binaryHeader(hostileUpdate, "Ce-Name", ""), body: podJSON(t, hostilePod(func(p *corev1.Pod) { p.Name = strings.Repeat("a", 100_000) })),
			status: 400, message: `pod name "` + strings.Repeat("a", drain.MaxQuoted) + `…" (100000 bytes) is invalid: must be no more than 253 characters`},

		// ---- well-formed pods with odd values: not rejected, nothing to write now ------------
		{name: "huge annotation (900 KiB) on a draining pod", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(evictedAgo(5*time.Second), withAnnotations("example.com/blob", strings.Repeat("b", 900<<10))),
			status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "a draining pod of exactly 3 MiB (the largest the API server takes)", header: binaryHeader(hostileUpdate),
			pod: largest, status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "20,000 annotations on an unmanaged pod", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(withAnnotations(manyAnnotations...)),
			status: 200, decide: "none"},
		{name: "negative grace period override", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(evictedAgo(5*time.Second), withAnnotations(names.AnnotationGracePeriod, "-30")),
			status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "absurd drain timeout override", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(evictedAgo(5*time.Second), withAnnotations(names.AnnotationDrainTimeout, "99999999999999999999999")),
			status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "zero drain timeout and a float grace period", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(evictedAgo(5*time.Second), withAnnotations(names.AnnotationDrainTimeout, "0", names.AnnotationGracePeriod, "1e3")),
			status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "drain-started in the year 9999 (timed from the deletion request)", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(evictedAgo(5*time.Second), withAnnotations(names.AnnotationDrainStarted, rfc3339(far))),
			status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "drain-deadline in the year 9999", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(evictedAgo(5*time.Second), withAnnotations(names.AnnotationDrainDeadline, rfc3339(far))),
			status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "drain-started 1970, finalizer in place, not deleting", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(withAnnotations(names.AnnotationManaged, "true", names.AnnotationDrainStarted, rfc3339(epoch)), withFinalizers(names.Finalizer)),
			status: 200, decide: "none"},
		{name: "deleting with 100 foreign finalizers, not ours", header: binaryHeader(hostileUpdate),
			pod:    hostilePod(withAnnotations(names.AnnotationManaged, "true"), withFinalizers(hundredFinalizers...), deletingForeign),
			status: 200, decide: "none"},
		{name: "delete event for a pod holding our finalizer", header: binaryHeader(hostileDelete), body: drainingJSON,
			status: 200},
		{name: "binary mode without a content type", header: binaryHeader(hostileUpdate, "Content-Type", ""),
			pod: draining, status: 200, decide: "wait", releaseBy: 300 * time.Second},
		{name: "reference mode, a pod the cluster does not hold", header: binaryHeader(hostileRefAdd, "Ce-Name", "gone-1", "Ce-Subject", "/apis/v1/namespaces/default/pods/gone-1"), body: reference("gone-1", "Pod"),
			status: 200, gets: true},
		{name: "reference mode, a pod in its grace period", header: binaryHeader(hostileRefAdd), body: reference("web-1", "Pod"),
			stored: []runtime.Object{hostilePod(evictedAgo(5 * time.Second))}, status: 200, gets: true},

		// ---- methods and sizes ---------------------------------------------------------------
		{name: "GET", method: http.MethodGet, header: binaryHeader(hostileUpdate), status: 405, message: "method GET not allowed: CloudEvents are POSTed"},
		{name: "PUT", method: http.MethodPut, header: binaryHeader(hostileUpdate), body: drainingJSON, status: 405, message: "method PUT not allowed"},
		{name: "DELETE", method: http.MethodDelete, header: binaryHeader(hostileUpdate), status: 405, message: "method DELETE not allowed"},
		{name: "body over the limit", header: binaryHeader(hostileUpdate), body: overLimit,
			status: 413, message: "request body is 3211265 bytes, the limit is 3211264"},
		{name: "body 2 MiB over the limit, sent whole (no Expect: 100-continue): the client reads the 413", header: binaryHeader(hostileUpdate),
			body: bytes.Repeat([]byte("x"), eventing.MaxBodyBytes+2<<20), status: 413, message: "request body is 5308416 bytes, the limit is 3211264"},
		{name: "body 2 MiB over the limit, chunked, sent whole", header: binaryHeader(hostileUpdate), body: bytes.Repeat([]byte("x"), eventing.MaxBodyBytes+2<<20), chunked: true,
			status: 413, message: "request body is over 3211264 bytes, the limit"},
		{name: "body over the limit, chunked", header: binaryHeader(hostileUpdate), body: overLimit, chunked: true,
			status: 413, message: "request body is over 3211264 bytes, the limit"},
		{name: "data over 3 MiB in a body under the limit", header: binaryHeader(hostileUpdate), body: bigData,
			status: 413, message: "the limit is 3145728"},
		{name: "Content-Length of 10 MiB, a few bytes sent", raw: rawRequest(10<<20, `{"kind":"Pod"`),
			status: 413, message: "request body is 10485760 bytes, the limit is 3211264"},
		{name: "Content-Length shorter than the body", raw: rawRequest(40, string(drainingJSON)),
			status: 400, message: "event data is not valid JSON: unexpected end of JSON input"},
		{name: "Content-Length longer than the body, then the client stops", raw: rawRequest(len(drainingJSON)+100, string(drainingJSON)), halfClose: true,
			status: 400, message: "reading the request body: unexpected EOF"},
	}
	require.GreaterOrEqual(t, len(rows), 30)

	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(tt.stored...)
			base := served(t, started(t, c, nil))

			var resp *http.Response
			var body string
			if tt.raw != "" {
				resp, body = exchange(t, base, tt.raw, tt.halfClose)
			} else {
				method := tt.method
				if method == "" {
					method = http.MethodPost
				}
				sent := tt.body
				if sent == nil && tt.pod != nil {
					sent = podJSON(t, tt.pod)
				}
				var reqBody io.Reader = bytes.NewReader(sent)
				if tt.chunked {
					reqBody = io.MultiReader(bytes.NewReader(sent)) // no length known: chunked
				}
				req, err := http.NewRequest(method, base+"/", reqBody)
				require.NoError(t, err)
				for k, v := range tt.header {
					req.Header[k] = v
				}
				got, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer got.Body.Close()
				b, err := io.ReadAll(got.Body)
				require.NoError(t, err)
				resp, body = got, string(b)
			}

			assert.Equal(t, tt.status, resp.StatusCode, "body: %.300s", body)
			if tt.status >= 400 {
				require.NotEmpty(t, tt.message, "a rejection row names the problem it expects")
				assert.Contains(t, body, tt.message)
				assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
				assert.NotContains(t, body, "\n", "a one-line message")
			} else {
				assert.Empty(t, body, "nothing done, no reply")
				assert.Empty(t, resp.Header.Get("Ce-Type"))
			}
			if tt.status == http.StatusMethodNotAllowed {
				assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
			}

			// Nothing is written, whatever the event; only a Reference-mode event reads.
			switch {
			case tt.guardedRelease:
				assert.Equal(t, []string{"get pods"}, testutil.Verbs(c), "one read of the live pod (not there): no write")
			case tt.gets:
				assert.Equal(t, []string{"get pods"}, testutil.Verbs(c))
			default:
				assert.Equal(t, []string{}, testutil.Verbs(c), "no API call")
			}

			// What the function made of the pod (nothing to write now), and that an odd pod is
			// still managed: released by releaseBy (a bad override is ignored, not a reason to
			// hold the pod longer).
			if tt.decide != "" {
				require.NotNil(t, tt.pod)
				cfg := config.Default()
				d := drain.Decide(tt.pod, cfg, time.Now())
				assert.Equal(t, tt.decide, d.Action.String(), "reason %q", d.Reason)
				if tt.releaseBy > 0 {
					later := drain.Decide(tt.pod, cfg, now.Add(tt.releaseBy))
					assert.Equal(t, drain.RemoveFinalizer, later.Action, "reason %q", later.Reason)
				}
			}
		})
	}
}

// forgedHeapBound is the live heap that thousands of forged events may leave behind: what the
// process holds for them once they are answered (the event path keeps nothing of an event's
// copy; the bounded caches hold only what was read live).
const forgedHeapBound = 8 << 20

// Thousands of forged draining pods, each with 64 KiB of annotations, its own uid and
// far-future times, naming pods that do not exist: once answered, the live heap is back within
// forgedHeapBound of where it started (runtime/metrics after a GC), and no event wrote.
func BenchmarkForgedEventsHeap(b *testing.B) {
	c := fake.NewClientset()
	f := started(b, c, nil)
	big := strings.Repeat("x", 64<<10)
	future := time.Now().Add(24 * 365 * time.Hour).UTC().Format(time.RFC3339)
	forged := func(i int) event.Event {
		name := fmt.Sprintf("forged-%d", i)
		p := hostilePod(evictedAgo(time.Second), withAnnotations("example.com/pad", big,
			names.AnnotationDrainStarted, future, names.AnnotationDrainDeadline, future, names.AnnotationDrainTimeout, "86400"))
		p.Name, p.UID = name, types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		e := event.New()
		e.SetID(name)
		e.SetSource("https://127.0.0.1:6443")
		e.SetType(hostileUpdate)
		e.SetSubject("/apis/v1/namespaces/default/pods/" + name)
		for k, v := range map[string]string{"kind": "Pod", "apiversion": "v1", "name": name, "namespace": "default"} {
			e.SetExtension(k, v)
		}
		require.NoError(b, e.SetData(event.ApplicationJSON, podJSON(b, p)))
		return e
	}
	heap := func() uint64 {
		goruntime.GC()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := heap()
	n := 0
	for b.Loop() {
		for range 1000 {
			if _, err := f.HandleEvent(context.Background(), forged(n)); err != nil {
				var res *cehttp.Result
				require.True(b, protocol.ResultAs(err, &res) && res.StatusCode < 300, "answered: %v", err)
			}
			n++
		}
	}
	grown := int64(heap()) - int64(before)
	b.ReportMetric(float64(grown)/(1<<20), "heap-growth-MiB")
	b.ReportMetric(float64(n), "events")
	for _, a := range c.Actions() {
		require.Equal(b, "get", a.GetVerb(), "forged events only read")
	}
	require.Less(b, grown, int64(forgedHeapBound), "the live heap grew by %d bytes after %d forged events", grown, n)
}
