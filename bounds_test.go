package function_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"function"
	"function/eventing"
	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
	"function/telemetry"
)

// maxLogLine is the longest log line an event may make, whatever it carries.
const maxLogLine = 64 << 10

// The largest events accepted, their data exactly eventing.MaxDataBytes (3 MiB, the API
// server's request limit: the HTTP receiver takes a body up to eventing.MaxBodyBytes, 3 MiB of
// data plus 64 KiB of envelope) and almost all of it one value with a control character in
// it: a per-pod override annotation (the pod in the cluster holds it too, so the decision
// made on the live pod warns of it as well), or a structured-mode attribute. Every log line
// (at debug level, in the function's own format) stays under 64 KiB, and so do the reply (its
// headers and body) and the Kubernetes Events' messages; each quotes at most drain.MaxQuoted
// bytes of the value, with its length.
func TestHugeEventValuesAreCut(t *testing.T) {
	// draining is a managed pod evicted 5 s ago, its drain not stamped yet: the event starts
	// its drain (a patch, a DrainStarted Event and a drain.started reply).
	draining := func(kv ...string) *corev1.Pod {
		p := hostilePod(evictedAgo(5e9))
		delete(p.Annotations, names.AnnotationDrainStarted)
		withAnnotations(kv...)(p)
		return p
	}
	// hugeIn is p with annotation key set to prefix, a control character and padding, its
	// JSON exactly MaxDataBytes; huge the draining pod so.
	hugeIn := func(p *corev1.Pod, key, prefix string) *corev1.Pod {
		withAnnotations(key, prefix+"\x01")(p)
		p.Annotations[key] += strings.Repeat("x", eventing.MaxDataBytes-len(podJSON(t, p)))
		require.Len(t, podJSON(t, p), eventing.MaxDataBytes)
		return p
	}
	huge := func(key, prefix string) *corev1.Pod { return hugeIn(draining(), key, prefix) }
	big := strings.Repeat("y", 3<<20) + "\x01"
	small := podJSON(t, draining())
	structured := func(kv ...string) []byte {
		b := envelope(t, small, kv...)
		require.LessOrEqual(t, len(b), eventing.MaxBodyBytes, "a body the receiver takes")
		return b
	}

	tests := []struct {
		name   string
		pod    *corev1.Pod // in the event (binary mode) and in the cluster
		header http.Header // structured mode: with body
		body   []byte
		status int
		// ceType is the reply's type (200); message a part of the error answer (400).
		ceType, message string
		// warns: the value is an ignored override: a warning log line and the Event say so.
		warns string
	}{
		{name: "grace period override", pod: huge(names.AnnotationGracePeriod, "30"),
			status: 200, ceType: names.ReplyDrainStarted, warns: names.AnnotationGracePeriod},
		{name: "drain timeout override", pod: huge(names.AnnotationDrainTimeout, "60"),
			status: 200, ceType: names.ReplyDrainStarted, warns: names.AnnotationDrainTimeout},
		{name: "drain timeout override, valid after its spaces", pod: func() *corev1.Pod {
			p := draining(names.AnnotationDrainTimeout, "")
			p.Annotations[names.AnnotationDrainTimeout] = strings.Repeat(" ", eventing.MaxDataBytes-len(podJSON(t, p))-len("999999")) + "999999"
			require.Len(t, podJSON(t, p), eventing.MaxDataBytes)
			return p
		}(), status: 200, ceType: names.ReplyDrainStarted, warns: names.AnnotationDrainTimeout},
		{name: "drain deadline", pod: huge(names.AnnotationDrainDeadline, "2030-01-01T00:00:00Z"),
			status: 200, ceType: names.ReplyDrainStarted, warns: names.AnnotationDrainDeadline},
		{name: "drain started stamp", pod: huge(names.AnnotationDrainStarted, "2026-01-01T00:00:00Z"),
			status: 200, ceType: names.ReplyDrainStarted, warns: names.AnnotationDrainStarted},
		{name: "wait-for-endpoints override", pod: huge(names.AnnotationWaitForEndpoints, "true"),
			status: 200, ceType: names.ReplyDrainStarted, warns: names.AnnotationWaitForEndpoints},
		{name: "vpa-managed opt-out, deleting: released", pod: huge(names.AnnotationManaged, "no way"),
			status: 200, ceType: names.ReplyFinalizerRemoved},
		{name: "vpa-managed opt-out, running: not managed (the reason quotes it)", pod: hugeIn(hostilePod(), names.AnnotationManaged, "no way"),
			status: 200},
		{name: "structured mode, a 3 MiB id", header: structuredHeader, body: structured("id", quoted(big)),
			status: 200, ceType: names.ReplyDrainStarted},
		{name: "structured mode, a 3 MiB subject that does not match", header: structuredHeader, body: structured("subject", quoted(big)),
			status: 400, message: "subject " + drain.Quote(big) + " does not match the data"},
		{name: "structured mode, a 3 MiB type", header: structuredHeader, body: structured("type", quoted(big)),
			status: 400, message: "unsupported event type " + drain.Quote(big)},
		{name: "structured mode, a 3 MiB extension that does not match", header: structuredHeader, body: structured("name", quoted(big)),
			status: 400, message: "extension name=" + drain.Quote(big) + " does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			stored := draining()
			if tt.pod != nil {
				stored = tt.pod
			}
			c := fake.NewClientset(stored.DeepCopyObject())
			f := started(t, c, nil, function.WithLogger(telemetry.NewLogger(&logs, slog.LevelDebug)))

			header, body := tt.header, tt.body
			if tt.pod != nil {
				header, body = binaryHeader(hostileUpdate), podJSON(t, tt.pod)
			}
			resp, reply := post(t, served(t, f)+"/", header, body)
			require.NoError(t, f.Stop(t.Context())) // every queued Event written

			assert.Equal(t, tt.status, resp.StatusCode, "answer: %.300s", reply)
			assert.Equal(t, tt.ceType, resp.Header.Get("Ce-Type"))
			assert.Contains(t, reply, tt.message)
			assert.Less(t, len(reply), maxLogLine, "the answer is bounded")
			for k, v := range resp.Header {
				assert.Less(t, len(strings.Join(v, ",")), maxLogLine, "answer header %s", k)
			}
			assert.NotContains(t, reply, strings.Repeat("x", drain.MaxQuoted+1), "no more of the value than Quote keeps")

			var messages []string
			for _, a := range c.Actions() {
				if a.GetVerb() == "create" && a.GetResource().Resource == "events" {
					messages = append(messages, a.(k8stesting.CreateAction).GetObject().(*corev1.Event).Message)
				}
			}
			for _, m := range messages {
				assert.Less(t, len(m), 4*drain.MaxQuoted+2<<10, "an Event's message: %.300s", m)
			}

			lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
			require.NotEmpty(t, lines)
			longest, warned := 0, 0
			for _, line := range lines {
				longest = max(longest, len(line))
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &m), "a JSON line: %.300s", line)
				if w, _ := m["warning"].(string); tt.warns != "" && strings.Contains(w, tt.warns) {
					warned++
					assert.Contains(t, w, "("+strconv.Itoa(len(tt.pod.Annotations[tt.warns]))+" bytes)", "the value's length said")
					assert.Contains(t, w, "…", "the value cut")
				}
			}
			assert.Less(t, longest, maxLogLine, "the longest of %d log lines", len(lines))
			if tt.warns != "" {
				assert.Positive(t, warned, "a warning names the ignored annotation")
				require.Len(t, messages, 1)
				assert.Contains(t, messages[0], tt.warns, "the DrainStarted Event says which override is ignored")
				assert.Contains(t, messages[0], "("+strconv.Itoa(len(tt.pod.Annotations[tt.warns]))+" bytes)")
			}
		})
	}
}
