package eventing_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/require"

	"function/test/samples"
)

// readEvent turns a raw HTTP request file (a test/events sample or a captured request) into
// the CloudEvent the SDK would hand to Handle.
func readEvent(t testing.TB, path string) event.Event {
	t.Helper()
	sample, err := samples.Read(path)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(sample.Body))
	require.NoError(t, err)
	req.Header = sample.Header
	return toEvent(t, req)
}

func toEvent(t testing.TB, req *http.Request) event.Event {
	t.Helper()
	e, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(req))
	require.NoError(t, err)
	return *e
}
