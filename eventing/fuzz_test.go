package eventing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation"

	"function/eventing"
)

// Fuzz targets: `make fuzz FUZZTIME=30s` runs each for a while; a plain `go test` runs their
// seeds (f.Add below and testdata/fuzz/<FuzzName>/, made from the captured requests).

// fuzzTypes are the event types FuzzDecode picks from: the six ApiServerSource types and junk.
var fuzzTypes = []string{
	resAdd, resUpdate, resDelete, refAdd, refUpdate, refDelete,
	"", "com.example.other", "DEV.KNATIVE.APISERVER.RESOURCE.ADD", resAdd + " ", "dev.knative.apiserver.resource.patch",
}

// wantKinds is the mode and operation each ApiServerSource type decodes to.
var wantKinds = map[string]struct {
	mode eventing.Mode
	op   eventing.Op
}{
	resAdd:    {eventing.Resource, eventing.Add},
	resUpdate: {eventing.Resource, eventing.Update},
	resDelete: {eventing.Resource, eventing.Delete},
	refAdd:    {eventing.Reference, eventing.Add},
	refUpdate: {eventing.Reference, eventing.Update},
	refDelete: {eventing.Reference, eventing.Delete},
}

// checkRejection: a rejection is an *eventing.InputError with a 4xx status and a message.
func checkRejection(t *testing.T, err error) *eventing.InputError {
	t.Helper()
	var bad *eventing.InputError
	require.True(t, errors.As(err, &bad), "error %T %q is not an *eventing.InputError", err, err)
	require.GreaterOrEqual(t, bad.Status, 400, "status of %q", bad.Message)
	require.Less(t, bad.Status, 500, "status of %q", bad.Message)
	require.NotEmpty(t, bad.Message)
	require.Equal(t, bad.Status, eventing.Status(err))
	return bad
}

// checkDecoded holds Decode to its contract for any event: a 4xx *InputError, or an Input with
// a valid pod namespace and name, a Pod exactly in Resource mode, and data that is a v1 Pod.
func checkDecoded(t *testing.T, e event.Event, in eventing.Input, err error) {
	t.Helper()
	if err != nil {
		checkRejection(t, err)
		require.Equal(t, eventing.Input{}, in, "a rejection returns no input")
		return
	}
	want, known := wantKinds[e.Type()]
	require.True(t, known, "accepted an event of type %q", e.Type())
	require.Equal(t, want.mode, in.Mode)
	require.Equal(t, want.op, in.Op)
	require.Empty(t, validation.IsDNS1123Label(in.Namespace), "accepted namespace %q", in.Namespace)
	require.Empty(t, validation.IsDNS1123Subdomain(in.Name), "accepted name %q", in.Name)

	data := e.Data()
	require.LessOrEqual(t, len(data), eventing.MaxDataBytes)
	require.NotEmpty(t, bytes.TrimSpace(data))
	if ct := e.DataContentType(); ct != "" {
		mt, _, perr := mime.ParseMediaType(ct)
		require.NoError(t, perr, "accepted datacontenttype %q", ct)
		require.True(t, mt == "application/json" || strings.HasSuffix(mt, "+json"), "accepted datacontenttype %q", ct)
	}
	var head struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	require.NoError(t, json.Unmarshal(data, &head), "accepted data that is not a JSON object")
	require.Equal(t, "Pod", head.Kind)
	require.Equal(t, "v1", head.APIVersion)

	if in.Mode == eventing.Resource {
		require.NotNil(t, in.Pod, "Resource mode carries the pod")
		require.Equal(t, "Pod", in.Pod.Kind)
		require.Equal(t, "v1", in.Pod.APIVersion)
		require.Equal(t, in.Namespace, in.Pod.Namespace)
		require.Equal(t, in.Name, in.Pod.Name)
		if in.Op != eventing.Delete {
			require.NotEmpty(t, in.Pod.UID, "a pod to write to has a uid to guard on")
		}
	} else {
		require.Nil(t, in.Pod, "Reference mode carries no pod")
	}
	for attr, got := range map[string]string{"namespace": in.Namespace, "name": in.Name, "kind": "Pod"} {
		if v, ok := e.Extensions()[attr]; ok {
			s, isString := v.(string)
			require.True(t, isString, "extension %s is %T", attr, v)
			require.Equal(t, got, s, "extension %s disagrees with the data", attr)
		}
	}
}

func FuzzDecode(f *testing.F) {
	const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"u-1"}}`
	const ref = `{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"v1"}`
	// typ indexes fuzzTypes; name and namespace, when not empty, are the identity extensions.
	f.Add(uint8(0), []byte(pod), "application/json", "web-1", "default")
	f.Add(uint8(1), []byte(pod), "", "", "")
	f.Add(uint8(2), []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default"}}`), "application/json", "", "")
	f.Add(uint8(3), []byte(ref), "application/json; charset=utf-8", "web-1", "default")
	f.Add(uint8(4), []byte(ref), "application/vnd.k8s+json", "", "")
	f.Add(uint8(5), []byte(ref), "application/json", "other", "")
	f.Add(uint8(0), []byte(pod), "text/plain", "", "")
	f.Add(uint8(0), []byte(pod), "application/json; charset", "", "")
	f.Add(uint8(0), []byte(`null`), "application/json", "", "")
	f.Add(uint8(3), []byte(`[]`), "application/json", "", "")
	f.Add(uint8(0), []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Web-1","namespace":"default","uid":"u"}}`), "", "", "")
	f.Add(uint8(0), []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"u","finalizers":["vpagracefuldrain.dev/drain"],"deletionTimestamp":"2026-11-26T05:00:51Z"}}`), "", "", "")
	f.Add(uint8(0), []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"u","name":"web-2"}}`), "", "web-1", "")
	f.Add(uint8(0), []byte(`{"APIVERSION":"v1","KIND":"Pod","METADATA":{"NAME":"web-1","NAMESPACE":"default","UID":"u"}}`), "", "", "")
	f.Add(uint8(0), []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default","uid":"u"}}`), "", "", "")
	f.Add(uint8(6), []byte(pod), "application/json", "", "")
	f.Add(uint8(9), []byte(pod), "application/json", "", "")
	f.Add(uint8(0), []byte(" \n\t"), "application/json", "", "")
	f.Add(uint8(0), []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"u"},"x":[[[[[[[[[[]]]]]]]]]]}`), "", "", "")
	f.Fuzz(func(t *testing.T, typ uint8, data []byte, contentType, name, namespace string) {
		e := event.New()
		e.SetID("fuzz-1")
		e.SetSource("https://127.0.0.1:26443")
		e.SetType(fuzzTypes[int(typ)%len(fuzzTypes)])
		if contentType != "" {
			e.SetDataContentType(contentType)
		}
		e.DataEncoded = data
		if name != "" {
			e.SetExtension("name", name)
		}
		if namespace != "" {
			e.SetExtension("namespace", namespace)
		}
		in, err := eventing.Decode(e)
		checkDecoded(t, e, in, err)
	})
}

// fuzzMethods are the request methods FuzzReadRequest picks from.
var fuzzMethods = []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions, "post"}

// unexpectedEOF is a body that ends before its Content-Length, as a real server reads it
// when the client sends fewer bytes than it announced.
type unexpectedEOF struct{ r io.Reader }

func (u unexpectedEOF) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func FuzzReadRequest(f *testing.F) {
	const binary = "Ce-Specversion: 1.0\nCe-Id: 1\nCe-Source: https://127.0.0.1:26443\nCe-Type: dev.knative.apiserver.resource.add\n" +
		"Ce-Name: web-1\nCe-Namespace: default\nCe-Kind: Pod\nContent-Type: application/json"
	const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"u-1"}}`
	structured := `{"specversion":"1.0","id":"1","source":"s","type":"dev.knative.apiserver.resource.add","datacontenttype":"application/json","data":` + pod + `}`
	// method indexes fuzzMethods; headers are "Key: value" lines; contentLength < 0 is unknown
	// (chunked), otherwise the announced length, which may lie about the body.
	f.Add(uint8(0), binary, []byte(pod), int64(-1))
	f.Add(uint8(0), binary, []byte(pod), int64(len(pod)))
	f.Add(uint8(0), binary, []byte(pod), int64(10))
	f.Add(uint8(0), binary, []byte(pod), int64(len(pod)+10))
	f.Add(uint8(0), binary, []byte(pod), int64(eventing.MaxBodyBytes+1))
	f.Add(uint8(1), binary, []byte(nil), int64(0))
	f.Add(uint8(2), binary, []byte(pod), int64(-1))
	f.Add(uint8(7), binary, []byte(pod), int64(-1))
	f.Add(uint8(0), "Content-Type: application/cloudevents+json", []byte(structured), int64(-1))
	f.Add(uint8(0), "Content-Type: application/cloudevents+json; charset=utf-8", []byte(structured), int64(-1))
	f.Add(uint8(0), "Content-Type: application/cloudevents-batch+json", []byte("["+structured+"]"), int64(-1))
	f.Add(uint8(0), "Content-Type: application/cloudevents+json", []byte(`{"specversion":"1.0",`), int64(-1))
	f.Add(uint8(0), "Content-Type: application/cloudevents+json", []byte(`{"specversion":"2.0","id":"1","source":"s","type":"t"}`), int64(-1))
	f.Add(uint8(0), "Content-Type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!!"}`), int64(-1))
	f.Add(uint8(0), "Content-Type: application/json", []byte(pod), int64(-1))
	f.Add(uint8(0), strings.Replace(binary, "Ce-Specversion: 1.0", "Ce-Specversion: 0.3", 1), []byte(pod), int64(-1))
	f.Add(uint8(0), strings.Replace(binary, "Ce-Specversion: 1.0", "Ce-Specversion: 9.9", 1), []byte(pod), int64(-1))
	f.Add(uint8(0), strings.Replace(binary, "Ce-Id: 1\n", "", 1), []byte(pod), int64(-1))
	f.Add(uint8(0), strings.Replace(binary, "Ce-Name: web-1", "Ce-Name: other", 1), []byte(pod), int64(-1))
	f.Add(uint8(0), binary+"\nCe-Time: yesterday", []byte(pod), int64(-1))
	f.Fuzz(func(t *testing.T, method uint8, headers string, body []byte, contentLength int64) {
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Method = m
		for _, line := range strings.Split(headers, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if k = strings.TrimSpace(k); ok && k != "" {
				req.Header.Add(k, strings.TrimSpace(v))
			}
		}
		// The body as a server hands it to the handler: cut at the announced length, or
		// ending in io.ErrUnexpectedEOF when the client sent less than it announced.
		var r io.Reader = bytes.NewReader(body)
		req.ContentLength = -1
		if contentLength >= 0 {
			req.ContentLength = contentLength
			if contentLength <= int64(len(body)) {
				r = bytes.NewReader(body[:contentLength])
			} else {
				r = unexpectedEOF{bytes.NewReader(body)}
			}
		}
		req.Body = io.NopCloser(r)

		e, err := eventing.ReadRequest(context.Background(), req)
		if err != nil {
			require.Nil(t, e)
			bad := checkRejection(t, err)
			switch {
			case m != http.MethodPost:
				require.Equal(t, http.StatusMethodNotAllowed, bad.Status, "%s: %s", m, bad.Message)
			case contentLength > eventing.MaxBodyBytes && bad.Status != http.StatusUnsupportedMediaType:
				require.Equal(t, http.StatusRequestEntityTooLarge, bad.Status, bad.Message)
			}
			return
		}
		require.NotNil(t, e)
		require.Equal(t, http.MethodPost, m, "only POST is read")
		require.LessOrEqual(t, contentLength, int64(eventing.MaxBodyBytes), "an announced length over the limit is not read")
		sent := len(body)
		if contentLength >= 0 {
			require.LessOrEqual(t, contentLength, int64(len(body)), "a body shorter than announced is not accepted")
			sent = int(contentLength)
		}
		require.LessOrEqual(t, sent, eventing.MaxBodyBytes, "a body over the limit is not accepted")
		require.NoError(t, e.Validate(), "an accepted event is a valid CloudEvent")
		if mt, _, perr := mime.ParseMediaType(req.Header.Get("Content-Type")); perr == nil {
			require.NotEqual(t, "application/cloudevents-batch+json", strings.ToLower(mt), "a batch is never read")
		}
		in, err := eventing.Decode(*e)
		checkDecoded(t, *e, in, err)
	})
}
