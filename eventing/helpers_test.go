package eventing_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/require"
)

var nowToken = regexp.MustCompile(`\{\{now(?:([+-][0-9]+)s)?\}\}`)

// substituteNow replaces {{now}}, {{now-40s}}, {{now+260s}} with RFC 3339 times relative to
// at, as test/events/invoke.sh does.
func substituteNow(b []byte, at time.Time) []byte {
	return nowToken.ReplaceAllFunc(b, func(tok []byte) []byte {
		offset := 0
		if m := nowToken.FindSubmatch(tok); len(m[1]) > 0 {
			offset, _ = strconv.Atoi(string(m[1]))
		}
		return []byte(at.Add(time.Duration(offset) * time.Second).UTC().Format(time.RFC3339))
	})
}

// parseHTTP reads a raw HTTP request (request line, headers, blank line, body). The
// test/events samples carry no Content-Length: their body is the rest of the file.
func parseHTTP(t testing.TB, raw []byte) *http.Request {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	require.NoError(t, err)
	if req.ContentLength <= 0 {
		_, body, found := bytes.Cut(raw, []byte("\n\n"))
		require.True(t, found, "no blank line after the headers")
		body = bytes.TrimRight(body, "\r\n")
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	return req
}

// readEvent turns a raw HTTP request file into the CloudEvent the SDK would hand to Handle.
func readEvent(t testing.TB, path string) event.Event {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return toEvent(t, parseHTTP(t, substituteNow(raw, time.Now())))
}

func toEvent(t testing.TB, req *http.Request) event.Event {
	t.Helper()
	e, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(req))
	require.NoError(t, err)
	return *e
}
