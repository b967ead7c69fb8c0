package eventing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// MaxBodyBytes is the largest request body read: the data limit plus room for a
// structured-mode envelope. A longer body is answered 413 without being read further.
const MaxBodyBytes = MaxDataBytes + 64<<10

// Content types of the CloudEvents HTTP binding's structured and batched modes.
const (
	contentTypeStructured = "application/cloudevents+json"
	contentTypeBatch      = "application/cloudevents-batch+json"
)

// ReadRequest reads one CloudEvent from an HTTP request, in binary mode (Ce-* headers, the
// data as the body) or structured mode (Content-Type: application/cloudevents+json). It reads
// at most MaxBodyBytes+1 bytes of the body, all within the caller's handler call: nothing is
// shared between requests. Every rejection is an *InputError:
//   - 405 for a method other than POST,
//   - 413 for a body over MaxBodyBytes,
//   - 415 for a batch (application/cloudevents-batch+json) or a request that is not a
//     CloudEvent at all,
//   - 400 for a malformed or invalid CloudEvent.
func ReadRequest(ctx context.Context, r *http.Request) (*event.Event, error) {
	if r.Method != http.MethodPost {
		return nil, reject(http.StatusMethodNotAllowed, "method %s not allowed: CloudEvents are POSTed", r.Method)
	}
	mediaType := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mediaType, _, _ = mime.ParseMediaType(ct)
		mediaType = strings.ToLower(mediaType)
	}
	if mediaType == contentTypeBatch {
		return nil, reject(http.StatusUnsupportedMediaType,
			"batched CloudEvents (%s) are not supported: send one event per request, in binary or structured mode", contentTypeBatch)
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, reject(http.StatusRequestEntityTooLarge, "request body is %d bytes, the limit is %d", r.ContentLength, MaxBodyBytes)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, reject(http.StatusBadRequest, "reading the request body: %v", err)
	}
	if len(body) > MaxBodyBytes {
		return nil, reject(http.StatusRequestEntityTooLarge, "request body is over %d bytes, the limit", MaxBodyBytes)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	msg := cehttp.NewMessageFromHttpRequest(r)
	defer func() { _ = msg.Finish(nil) }()
	if msg.ReadEncoding() == binding.EncodingUnknown {
		return nil, reject(http.StatusUnsupportedMediaType,
			"not a CloudEvent: expected binary mode (Ce-Specversion, Ce-Id, Ce-Source and Ce-Type headers) or structured mode (Content-Type: %s)", contentTypeStructured)
	}
	e, err := binding.ToEvent(ctx, msg)
	if err != nil {
		return nil, reject(http.StatusBadRequest, "malformed CloudEvent: %s", oneLine(err))
	}
	if err := e.Validate(); err != nil {
		return nil, reject(http.StatusBadRequest, "invalid CloudEvent: %s", oneLine(err))
	}
	return e, nil
}

// oneLine joins an error's lines (the SDK lists one problem a line, in random order) into one
// line, sorted so the same problems always read the same.
func oneLine(err error) string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

// WriteReply answers 200 with the reply event in binary mode, or 200 with no body when reply
// is nil (nothing was done).
func WriteReply(ctx context.Context, w http.ResponseWriter, reply *event.Event) error {
	if reply == nil {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if err := cehttp.WriteResponseWriter(ctx, binding.ToMessage(reply), http.StatusOK, w); err != nil {
		return fmt.Errorf("writing the reply event %s: %w", reply.Type(), err)
	}
	return nil
}

// WriteError answers status with a one-line plain-text message.
func WriteError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, message)
}

// Status is the HTTP status of an error: an *InputError's own, or 500 for anything else.
func Status(err error) int {
	var in *InputError
	if errors.As(err, &in) {
		return in.Status
	}
	return http.StatusInternalServerError
}
