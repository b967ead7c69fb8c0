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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
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
	kind := "Pod"
	if in.Object == eventing.ObjectVPA {
		kind = "VerticalPodAutoscaler"
		require.Equal(t, "autoscaling.k8s.io/v1", head.APIVersion)
		require.Nil(t, in.Pod, "a VerticalPodAutoscaler event carries its identity only")
	} else {
		require.Equal(t, eventing.ObjectPod, in.Object)
		require.Equal(t, "v1", head.APIVersion)
	}
	require.Equal(t, kind, head.Kind)

	if in.Object == eventing.ObjectVPA {
		// its identity only (checked above and below)
	} else if in.Mode == eventing.Resource {
		require.NotNil(t, in.Pod, "Resource mode carries the pod")
		require.Equal(t, "Pod", in.Pod.Kind)
		require.Equal(t, "v1", in.Pod.APIVersion)
		require.Equal(t, in.Namespace, in.Pod.Namespace)
		require.Equal(t, in.Name, in.Pod.Name)
		if in.Op != eventing.Delete {
			require.NotEmpty(t, in.Pod.UID, "a pod to write to has a uid to guard on")
		}
		if in.Pod.UID != "" {
			_, perr := uuid.Parse(string(in.Pod.UID))
			require.NoError(t, perr, "accepted uid %q", in.Pod.UID)
			require.Len(t, in.Pod.UID, 36, "accepted uid %q", in.Pod.UID)
		}
		if ts := in.Pod.CreationTimestamp; !ts.IsZero() {
			require.False(t, ts.Year() < 2000, "accepted creationTimestamp %s", ts)
		}
	} else {
		require.Nil(t, in.Pod, "Reference mode carries no pod")
	}
	for attr, got := range map[string]string{"namespace": in.Namespace, "name": in.Name, "kind": kind} {
		if v, ok := e.Extensions()[attr]; ok {
			s, isString := v.(string)
			require.True(t, isString, "extension %s is %T", attr, v)
			require.Equal(t, got, s, "extension %s disagrees with the data", attr)
		}
	}
}

func FuzzDecode(f *testing.F) {
	const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"` + uid + `"}}`
	const ref = `{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"v1"}`
	// typ indexes fuzzTypes; name and namespace, when not empty, are the identity extensions.
	f.Add(uint8(0), []byte(pod), "application/json", "web-1", "default")
	f.Add(uint8(1), []byte(pod), "", "", "")
	f.Add(uint8(2), []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default"}}`), "application/json", "", "")
	f.Add(uint8(3), []byte(ref), "application/json; charset=utf-8", "web-1", "default")
	f.Add(uint8(4), []byte(ref), "application/vnd.k8s+json", "", "")
	f.Add(uint8(5), []byte(ref), "application/json", "other", "")
	const vpa = `{"apiVersion":"autoscaling.k8s.io/v1","kind":"VerticalPodAutoscaler","metadata":{"name":"web","namespace":"default","uid":"` + uid +
		`"},"spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}},"status":{"conditions":[{"type":"RecommendationProvided","status":"True"}]}}`
	f.Add(uint8(1), []byte(vpa), "application/json", "web", "default")
	f.Add(uint8(4), []byte(`{"kind":"VerticalPodAutoscaler","namespace":"default","name":"web","apiVersion":"autoscaling.k8s.io/v1"}`), "application/json", "", "")
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
	const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"` + uid + `"}}`
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

// richPod is a pod with most kinds of field a real one has: quantities, int-or-strings, times,
// pointers, maps, nested lists and an escaped string.
const richPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-7d9f8-abcde","generateName":"web-7d9f8-","namespace":"default","uid":"0c7f6a52-3d0e-4f7a-9a35-1d1f8b6f2a10","resourceVersion":"1107","generation":1,` +
	`"creationTimestamp":"2026-11-26T05:00:44Z","deletionTimestamp":"2026-11-26T05:01:14+01:00","deletionGracePeriodSeconds":30,` +
	`"labels":{"app":"web","pod-template-hash":"7d9f8"},"annotations":{"vpa-managed":"true","note":"caf\u00e9 \"quoted\" \ud83d\ude00"},` +
	`"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8","uid":"5e2b0c1d-8f3a-4c6e-9b7d-2a1c3e4f5a6b","controller":true,"blockOwnerDeletion":true}],` +
	`"finalizers":["vpagracefuldrain.dev/drain"],"managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"v1","time":"2026-11-26T05:00:44Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{}}}}}]},` +
	`"spec":{"containers":[{"name":"app","image":"nginx:1.27","command":["nginx","-g","daemon off;"],"ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],` +
	`"env":[{"name":"A","value":"1"},{"name":"POD","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}},{"name":"MEM","valueFrom":{"resourceFieldRef":{"resource":"limits.memory","divisor":"1Mi"}}}],` +
	`"resources":{"limits":{"cpu":"500m","memory":"256Mi","ephemeral-storage":"1G"},"requests":{"cpu":"0.1","memory":"128974848"}},` +
	`"livenessProbe":{"httpGet":{"path":"/healthz","port":"http","scheme":"HTTP"},"initialDelaySeconds":5,"periodSeconds":10,"timeoutSeconds":1,"successThreshold":1,"failureThreshold":3},` +
	`"readinessProbe":{"tcpSocket":{"port":8080}},"lifecycle":{"preStop":{"sleep":{"seconds":5}}},` +
	`"securityContext":{"runAsNonRoot":true,"runAsUser":1000,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}},` +
	`"volumeMounts":[{"name":"tmp","mountPath":"/tmp"},{"name":"cfg","mountPath":"/etc/cfg","readOnly":true}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],` +
	`"volumes":[{"name":"tmp","emptyDir":{"medium":"Memory","sizeLimit":"64Mi"}},{"name":"cfg","configMap":{"name":"web","defaultMode":420,"items":[{"key":"a","path":"a.conf"}]}}],` +
	`"restartPolicy":"Always","terminationGracePeriodSeconds":30,"activeDeadlineSeconds":null,"dnsPolicy":"ClusterFirst","serviceAccountName":"web","nodeName":"node-1","priority":0,` +
	`"affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,"podAffinityTerm":{"labelSelector":{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]}]},"topologyKey":"kubernetes.io/hostname"}}]}},` +
	`"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],` +
	`"topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"zone","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app":"web"}}}],"overhead":{"cpu":"10m"}},` +
	`"status":{"phase":"Running","qosClass":"Burstable","hostIP":"10.0.0.1","podIP":"10.1.0.5","podIPs":[{"ip":"10.1.0.5"}],"startTime":"2026-11-26T05:00:44Z",` +
	`"conditions":[{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-26T05:00:46Z"},{"type":"DisruptionTarget","status":"True","reason":"EvictionByEvictionAPI","message":"Eviction API: evicting","lastTransitionTime":"2026-11-26T05:00:51.5Z"}],` +
	`"containerStatuses":[{"name":"app","ready":true,"restartCount":1,"image":"nginx:1.27","imageID":"docker.io/library/nginx@sha256:00","containerID":"containerd://00","started":true,` +
	`"state":{"running":{"startedAt":"2026-11-26T05:00:45Z"}},"lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled","startedAt":"2026-11-26T05:00:40Z","finishedAt":"2026-11-26T05:00:44Z"}},` +
	`"allocatedResources":{"cpu":"100m"},"resources":{"requests":{"cpu":"100m"}}}]}}`

// differentialSeeds is data for FuzzDecodeMatchesEncodingJSON: the bodies of the captured
// requests and the samples, the []byte values of the FuzzDecode and FuzzReadRequest corpora,
// and pods whose JSON is unusual.
func differentialSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		[]byte(richPod),
		[]byte(validPod),
		[]byte(`{"APIVERSION":"v1","Kind":"Pod","METADATA":{"NAME":"web-1","nameSpace":"default","UID":"u"}}`),
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","name":"b","labels":{"x":"1"},"labels":{"y":"2"},"finalizers":["f"],"finalizers":null}}`),
		[]byte(`{"spec":{"containers":[{"name":"a","image":"x"}],"containers":[{"name":"b"}]}}`),
		[]byte(`{"metadata":{"name":null,"deletionTimestamp":null,"creationTimestamp":null,"deletionGracePeriodSeconds":null},"spec":null,"status":{}}`),
		[]byte(`{"metadata":{"creationTimestamp":"2026-11-26T05:00:44.123456789-07:00","deletionTimestamp":"2026-11-26T05:00:44Z"}}`),
		[]byte(`{"metadata":{"creationTimestamp":"2026-11-26 05:00:44Z"}}`),
		[]byte(`{"metadata":{"creationTimestamp":"\u0032026-11-26T05:00:44Z"}}`),
		[]byte(`{"metadata":{"creationTimestamp":1764133244}}`),
		[]byte(`{"metadata":{"deletionTimestamp":{}}}`),
		[]byte(`{"metadata":{"managedFields":5}}`),
		[]byte(`{"metadata":{"managedFields":[{"time":"yesterday"}]}}`),
		[]byte(`{"metadata":{"name":"\ud800","namespace":"\xff","labels":{"\u00e9":"\udc00x"}}}`),
		[]byte("{\"metadata\":{\"name\":\"\xff\xfe\",\"namespace\":\"a\xc3\"}}"),
		[]byte(`{"spec":{"containers":[{"ports":[{"containerPort":1.0},{"containerPort":-0},{"containerPort":2147483648}]}]}}`),
		[]byte(`{"spec":{"containers":[{"resources":{"limits":{"cpu":"1e3","memory":"1.5Gi"},"requests":{"cpu":null}}}]}}`),
		[]byte(`{"spec":{"containers":[{"livenessProbe":{"httpGet":{"port":"8080"}},"readinessProbe":{"httpGet":{"port":80.5}}}]}}`),
		[]byte(`{"spec":{"priority":1e2,"terminationGracePeriodSeconds":"30"}}`),
		[]byte(`{"spec":{"containers":[{"livenessProbe":{"httpGet":{"port":null}},"resources":{"limits":null}}],"volumes":[{"emptyDir":{"sizeLimit":null}}]}}`),
		[]byte(`{"status":{"phase":"Running","conditions":[{"type":"Ready","lastTransitionTime":"2026-11-26T05:00:46Z"}]}} `),
		[]byte(`{"kind":"Pod"} {}`),
		[]byte(`[` + validPod + `]`),
		[]byte(`null`),
		[]byte(`{"kind": Pod}`),
	}
	for _, depth := range []int{9_998, 9_999, 10_000, 10_001} { // around both decoders' nesting limit
		seeds = append(seeds, []byte(`{"x":`+strings.Repeat("[", depth)+strings.Repeat("]", depth)+`}`))
	}
	files, err := filepath.Glob(filepath.Join(captured, "*", "*.txt"))
	require.NoError(t, err)
	samples, err := filepath.Glob("../test/events/*.http")
	require.NoError(t, err)
	for _, file := range append(files, samples...) {
		seeds = append(seeds, readEvent(t, file).Data())
	}
	corpus, err := filepath.Glob("testdata/fuzz/*/*")
	require.NoError(t, err)
	for _, file := range corpus {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			if lit, ok := strings.CutPrefix(line, "[]byte("); ok && strings.HasSuffix(lit, ")") {
				data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
				require.NoError(t, err, "%s: %s", file, line)
				seeds = append(seeds, []byte(data))
			}
		}
	}
	return seeds
}

// FuzzDecodeMatchesEncodingJSON holds the json v2 decode of a Pod (eventing.DecodePod) to
// encoding/json's, which Decode used before: when both accept data the pods are equal but for
// metadata.managedFields (not decoded); data that is not JSON is rejected as such; and where
// only one accepts, the reason is managedFields. Nothing else may differ: the decode keeps
// encoding/json's semantics (case-insensitive names, duplicates, nulls, invalid UTF-8).
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, seed := range differentialSeeds(f) {
		f.Add(seed)
	}
	var want corev1.Pod
	require.NoError(f, json.Unmarshal([]byte(richPod), &want), "precondition: encoding/json decodes the rich pod")
	got, err := eventing.DecodePod([]byte(richPod))
	require.NoError(f, err)
	want.ManagedFields = nil
	require.Equal(f, want, *got, "the rich pod decodes as with encoding/json")
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := eventing.DecodePod(data)
		var want corev1.Pod
		wantErr := json.Unmarshal(data, &want)
		if err != nil {
			require.Nil(t, got)
			bad := checkRejection(t, err)
			require.Equal(t, http.StatusBadRequest, bad.Status)
			if json.Valid(data) {
				require.True(t, strings.HasPrefix(bad.Message, "event data is not a Pod: "), "valid JSON rejected as %q", bad.Message)
			} else {
				require.True(t, strings.HasPrefix(bad.Message, "event data is not valid JSON: "), "invalid JSON rejected as %q", bad.Message)
			}
		}
		switch {
		case !json.Valid(data):
			require.Error(t, err, "accepted data that is not JSON")
		case err == nil && wantErr == nil:
			// Decode's name checks (here on strings the fuzzer made) are the validation functions'.
			require.Equal(t, len(validation.IsDNS1123Label(got.Namespace)) == 0, eventing.DNS1123Label(got.Namespace), "namespace %q", got.Namespace)
			require.Equal(t, len(validation.IsDNS1123Subdomain(got.Name)) == 0, eventing.DNS1123Subdomain(got.Name), "name %q", got.Name)
			require.Empty(t, got.ManagedFields, "managedFields are not decoded")
			want.ManagedFields = nil
			require.Equal(t, want, *got)
		case err != nil && wantErr == nil:
			t.Fatalf("rejected data that encoding/json accepts: %v", err)
		case err == nil && wantErr != nil:
			// Only what is wrong in metadata.managedFields, which are skipped unread: the
			// same decode without the skip fails there.
			var sem *jsonv2.SemanticError
			full := jsonv2.Unmarshal(data, &corev1.Pod{}, jsonv1.DefaultOptionsV1(), jsonv1.ReportErrorsWithLegacySemantics(false))
			require.ErrorAs(t, full, &sem, "accepted data that encoding/json rejects (%v)", wantErr)
			tokens := strings.Split(string(sem.JSONPointer), "/")
			require.True(t, len(tokens) >= 3 && strings.EqualFold(tokens[1], "metadata") && strings.EqualFold(tokens[2], "managedFields"),
				"accepted data that encoding/json rejects (%v) for a reason outside managedFields: %v", wantErr, full)
		}
	})
}
