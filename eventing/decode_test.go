package eventing_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"function/config"
	"function/eventing"
	"function/handlers/drain"
	"function/names"
	"function/test/samples"
)

const captured = "testdata/apiserversource"

// Every request ApiServerSource really sent (captured from eventing v0.50.0) decodes.
func TestDecodeCapturedRequests(t *testing.T) {
	const demoUID = types.UID("9f844515-9af4-47f3-9bbf-9284ec9f5a02")
	tests := []struct {
		file  string
		mode  eventing.Mode
		op    eventing.Op
		name  string
		check func(t *testing.T, in eventing.Input)
	}{
		{file: "resource-mode/001-dev.knative.apiserver.resource.add.txt", mode: eventing.Resource, op: eventing.Add, name: "demo-pod",
			check: func(t *testing.T, in eventing.Input) {
				assert.Equal(t, "219", in.Pod.ResourceVersion)
				assert.Empty(t, in.Pod.Finalizers)
				assert.Contains(t, string(readEvent(t, filepath.Join(captured, "resource-mode/001-dev.knative.apiserver.resource.add.txt")).Data()), `"managedFields":[{`,
					"precondition: Resource mode carries managedFields")
				assert.Empty(t, in.Pod.ManagedFields, "managedFields are not decoded")
			}},
		{file: "resource-mode/002-dev.knative.apiserver.resource.update.txt", mode: eventing.Resource, op: eventing.Update, name: "demo-pod",
			check: func(t *testing.T, in eventing.Input) { assert.Equal(t, "one", in.Pod.Labels["stage"]) }},
		{file: "resource-mode/003-dev.knative.apiserver.resource.update.txt", mode: eventing.Resource, op: eventing.Update, name: "demo-pod",
			check: func(t *testing.T, in eventing.Input) {
				assert.Equal(t, []string{"example.com/pod-guard"}, in.Pod.Finalizers)
			}},
		{file: "resource-mode/004-dev.knative.apiserver.resource.update.txt", mode: eventing.Resource, op: eventing.Update, name: "demo-pod",
			check: func(t *testing.T, in eventing.Input) {
				require.NotNil(t, in.Pod.DeletionTimestamp, "a delete arrives as an update with deletionTimestamp")
				require.NotNil(t, in.Pod.DeletionGracePeriodSeconds)
				assert.Equal(t, int64(0), *in.Pod.DeletionGracePeriodSeconds)
				assert.Equal(t, time.Date(2026, 11, 26, 5, 0, 51, 0, time.UTC), in.Pod.DeletionTimestamp.UTC())
			}},
		{file: "resource-mode/005-dev.knative.apiserver.resource.delete.txt", mode: eventing.Resource, op: eventing.Delete, name: "demo-pod",
			check: func(t *testing.T, in eventing.Input) {
				assert.Equal(t, []string{"example.com/pod-guard"}, in.Pod.Finalizers, "the delete event lists the last finalizers")
			}},
		{file: "reference-mode/001-dev.knative.apiserver.ref.add.txt", mode: eventing.Reference, op: eventing.Add, name: "demo-pod2"},
		{file: "reference-mode/002-dev.knative.apiserver.ref.update.txt", mode: eventing.Reference, op: eventing.Update, name: "demo-pod2"},
		{file: "reference-mode/003-dev.knative.apiserver.ref.update.txt", mode: eventing.Reference, op: eventing.Update, name: "demo-pod2"},
		{file: "reference-mode/004-dev.knative.apiserver.ref.update.txt", mode: eventing.Reference, op: eventing.Update, name: "demo-pod2"},
		{file: "reference-mode/005-dev.knative.apiserver.ref.delete.txt", mode: eventing.Reference, op: eventing.Delete, name: "demo-pod2"},
		{file: "reference-mode/006-dev.knative.apiserver.ref.update.txt", mode: eventing.Reference, op: eventing.Update, name: "preexisting"},
		{file: "reference-mode/007-dev.knative.apiserver.ref.delete.txt", mode: eventing.Reference, op: eventing.Delete, name: "preexisting"},
	}
	files, err := filepath.Glob(filepath.Join(captured, "*", "*.txt"))
	require.NoError(t, err)
	require.Len(t, files, len(tests), "every captured request has a row")

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			e := readEvent(t, filepath.Join(captured, tt.file))
			assert.Equal(t, eventing.PodPath("default", tt.name), e.Subject(), "precondition: subject")

			in, err := eventing.Decode(e)
			require.NoError(t, err)
			assert.Equal(t, tt.mode, in.Mode)
			assert.Equal(t, tt.op, in.Op)
			assert.Equal(t, "default", in.Namespace)
			assert.Equal(t, tt.name, in.Name)
			if tt.mode == eventing.Reference {
				assert.Nil(t, in.Pod)
				return
			}
			require.NotNil(t, in.Pod)
			assert.Equal(t, demoUID, in.Pod.UID)
			assert.Equal(t, tt.name, in.Pod.Name)
			assert.Equal(t, "default", in.Pod.Namespace)
			if tt.check != nil {
				tt.check(t, in)
			}
		})
	}
}

// The sample events of test/events (used by `make invoke` and the docs) decode, and lead to
// the decision their names promise.
func TestDecodeSampleEvents(t *testing.T) {
	tests := map[string]struct {
		mode       eventing.Mode
		op         eventing.Op
		name       string
		wantAction drain.Action
		wantErr    string
		object     eventing.Object
	}{
		"managed-pod-added.http":    {mode: eventing.Resource, op: eventing.Add, name: "web-7d9f8-abcde", wantAction: drain.AddFinalizer},
		"evicted-pod.http":          {mode: eventing.Resource, op: eventing.Update, name: "web-7d9f8-abcde", wantAction: drain.StartDrain},
		"drained-pod.http":          {mode: eventing.Resource, op: eventing.Update, name: "db-0", wantAction: drain.RemoveFinalizer},
		"unmanaged-pod.http":        {mode: eventing.Resource, op: eventing.Add, name: "batch-job-x7k2p", wantAction: drain.None},
		"reference-mode-added.http": {mode: eventing.Reference, op: eventing.Add, name: "demo-pod2"},
		"malformed.http":            {wantErr: "event data is not valid JSON"},
		"vpa-updated.http":          {mode: eventing.Resource, op: eventing.Update, name: "web", object: eventing.ObjectVPA},
	}
	files, err := filepath.Glob("../test/events/*.http")
	require.NoError(t, err)
	require.Len(t, files, len(tests), "every sample has a row")

	for _, file := range files {
		tt, ok := tests[filepath.Base(file)]
		require.True(t, ok, "no row for %s", file)
		t.Run(filepath.Base(file), func(t *testing.T) {
			e := readEvent(t, file)
			in, err := eventing.Decode(e)
			if tt.wantErr != "" {
				var bad *eventing.InputError
				require.ErrorAs(t, err, &bad)
				assert.Equal(t, http.StatusBadRequest, bad.Status)
				assert.Contains(t, bad.Message, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.mode, in.Mode)
			assert.Equal(t, tt.op, in.Op)
			assert.Equal(t, "default", in.Namespace)
			assert.Equal(t, tt.name, in.Name)
			assert.Equal(t, tt.object, in.Object)
			if tt.mode == eventing.Reference || tt.object == eventing.ObjectVPA {
				assert.Nil(t, in.Pod)
				return
			}
			// As a cluster would answer: the web pods' ReplicaSet belongs to Deployment web.
			facts := drain.Facts{Owner: &drain.Owner{Kind: config.KindDeployment, Name: "web"}}
			d := drain.DecideWith(in.Pod, config.Default(), time.Now(), facts)
			assert.Equal(t, tt.wantAction, d.Action, "reason %q", d.Reason)
			assert.Empty(t, d.Warnings, "the {{now±Ns}} tokens are substituted")
		})
	}
}

// uid is a pod uid as the API server writes one.
const uid = "4f0b6a52-3d0e-4f7a-9a35-1d1f8b6f2a10"

const validPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"` + uid + `"}}`

// podWith is a valid pod in default named web-1 with the metadata and status members given as
// raw JSON ("" for none).
func podWith(metadata, status string) string {
	if metadata != "" {
		metadata = "," + metadata
	}
	if status != "" {
		status = `,"status":{` + status + "}"
	}
	return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"` + uid + `"` + metadata + "}" + status + "}"
}

// decodeNow is the now of the decoders in these tests: the times of the captured requests are
// from 2026-11-26.
var decodeNow = time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)

func decoder() eventing.Decoder {
	return eventing.Decoder{Clock: clocktesting.NewFakePassiveClock(decodeNow)}
}

type eventOpt func(*event.Event)

func withData(contentType, data string) eventOpt {
	return func(e *event.Event) {
		if err := e.SetData(contentType, []byte(data)); err != nil {
			panic(err)
		}
	}
}

func jsonData(data string) eventOpt { return withData(event.ApplicationJSON, data) }

func withExt(name, value string) eventOpt {
	return func(e *event.Event) { e.SetExtension(name, value) }
}

func newEvent(typ string, opts ...eventOpt) event.Event {
	e := event.New()
	e.SetID("1b0c5d1e-0000-4000-8000-000000000001")
	e.SetSource("https://127.0.0.1:26443")
	e.SetType(typ)
	for _, o := range opts {
		o(&e)
	}
	return e
}

const (
	resAdd    = "dev.knative.apiserver.resource.add"
	resUpdate = "dev.knative.apiserver.resource.update"
	resDelete = "dev.knative.apiserver.resource.delete"
	refAdd    = "dev.knative.apiserver.ref.add"
	refUpdate = "dev.knative.apiserver.ref.update"
	refDelete = "dev.knative.apiserver.ref.delete"
)

// podOfSize is a valid Pod JSON document of exactly n bytes (padded in an annotation).
func podOfSize(n int) string {
	const head = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"` + uid + `","annotations":{"pad":"`
	const tail = `"}}}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		event   event.Event
		status  int
		message string
	}{
		{"unknown type", newEvent("com.example.something", jsonData(validPod)), 400, `unsupported event type "com.example.something"`},
		{"ApiServerSource-like type that does not exist", newEvent("dev.knative.apiserver.resource.patch", jsonData(validPod)), 400, `unsupported event type "dev.knative.apiserver.resource.patch"`},
		{"empty type", newEvent("", jsonData(validPod)), 400, `unsupported event type ""`},
		{"type in other case", newEvent("DEV.KNATIVE.APISERVER.RESOURCE.ADD", jsonData(validPod)), 400, "unsupported event type"},
		{"no data", newEvent(resAdd), 400, "event dev.knative.apiserver.resource.add has no data"},
		{"empty data", newEvent(resAdd, jsonData("")), 400, "has no data"},
		{"whitespace data", newEvent(refUpdate, jsonData(" \n\t\r ")), 400, "event dev.knative.apiserver.ref.update has no data"},
		{"invalid JSON", newEvent(resAdd, jsonData(`{not json}`)), 400, "event data is not valid JSON: invalid character 'n'"},
		{"truncated JSON", newEvent(resUpdate, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"na`)), 400, "event data is not valid JSON: unexpected end of JSON input"},
		{"trailing garbage", newEvent(resAdd, jsonData(validPod+` x`)), 400, "event data is not valid JSON"},
		{"invalid JSON in reference mode", newEvent(refAdd, jsonData(`{"kind":`)), 400, "event data is not valid JSON"},
		{"JSON array", newEvent(resAdd, jsonData(`[{"kind":"Pod"}]`)), 400, "event data is not a Pod: json: cannot unmarshal array"},
		{"JSON string", newEvent(resAdd, jsonData(`"web-1"`)), 400, "event data is not a Pod: json: cannot unmarshal string"},
		{"JSON null", newEvent(resAdd, jsonData(`null`)), 400, `event data is kind "" apiVersion "", not a v1 Pod`},
		{"JSON array in reference mode", newEvent(refAdd, jsonData(`["Pod"]`)), 400, "event data is not a pod reference"},
		{"number where a string is expected", newEvent(resAdd, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":5,"namespace":"default","uid":"u-1"}}`)), 400, "event data is not a Pod: json: cannot unmarshal number"},
		{"number where a string is expected, reference mode", newEvent(refAdd, jsonData(`{"kind":"Pod","apiVersion":"v1","namespace":"default","name":5}`)), 400, "event data is not a pod reference: json: cannot unmarshal number"},
		{"metadata is a string", newEvent(resAdd, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":"web-1"}`)), 400, "event data is not a Pod"},
		{"kind Deployment", newEvent(resAdd, jsonData(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","uid":"u-1"}}`)), 400, `event data is kind "Deployment" apiVersion "apps/v1", not a v1 Pod`},
		{"apiVersion apps/v1", newEvent(resAdd, jsonData(`{"apiVersion":"apps/v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","uid":"u-1"}}`)), 400, `event data is kind "Pod" apiVersion "apps/v1", not a v1 Pod`},
		{"no kind", newEvent(resAdd, jsonData(`{"apiVersion":"v1","metadata":{"name":"web-1","namespace":"default","uid":"u-1"}}`)), 400, `kind "" apiVersion "v1", not a v1 Pod`},
		{"reference to a Secret", newEvent(refAdd, jsonData(`{"kind":"Secret","namespace":"default","name":"creds","apiVersion":"v1"}`)), 400, `event data is kind "Secret" apiVersion "v1", not a v1 Pod`},
		{"missing name", newEvent(resAdd, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"default","uid":"u-1"}}`)), 400, "pod name is missing"},
		{"missing name, reference mode", newEvent(refAdd, jsonData(`{"kind":"Pod","namespace":"default","apiVersion":"v1"}`)), 400, "pod name is missing"},
		{"missing namespace", newEvent(resAdd, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","uid":"u-1"}}`)), 400, "pod namespace is missing"},
		{"invalid name (uppercase)", newEvent(resAdd, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Web-1","namespace":"default","uid":"u-1"}}`)), 400, `pod name "Web-1" is invalid`},
		{"invalid name (path)", newEvent(refAdd, jsonData(`{"kind":"Pod","namespace":"default","name":"../secrets","apiVersion":"v1"}`)), 400, `pod name "../secrets" is invalid`},
		{"invalid namespace", newEvent(resAdd, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"my.ns","uid":"u-1"}}`)), 400, `pod namespace "my.ns" is invalid`},
		{"missing uid in resource mode", newEvent(resUpdate, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default"}}`)), 400, "pod default/web-1 has no metadata.uid"},
		{"uid not a UUID", newEvent(resUpdate, jsonData(strings.Replace(validPod, uid, "u-1", 1))), 400, `pod default/web-1 metadata.uid "u-1" is not a UUID`},
		{"uid a UUID without dashes", newEvent(resAdd, jsonData(strings.Replace(validPod, uid, strings.ReplaceAll(uid, "-", ""), 1))), 400, "is not a UUID"},
		{"uid a braced UUID", newEvent(resAdd, jsonData(strings.Replace(validPod, uid, "{"+uid+"}", 1))), 400, "is not a UUID"},
		{"uid a urn", newEvent(resAdd, jsonData(strings.Replace(validPod, uid, "urn:uuid:"+uid, 1))), 400, "is not a UUID"},
		{"uid a UUID with a non-hex digit", newEvent(resAdd, jsonData(strings.Replace(validPod, uid, "g"+uid[1:], 1))), 400, "is not a UUID"},
		{"uid not a UUID in a delete event", newEvent(resDelete, jsonData(strings.Replace(validPod, uid, "u-1", 1))), 400, `metadata.uid "u-1" is not a UUID`},
		{"uid of 10,000 characters, message cut", newEvent(resAdd, jsonData(strings.Replace(validPod, uid, strings.Repeat("u", 10000), 1))), 400, `metadata.uid "` + strings.Repeat("u", drain.MaxQuoted) + `…" (10000 bytes) is not a UUID`},
		{"name of 10,000 characters, message cut", newEvent(refAdd, jsonData(`{"kind":"Pod","namespace":"default","name":"`+strings.Repeat("A", 10000)+`","apiVersion":"v1"}`)), 400, `pod name "` + strings.Repeat("A", drain.MaxQuoted) + `…" (10000 bytes) is invalid`},
		{"creationTimestamp before 2000", newEvent(resAdd, jsonData(podWith(`"creationTimestamp":"1999-12-31T23:59:59Z"`, ""))), 400,
			"pod default/web-1 metadata.creationTimestamp 1999-12-31T23:59:59Z is out of range: a pod's times lie from 2000-01-01T00:00:00Z to 10 years after now"},
		{"creationTimestamp at the Unix epoch", newEvent(resAdd, jsonData(podWith(`"creationTimestamp":"1970-01-01T00:00:00Z"`, ""))), 400, "metadata.creationTimestamp 1970-01-01T00:00:00Z is out of range"},
		{"creationTimestamp in the year 9999", newEvent(resUpdate, jsonData(podWith(`"creationTimestamp":"9999-12-31T23:59:59Z"`, ""))), 400, "metadata.creationTimestamp 9999-12-31T23:59:59Z is out of range"},
		{"creationTimestamp 10 years and a day ahead", newEvent(resAdd, jsonData(podWith(`"creationTimestamp":"2036-11-24T05:00:01Z"`, ""))), 400, "metadata.creationTimestamp 2036-11-24T05:00:01Z is out of range"},
		{"deletionTimestamp in the year 9999", newEvent(resUpdate, jsonData(podWith(`"deletionTimestamp":"9999-12-31T23:59:59Z"`, ""))), 400, "metadata.deletionTimestamp 9999-12-31T23:59:59Z is out of range"},
		{"deletionTimestamp in the year 9999, delete event", newEvent(resDelete, jsonData(podWith(`"deletionTimestamp":"9999-12-31T23:59:59Z"`, ""))), 400, "metadata.deletionTimestamp 9999-12-31T23:59:59Z is out of range"},
		{"startTime in the year 1", newEvent(resUpdate, jsonData(podWith("", `"startTime":"0001-01-02T00:00:00Z"`))), 400, "status.startTime 0001-01-02T00:00:00Z is out of range"},
		{"condition lastTransitionTime in 1990", newEvent(resUpdate, jsonData(podWith("", `"conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-11-26T05:00:00Z"},{"type":"DisruptionTarget","status":"True","lastTransitionTime":"1990-01-01T00:00:00Z"}]`))), 400,
			"status.conditions[1].lastTransitionTime 1990-01-01T00:00:00Z is out of range"},
		{"container running since 9999", newEvent(resUpdate, jsonData(podWith("", `"containerStatuses":[{"name":"app","state":{"running":{"startedAt":"9999-01-01T00:00:00Z"}}}]`))), 400,
			"status.containerStatuses[0].state.running.startedAt 9999-01-01T00:00:00Z is out of range"},
		{"container terminated, started in 1980", newEvent(resUpdate, jsonData(podWith("", `"containerStatuses":[{"name":"app","state":{"terminated":{"exitCode":0,"startedAt":"1980-01-01T00:00:00Z","finishedAt":"2026-11-26T05:00:00Z"}}}]`))), 400,
			"status.containerStatuses[0].state.terminated.startedAt 1980-01-01T00:00:00Z is out of range"},
		{"init container finished in 9999", newEvent(resUpdate, jsonData(podWith("", `"initContainerStatuses":[{"name":"init","state":{"terminated":{"exitCode":0,"startedAt":"2026-11-26T05:00:00Z","finishedAt":"9999-01-01T00:00:00Z"}}}]`))), 400,
			"status.initContainerStatuses[0].state.terminated.finishedAt 9999-01-01T00:00:00Z is out of range"},
		{"last state finished in 1999", newEvent(resUpdate, jsonData(podWith("", `"containerStatuses":[{"name":"a","state":{}},{"name":"app","state":{},"lastState":{"terminated":{"exitCode":1,"finishedAt":"1999-01-01T00:00:00Z"}}}]`))), 400,
			"status.containerStatuses[1].lastState.terminated.finishedAt 1999-01-01T00:00:00Z is out of range"},
		{"ephemeral container running since 1999", newEvent(resUpdate, jsonData(podWith("", `"ephemeralContainerStatuses":[{"name":"debug","state":{"running":{"startedAt":"1999-01-01T00:00:00Z"}}}]`))), 400,
			"status.ephemeralContainerStatuses[0].state.running.startedAt 1999-01-01T00:00:00Z is out of range"},
		{"resourceVersion of 2 MiB", newEvent(resUpdate, jsonData(podWith(`"resourceVersion":"`+strings.Repeat("9", 2<<20)+`"`, ""))), 400,
			"pod default/web-1 metadata.resourceVersion is 2097152 bytes, more than 64"},
		{"owner name of 2 MiB, message cut", newEvent(resUpdate, jsonData(podWith(`"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"`+
			strings.Repeat("r", 2<<20)+`","uid":"`+uid+`","controller":true}]`, ""))), 400, `name "` + strings.Repeat("r", drain.MaxQuoted) + `…" (2097152 bytes)`},
		{"datacontenttype text/plain", newEvent(resAdd, withData("text/plain", validPod)), 400, `datacontenttype "text/plain" is not JSON`},
		{"datacontenttype application/xml", newEvent(resAdd, withData("application/xml", validPod)), 400, `datacontenttype "application/xml" is not JSON`},
		{"unparsable datacontenttype", newEvent(resAdd, withData("application/json; charset", validPod)), 400, `datacontenttype "application/json; charset" is not JSON`},
		{"data over 3 MiB", newEvent(resAdd, jsonData(podOfSize(eventing.MaxDataBytes+1))), 413, "event data is 3145729 bytes, the limit is 3145728"},
		{"data over 3 MiB, not even JSON", newEvent(refAdd, jsonData(strings.Repeat("x", 4<<20))), 413, "the limit is 3145728"},
		{"extension name mismatch", newEvent(resAdd, jsonData(validPod), withExt("name", "other")), 400, `extension name="other" does not match the data ("web-1")`},
		{"extension namespace mismatch", newEvent(resAdd, jsonData(validPod), withExt("namespace", "prod")), 400, `extension namespace="prod" does not match the data ("default")`},
		{"extension kind mismatch", newEvent(refAdd, jsonData(`{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"v1"}`), withExt("kind", "Secret")), 400, `extension kind="Secret" does not match the data ("Pod")`},
	}
	require.GreaterOrEqual(t, len(tests), 15)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := decoder().Decode(tt.event)
			require.Error(t, err)
			assert.Equal(t, eventing.Input{}, in)
			var bad *eventing.InputError
			require.ErrorAs(t, err, &bad)
			assert.Equal(t, tt.status, bad.Status)
			assert.Contains(t, bad.Message, tt.message)
			assert.Equal(t, bad.Message, err.Error())
		})
	}
}

// HandledTypes are exactly the types the function handles: the six Decode reads and the two
// sweep requests; a type Decode refuses is not among them.
func TestHandledTypes(t *testing.T) {
	assert.Equal(t, []string{refAdd, refDelete, refUpdate, resAdd, resDelete, resUpdate, names.TypePing, names.TypeSweep}, eventing.HandledTypes())
	for _, typ := range append(eventing.HandledTypes(), "", "com.example.other", resAdd+" ", names.ReplyFinalizerAdded) {
		e := newEvent(typ, jsonData(`{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"v1"}`))
		_, err := eventing.Decode(e)
		decoded := err == nil || !strings.Contains(err.Error(), "unsupported event type")
		assert.Equal(t, eventing.HandledType(e.Type()), decoded || eventing.IsSweep(e), "type %q", e.Type())
	}
}

// Decode's checks of a namespace and a name agree with the validation functions whose
// messages it reports.
func TestNameChecksMatchValidation(t *testing.T) {
	for _, v := range []string{
		"", "a", "0", "-", ".", "a-", "-a", "a.", ".a", "a..b", "a.b", "a-b.c-d", "web-7d9f8-abcde", "default", "kube-system",
		"A", "aB", "a_b", "a b", "a\x00", "é", "a.-b", "a-.b", "1.2.3.4", "xn--bcher-kva.example",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 253), strings.Repeat("a", 254),
		strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "ab", strings.Repeat("a", 100) + "." + strings.Repeat("b", 100),
	} {
		assert.Equal(t, len(validation.IsDNS1123Label(v)) == 0, eventing.DNS1123Label(v), "label %q", v)
		assert.Equal(t, len(validation.IsDNS1123Subdomain(v)) == 0, eventing.DNS1123Subdomain(v), "subdomain %q", v)
	}
}

func TestDecodeJSONErrorsGiveTheOffset(t *testing.T) {
	_, err := eventing.Decode(newEvent(resAdd, jsonData(`{"kind": Pod}`)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(at byte 10)")
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		event event.Event
		want  eventing.Input
	}{
		{"resource add", newEvent(resAdd, jsonData(validPod)), eventing.Input{Mode: eventing.Resource, Op: eventing.Add, Namespace: "default", Name: "web-1"}},
		{"resource delete without uid", newEvent(resDelete, jsonData(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default"}}`)),
			eventing.Input{Mode: eventing.Resource, Op: eventing.Delete, Namespace: "default", Name: "web-1"}},
		{"reference update", newEvent(refUpdate, jsonData(`{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"v1"}`)),
			eventing.Input{Mode: eventing.Reference, Op: eventing.Update, Namespace: "default", Name: "web-1"}},
		{"reference delete", newEvent(refDelete, jsonData(`{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"v1"}`)),
			eventing.Input{Mode: eventing.Reference, Op: eventing.Delete, Namespace: "default", Name: "web-1"}},
		{"dotted pod name", newEvent(refAdd, jsonData(`{"kind":"Pod","namespace":"default","name":"web.example-1","apiVersion":"v1"}`)),
			eventing.Input{Mode: eventing.Reference, Op: eventing.Add, Namespace: "default", Name: "web.example-1"}},
		{"charset parameter", newEvent(resAdd, withData("application/json; charset=utf-8", validPod)), eventing.Input{Mode: eventing.Resource, Op: eventing.Add, Namespace: "default", Name: "web-1"}},
		{"+json media type", newEvent(resAdd, withData("application/vnd.k8s+json", validPod)), eventing.Input{Mode: eventing.Resource, Op: eventing.Add, Namespace: "default", Name: "web-1"}},
		{"no datacontenttype", newEvent(resAdd, func(e *event.Event) { e.DataEncoded = []byte(validPod) }), eventing.Input{Mode: eventing.Resource, Op: eventing.Add, Namespace: "default", Name: "web-1"}},
		{"matching extensions", newEvent(resUpdate, jsonData(validPod), withExt("name", "web-1"), withExt("namespace", "default"), withExt("kind", "Pod"), withExt("apiversion", "v1")),
			eventing.Input{Mode: eventing.Resource, Op: eventing.Update, Namespace: "default", Name: "web-1"}},
		{"data of exactly 3 MiB (the API server's request limit)", newEvent(resAdd, jsonData(podOfSize(eventing.MaxDataBytes))), eventing.Input{Mode: eventing.Resource, Op: eventing.Add, Namespace: "default", Name: "web-1"}},
		{"uid in capitals", newEvent(resAdd, jsonData(strings.Replace(validPod, uid, strings.ToUpper(uid), 1))), eventing.Input{Mode: eventing.Resource, Op: eventing.Add, Namespace: "default", Name: "web-1"}},
		{"nil uid (the liveness probe's pod)", newEvent(resUpdate, jsonData(strings.Replace(validPod, uid, "00000000-0000-0000-0000-000000000000", 1))), eventing.Input{Mode: eventing.Resource, Op: eventing.Update, Namespace: "default", Name: "web-1"}},
		{"times at the bounds", newEvent(resUpdate, jsonData(podWith(`"creationTimestamp":"2000-01-01T00:00:00Z","deletionTimestamp":"2036-11-23T05:00:00Z"`,
			`"startTime":"2000-01-01T00:00:00Z","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2036-11-23T05:00:00Z"}],`+
				`"containerStatuses":[{"name":"app","state":{"terminated":{"exitCode":0,"startedAt":"2000-01-01T00:00:00Z","finishedAt":"2036-11-23T05:00:00Z"}},"lastState":{"running":{"startedAt":"2000-01-01T00:00:00Z"}}}]`))),
			eventing.Input{Mode: eventing.Resource, Op: eventing.Update, Namespace: "default", Name: "web-1"}},
		{"times null or absent", newEvent(resUpdate, jsonData(podWith(`"creationTimestamp":null,"deletionTimestamp":null`,
			`"startTime":null,"conditions":[{"type":"Ready","status":"True","lastTransitionTime":null}],"containerStatuses":[{"name":"app","state":{"waiting":{}},"lastState":{}}]`))),
			eventing.Input{Mode: eventing.Resource, Op: eventing.Update, Namespace: "default", Name: "web-1"}},
		{"a time in another zone inside the bounds", newEvent(resAdd, jsonData(podWith(`"creationTimestamp":"2000-01-01T00:30:00+00:30"`, ""))),
			eventing.Input{Mode: eventing.Resource, Op: eventing.Add, Namespace: "default", Name: "web-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := decoder().Decode(tt.event)
			require.NoError(t, err)
			assert.Equal(t, tt.want.Mode, in.Mode)
			assert.Equal(t, tt.want.Op, in.Op)
			assert.Equal(t, tt.want.Namespace, in.Namespace)
			assert.Equal(t, tt.want.Name, in.Name)
			if in.Mode == eventing.Resource {
				require.NotNil(t, in.Pod)
				assert.Equal(t, in.Name, in.Pod.Name)
			} else {
				assert.Nil(t, in.Pod)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	e := readEvent(b, filepath.Join(captured, "resource-mode/004-dev.knative.apiserver.resource.update.txt"))
	b.ReportAllocs()
	b.SetBytes(int64(len(e.Data())))
	for b.Loop() {
		if _, err := eventing.Decode(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeDecide is an event's work before any API call: decode the captured update of
// a deleting pod (004) and decide what to do with it. The pod is made one the function drains:
// the vpa-managed annotation and the finalizer a managed pod carries are added to its JSON
// (without the finalizer, Decide stops at "deleting without our finalizer").
func BenchmarkDecodeDecide(b *testing.B) {
	sample, err := samples.Read(filepath.Join(captured, "resource-mode/004-dev.knative.apiserver.resource.update.txt"))
	require.NoError(b, err)
	body := sample.Body
	for _, edit := range [][2]string{
		{`"annotations":{`, `"annotations":{"` + names.AnnotationManaged + `":"true",`},
		{`"finalizers":["example.com/pod-guard"]`, `"finalizers":["example.com/pod-guard","` + names.Finalizer + `"]`},
	} {
		require.Equal(b, 1, bytes.Count(body, []byte(edit[0])), "precondition: %s once in the captured pod", edit[0])
		body = bytes.Replace(body, []byte(edit[0]), []byte(edit[1]), 1)
	}
	req, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	require.NoError(b, err)
	req.Header = sample.Header
	e := toEvent(b, req)

	cfg := config.Default()
	// The captured pod has no owner, and it is deleted, not evicted.
	cfg.Workloads = map[config.Kind]config.WorkloadOverride{config.KindPod: {Manage: ptr.To(true)}}
	cfg.HoldOn = config.HoldAll
	now := time.Date(2026, 11, 26, 5, 0, 56, 0, time.UTC) // 5 s after the deletion
	in, err := eventing.Decode(e)
	require.NoError(b, err)
	d := drain.Decide(in.Pod, cfg, now)
	require.Equal(b, drain.StartDrain, d.Action, "precondition: the drain starts (%s)", d.Reason)

	b.ReportAllocs()
	b.SetBytes(int64(len(e.Data())))
	for b.Loop() {
		in, err := eventing.Decode(e)
		if err != nil {
			b.Fatal(err)
		}
		if d := drain.Decide(in.Pod, cfg, now); d.Action != drain.StartDrain {
			b.Fatal(d.Action, d.Reason)
		}
	}
}

// BenchmarkDecodeEncodingJSON is the floor of `make bench` row 1, measured in the same run:
// the data of the event BenchmarkDecode decodes, unmarshaled into a Pod by encoding/json alone
// (how Decode worked before it used json v2), with no checks.
func BenchmarkDecodeEncodingJSON(b *testing.B) {
	e := readEvent(b, filepath.Join(captured, "resource-mode/004-dev.knative.apiserver.resource.update.txt"))
	data := e.Data()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var pod corev1.Pod
		if err := json.Unmarshal(data, &pod); err != nil {
			b.Fatal(err)
		}
	}
}

// Events about VerticalPodAutoscalers (surge rollouts' trigger): only the identity is decoded,
// checked as a pod's is; what the VPA says is read from the API server.
func TestDecodeVerticalPodAutoscalers(t *testing.T) {
	const vpaUID = "6b1c7e0a-3f0e-4a55-9d7e-0c6a4f3b2d11"
	vpa := `{"apiVersion":"autoscaling.k8s.io/v1","kind":"VerticalPodAutoscaler","metadata":{"name":"web","namespace":"default","uid":"` + vpaUID +
		`","managedFields":[{"manager":"recommender"}]},"spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"updatePolicy":{"updateMode":"Initial"}},` +
		`"status":{"recommendation":{"containerRecommendations":[{"containerName":"app","target":{"cpu":"500m"}}]},"conditions":[{"type":"RecommendationProvided","status":"True"}]}}`
	asSource := func(e *event.Event) { // as ApiServerSource sends it
		e.SetExtension("kind", "VerticalPodAutoscaler")
		e.SetExtension("apiversion", "autoscaling.k8s.io/v1")
		e.SetExtension("name", "web")
		e.SetExtension("namespace", "default")
		e.SetSubject("/apis/autoscaling.k8s.io/v1/namespaces/default/verticalpodautoscalers/web")
	}
	accepts := []struct {
		name  string
		event event.Event
		op    eventing.Op
		mode  eventing.Mode
	}{
		{"resource update, as the source sends it", newEvent(resUpdate, jsonData(vpa), asSource), eventing.Update, eventing.Resource},
		{"resource add without the extensions", newEvent(resAdd, jsonData(vpa)), eventing.Add, eventing.Resource},
		{"resource delete without uid", newEvent(resDelete, jsonData(strings.Replace(vpa, `"uid":"`+vpaUID+`",`, "", 1)), asSource), eventing.Delete, eventing.Resource},
		{"reference update", newEvent(refUpdate, jsonData(`{"kind":"VerticalPodAutoscaler","namespace":"default","name":"web","apiVersion":"autoscaling.k8s.io/v1"}`), asSource), eventing.Update, eventing.Reference},
	}
	for _, tt := range accepts {
		t.Run(tt.name, func(t *testing.T) {
			in, err := decoder().Decode(tt.event)
			require.NoError(t, err)
			assert.Equal(t, eventing.Input{Mode: tt.mode, Op: tt.op, Object: eventing.ObjectVPA, Namespace: "default", Name: "web"}, in, "its identity only")
		})
	}
	rejects := []struct {
		name    string
		event   event.Event
		message string
	}{
		{"another apiVersion", newEvent(resUpdate, jsonData(strings.Replace(vpa, "autoscaling.k8s.io/v1", "autoscaling.k8s.io/v1beta2", 1))),
			`kind "VerticalPodAutoscaler" apiVersion "autoscaling.k8s.io/v1beta2", not a v1 Pod or an autoscaling.k8s.io/v1 VerticalPodAutoscaler`},
		{"the kind extension says VPA, the data is a Pod", newEvent(resUpdate, jsonData(validPod), asSource), `extension kind="VerticalPodAutoscaler" does not match the data ("Pod")`},
		{"the data is a VPA, the kind extension says Pod", newEvent(resUpdate, jsonData(vpa), withExt("kind", "Pod")), `extension kind="Pod" does not match the data ("VerticalPodAutoscaler")`},
		{"subject of a pod", newEvent(resUpdate, jsonData(vpa), asSource, func(e *event.Event) { e.SetSubject("/apis/v1/namespaces/default/pods/web") }),
			`subject "/apis/v1/namespaces/default/pods/web" does not match the data ("/apis/autoscaling.k8s.io/v1/namespaces/default/verticalpodautoscalers/web")`},
		{"invalid name", newEvent(resUpdate, jsonData(strings.Replace(vpa, `"name":"web"`, `"name":"../web"`, 1))), `VerticalPodAutoscaler name "../web" is invalid`},
		{"missing namespace", newEvent(refUpdate, jsonData(`{"kind":"VerticalPodAutoscaler","name":"web","apiVersion":"autoscaling.k8s.io/v1"}`)), "VerticalPodAutoscaler namespace is missing"},
		{"no uid", newEvent(resUpdate, jsonData(strings.Replace(vpa, `"uid":"`+vpaUID+`",`, "", 1)), asSource), "VerticalPodAutoscaler default/web has no metadata.uid"},
		{"uid not a UUID", newEvent(resUpdate, jsonData(strings.Replace(vpa, vpaUID, "u-1", 1)), asSource), `metadata.uid "u-1" is not a UUID`},
		{"metadata a string", newEvent(resUpdate, jsonData(`{"apiVersion":"autoscaling.k8s.io/v1","kind":"VerticalPodAutoscaler","metadata":"web"}`), asSource),
			"event data is not a VerticalPodAutoscaler: json: cannot unmarshal string into Go struct field VerticalPodAutoscaler.metadata"},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			in, err := decoder().Decode(tt.event)
			var bad *eventing.InputError
			require.ErrorAs(t, err, &bad)
			assert.Equal(t, http.StatusBadRequest, bad.Status)
			assert.Contains(t, bad.Message, tt.message)
			assert.Equal(t, eventing.Input{}, in)
		})
	}
}
