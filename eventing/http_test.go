package eventing_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/eventing"
	"function/handlers"
	"function/handlers/drain"
	"function/names"
	"function/test/samples"
)

// WriteReply answers exactly as the SDK's binary writer would: the same status, headers and
// body, for every reply Reply makes (with trace context) and for events with every optional
// attribute and other kinds of extension values.
func TestWriteReplyAsTheSDK(t *testing.T) {
	var events []*event.Event
	for _, d := range []drain.Decision{
		{Action: drain.AddFinalizer, FinalizerIndex: -1},
		{Action: drain.StartDrain, Started: replyAt, Deadline: replyAt.Add(time.Minute), Evicted: true, Gates: []drain.Gate{{Name: names.GateContainers}}},
		{Action: drain.RemoveFinalizer, Reason: names.ReasonDrained, Started: replyAt.Add(-time.Minute)},
	} {
		for _, dryRun := range []bool{false, true} {
			e, err := eventing.Reply(handlers.Outcome{Pod: replyPod(), Decision: d, Applied: true, DryRun: dryRun, At: replyAt})
			require.NoError(t, err)
			e.SetExtension("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			e.SetExtension("tracestate", "vendor=1")
			events = append(events, e)
		}
	}
	full := event.New()
	full.SetID("id-1")
	full.SetSource("https://example.com/source?x=1")
	full.SetType("t")
	full.SetSubject("s")
	full.SetTime(time.Date(2026, 11, 26, 5, 0, 0, 123456789, time.FixedZone("x", 3600)))
	full.SetDataSchema("https://example.com/schema")
	full.SetExtension("count", int32(7))
	full.SetExtension("flag", true)
	full.SetExtension("when", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	full.SetExtension("where", types.URI{URL: url.URL{Scheme: "https", Host: "example.com"}})
	full.SetExtension("blob", []byte{1, 2, 3})
	require.NoError(t, full.SetData("text/plain", []byte("hello")))
	bare := event.New()
	bare.SetID("id-2")
	bare.SetSource("s")
	bare.SetType("t")
	events = append(events, &full, &bare)

	for _, e := range events {
		t.Run(e.Type()+"/"+e.ID(), func(t *testing.T) {
			want := httptest.NewRecorder()
			require.NoError(t, cehttp.WriteResponseWriter(context.Background(), binding.ToMessage(e), http.StatusOK, want))
			got := httptest.NewRecorder()
			require.NoError(t, eventing.WriteReply(context.Background(), got, e))
			assert.Equal(t, want.Code, got.Code)
			assert.Equal(t, want.Header(), got.Header())
			assert.Equal(t, want.Body.Bytes(), got.Body.Bytes())

			// And the receiver reads back the same event.
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(got.Body.Bytes()))
			req.Header = got.Header()
			back, err := eventing.ReadRequest(context.Background(), req)
			require.NoError(t, err)
			assert.Equal(t, e.ID(), back.ID())
			assert.Equal(t, e.Data(), back.Data())
		})
	}
}

// ReadRequest reads every sample into the event the SDK makes of it, in binary and in
// structured mode, whether the body's length is announced or not.
func TestReadRequestAsTheSDK(t *testing.T) {
	for _, name := range []string{"managed-pod-added.http", "unmanaged-pod.http", "evicted-pod.http", "drained-pod.http", "reference-mode-added.http"} {
		s, err := samples.Read(samples.Path(name))
		require.NoError(t, err)
		structured := func() (http.Header, []byte) {
			e := sampleToEvent(t, s.Header, s.Body)
			body, err := e.MarshalJSON()
			require.NoError(t, err)
			return http.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}, body
		}
		for mode, make := range map[string]func() (http.Header, []byte){
			"binary":     func() (http.Header, []byte) { return s.Header.Clone(), s.Body },
			"structured": structured,
		} {
			for _, announced := range []bool{true, false} {
				header, body := make()
				want := sampleToEvent(t, header, body)
				req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				req.Header = header
				if !announced {
					req.ContentLength = -1
					req.Body = io.NopCloser(strings.NewReader(string(body)))
				}
				got, err := eventing.ReadRequest(context.Background(), req)
				require.NoError(t, err, "%s %s", name, mode)
				assert.Equal(t, want.String(), got.String(), "%s %s", name, mode)
				assert.Equal(t, want.Data(), got.Data(), "%s %s", name, mode)
				assert.Equal(t, want.Extensions(), got.Extensions(), "%s %s", name, mode)
			}
		}
	}
}

func sampleToEvent(t *testing.T, header http.Header, body []byte) event.Event {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header = header.Clone()
	return toEvent(t, req)
}

// In binary mode ReadRequest accepts exactly what the SDK's binding accepts (and Validate
// then passes), and reads the same event from it.
func FuzzReadBinaryAsTheSDK(f *testing.F) {
	const headers = "Ce-Specversion: 1.0\nCe-Id: 1\nCe-Source: https://127.0.0.1:26443\nCe-Type: dev.knative.apiserver.resource.add\n" +
		"Ce-Subject: /apis/v1/namespaces/default/pods/web-1\nCe-Time: 2026-11-26T05:00:46.943122396Z\nCe-Name: web-1\nCe-Namespace: default\n" +
		"Ce-Kind: Pod\nContent-Type: application/json"
	f.Add(headers, []byte(`{"kind":"Pod"}`))
	f.Add(headers+"\nCe-Dataschema: https://example.com/s\nCe-Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", []byte(nil))
	f.Add(headers+"\nCe-Time: yesterday", []byte("x"))
	f.Add(headers+"\nCe-Datacontenttype: text/plain", []byte("x"))
	f.Add(headers+"\nCe-Bad_name: 1", []byte("x"))
	f.Add(headers+"\nCe-Averyveryverylongextensionname: 1", []byte("x"))
	f.Add(strings.Replace(headers, "Ce-Id: 1", "Ce-Id:  ", 1), []byte("x"))
	f.Add(strings.Replace(headers, "Ce-Source: https://127.0.0.1:26443", "Ce-Source: ::bad", 1), []byte("x"))
	f.Add(strings.Replace(headers, "Ce-Specversion: 1.0", "Ce-Specversion: 0.3", 1), []byte("x"))
	f.Add(headers+"\nCe-Subject:  padded  \nContent-Type:  text/plain ", []byte("x"))
	f.Fuzz(func(t *testing.T, headers string, body []byte) {
		header := http.Header{}
		for _, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) != "" {
				header.Add(strings.TrimSpace(k), strings.TrimLeft(v, " "))
			}
		}
		if strings.Contains(strings.ToLower(header.Get("Content-Type")), "cloudevents") || header.Get("Ce-Specversion") == "" {
			return // not binary mode
		}
		if _, bare := header["Ce-"]; bare {
			return // the SDK panics on a bare "Ce-" header; ReadRequest leaves it to the SDK
		}
		sdkReq := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		sdkReq.Header = header.Clone()
		want, wantErr := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(sdkReq))
		if wantErr == nil {
			wantErr = want.Validate()
		}
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header = header.Clone()
		got, err := eventing.ReadRequest(context.Background(), req)
		if wantErr != nil {
			require.Error(t, err, "the SDK refuses it: %v", wantErr)
			return
		}
		require.NoError(t, err)
		assert.Equal(t, want.String(), got.String())
		assert.Equal(t, want.Context, got.Context)
		assert.Equal(t, want.Data(), got.Data())
	})
}

// readingServer serves ReadRequest as the function does: an event is answered 200 with its
// data's length, a rejection with its status and message. It counts the requests it answered.
func readingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var answered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer answered.Add(1)
		e, err := eventing.ReadRequest(r.Context(), r)
		if err != nil {
			eventing.WriteError(w, eventing.Status(err), err.Error())
			return
		}
		_, _ = io.WriteString(w, strconv.Itoa(len(e.Data())))
	}))
	t.Cleanup(srv.Close)
	return srv, &answered
}

// A body over the limit is answered 413, and Go's http.Client reads that answer, although it
// sends the whole body without waiting for a 100 Continue (no Expect header): the server reads
// the rest of a body of up to a few MiB over the limit before it answers (see maxDiscardBytes),
// so the client is never reset before it reads the 413.
func TestReadRequestOverLimitAnswered413(t *testing.T) {
	header := func(h http.Header) {
		for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "s", "Ce-Type": "dev.knative.apiserver.resource.add", "Content-Type": "application/json"} {
			h.Set(k, v)
		}
	}
	tests := []struct {
		name    string
		size    int
		chunked bool
		message string
	}{
		{"one byte over", eventing.MaxBodyBytes + 1, false, "request body is 3211265 bytes, the limit is 3211264"},
		{"1 MiB over", eventing.MaxBodyBytes + 1<<20, false, "the limit is 3211264"},
		{"4 MiB over (the most read on)", eventing.MaxBodyBytes + eventing.MaxDiscardBytes, false, "the limit is 3211264"},
		{"one byte over, chunked", eventing.MaxBodyBytes + 1, true, "request body is over 3211264 bytes, the limit"},
		{"4 MiB over, chunked", eventing.MaxBodyBytes + eventing.MaxDiscardBytes, true, "request body is over 3211264 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, answered := readingServer(t)
			client := &http.Client{Transport: &http.Transport{}} // a connection of its own
			t.Cleanup(client.CloseIdleConnections)
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("x"), tt.size))
			if tt.chunked {
				body = io.MultiReader(body) // no length known: chunked
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL, body)
			require.NoError(t, err)
			header(req.Header)
			require.Empty(t, req.Header.Get("Expect"), "precondition: the client does not wait for 100 Continue")

			resp, err := client.Do(req)
			require.NoError(t, err, "the client reads the answer")
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			assert.Contains(t, string(got), tt.message)
			assert.Equal(t, int64(1), answered.Load())

			// The body was read to its end: the connection carries the next request.
			var reused bool
			trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
			req, err = http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost, srv.URL, strings.NewReader(`{"kind":"Pod"}`))
			require.NoError(t, err)
			header(req.Header)
			resp, err = client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err = io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "14", string(got))
			assert.True(t, reused, "the connection was kept")
		})
	}
}
