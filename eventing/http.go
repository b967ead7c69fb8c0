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
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"

	"function/names"
)

// MaxBodyBytes is the largest request body read: the data limit plus 64 KiB for a
// structured-mode envelope (its attributes; data_base64 holds 3/4 of its length in data, so a
// structured event with its data in base64 has less). A longer body is answered 413 (see
// maxDiscardBytes).
const MaxBodyBytes = MaxDataBytes + 64<<10

// maxDiscardBytes is how much of a body over MaxBodyBytes is read on, and thrown away (never
// kept: io.Discard's small pooled buffer), before the 413 is answered. A sender that does not
// wait for 100 Continue is still writing the body when the answer comes; were the connection
// closed with its bytes unread, the sender's kernel could be reset before its client read the
// 413. A body that ends within this many bytes over the limit is read to its end, so its 413
// is delivered (and the connection kept); a longer one (an announced length over the sum, or
// no end in sight) is answered at once and its connection closed: the cost of a request stays
// bounded at MaxBodyBytes + maxDiscardBytes read, MaxBodyBytes+1 kept. A sender that stalls
// holds its request as long as one that stalls within the limit could: until the server's read
// timeout.
const maxDiscardBytes = 4 << 20

// Content types of the CloudEvents HTTP binding's structured and batched modes.
const (
	contentTypeStructured = "application/cloudevents+json"
	contentTypeBatch      = "application/cloudevents-batch+json"
)

// ReadRequest reads one CloudEvent from an HTTP request, in binary mode (Ce-* headers, the
// data as the body) or structured mode (Content-Type: application/cloudevents+json). It keeps
// at most MaxBodyBytes+1 bytes of the body, all within the caller's handler call: nothing is
// shared between requests. Every rejection is an *InputError:
//   - 405 for a method other than POST,
//   - 413 for a body over MaxBodyBytes (read on and thrown away up to maxDiscardBytes more,
//     so that the sender reads the answer),
//   - 415 for a batch (application/cloudevents-batch+json) or a request that is not a
//     CloudEvent at all,
//   - 400 for a malformed or invalid CloudEvent.
func ReadRequest(ctx context.Context, r *http.Request) (*event.Event, error) {
	if r.Method != http.MethodPost {
		return nil, reject(http.StatusMethodNotAllowed, "method %s not allowed: CloudEvents are POSTed", r.Method)
	}
	mediaType := ""
	// Only a batch is rejected on its media type: one that cannot be a batch is not parsed.
	if ct := r.Header.Get("Content-Type"); ct != "" && strings.Contains(strings.ToLower(ct), "batch") {
		mediaType, _, _ = mime.ParseMediaType(ct)
		mediaType = strings.ToLower(mediaType)
	}
	if mediaType == contentTypeBatch {
		return nil, reject(http.StatusUnsupportedMediaType,
			"batched CloudEvents (%s) are not supported: send one event per request, in binary or structured mode", contentTypeBatch)
	}
	if r.ContentLength > MaxBodyBytes {
		if r.ContentLength <= MaxBodyBytes+maxDiscardBytes {
			discardBody(r, r.ContentLength)
		}
		return nil, reject(http.StatusRequestEntityTooLarge, "request body is %d bytes, the limit is %d", r.ContentLength, MaxBodyBytes)
	}
	body, err := readBody(r)
	if err != nil {
		return nil, reject(http.StatusBadRequest, "reading the request body: %v", err)
	}
	if len(body) > MaxBodyBytes {
		discardBody(r, maxDiscardBytes)
		return nil, reject(http.StatusRequestEntityTooLarge, "request body is over %d bytes, the limit", MaxBodyBytes)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	msg := cehttp.NewMessageFromHttpRequest(r)
	defer func() { _ = msg.Finish(nil) }()
	encoding := msg.ReadEncoding()
	if encoding == binding.EncodingUnknown {
		return nil, reject(http.StatusUnsupportedMediaType,
			"not a CloudEvent: expected binary mode (Ce-Specversion, Ce-Id, Ce-Source and Ce-Type headers) or structured mode (Content-Type: %s)", contentTypeStructured)
	}
	var e *event.Event
	if encoding == binding.EncodingBinary {
		// In binary mode the body is the data as is: the event takes body rather than
		// the SDK's copy of it.
		msg.BodyReader = nil
		e = readBinaryV1(r.Header)
	}
	if e == nil {
		if e, err = binding.ToEvent(ctx, msg); err != nil {
			return nil, reject(http.StatusBadRequest, "malformed CloudEvent: %s", oneLine(err))
		}
	}
	if encoding == binding.EncodingBinary && len(body) > 0 {
		e.DataEncoded = body
	}
	if err := e.Validate(); err != nil {
		return nil, reject(http.StatusBadRequest, "invalid CloudEvent: %s", oneLine(err))
	}
	return e, nil
}

// readBinaryV1 reads the attributes and extensions of a binary-mode CloudEvents 1.0 request
// as the SDK's binding (binding.ToEvent) does, with the same setters, but without its generic
// attribute machinery. It returns nil for a request it does not read the very same way (any
// error, another version, a repeated extension): the SDK reads that one, and says why.
func readBinaryV1(h http.Header) *event.Event {
	if h.Get("Ce-Specversion") != event.CloudEventsVersionV1 {
		return nil
	}
	ec := &event.EventContextV1{}
	for k, values := range h {
		if len(values) == 0 {
			return nil
		}
		v := values[0] // as the SDK: the first value
		var err error
		switch k {
		case "Ce-Specversion":
		case "Ce-Id":
			err = ec.SetID(v)
		case "Ce-Source":
			err = ec.SetSource(v)
		case "Ce-Type":
			err = ec.SetType(v)
		case "Ce-Subject":
			err = ec.SetSubject(v)
		case "Ce-Dataschema":
			err = ec.SetDataSchema(v)
		case "Content-Type":
			err = ec.SetDataContentType(v)
		case "Ce-Time":
			var t time.Time
			if t, err = types.ToTime(v); err == nil {
				err = ec.SetTime(t)
			}
		default:
			if !strings.HasPrefix(k, cehttpPrefix) {
				continue // not a CloudEvents header
			}
			if len(k) == len(cehttpPrefix) {
				return nil // a bare "Ce-" header: left to the SDK
			}
			name := string(unicode.ToLower(rune(k[len(cehttpPrefix)]))) + k[len(cehttpPrefix)+1:]
			if _, repeated := ec.Extensions[strings.ToLower(name)]; repeated {
				return nil
			}
			err = ec.SetExtension(name, v)
		}
		if err != nil {
			return nil
		}
	}
	return &event.Event{Context: ec}
}

// cehttpPrefix starts the header of every binary-mode attribute but the content type.
const cehttpPrefix = "Ce-"

// bodyReadAhead bounds how far the body buffer is sized from the announced Content-Length
// ahead of the bytes actually received.
const bodyReadAhead = 64 << 10

// readBody reads at most MaxBodyBytes+1 bytes of the body, as io.ReadAll would, into a
// buffer sized from the announced length: one allocation for the usual event.
func readBody(r *http.Request) ([]byte, error) {
	size := int64(512)
	if r.ContentLength >= 0 {
		size = min(r.ContentLength, bodyReadAhead) + 1 // +1: room for the read that sees EOF
	}
	body := make([]byte, 0, size)
	lr := io.LimitReader(r.Body, MaxBodyBytes+1)
	for {
		n, err := lr.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		switch {
		case err == io.EOF:
			return body, nil
		case err != nil:
			return body, err
		case len(body) == cap(body):
			body = append(body, 0)[:len(body)] // grow
		}
	}
}

// discardBody reads at most n more bytes of a body over the limit and throws them away (see
// maxDiscardBytes), unless the sender waits for 100 Continue: it has not sent the body, and
// reading it would ask for it. A read error ends it: the 413 is answered all the same.
func discardBody(r *http.Request, n int64) {
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	_, _ = io.CopyN(io.Discard, r.Body, n)
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
	var err error
	if ec, ok := reply.Context.(*event.EventContextV1); ok {
		err = writeBinaryV1(w, ec, reply.DataEncoded)
	} else {
		err = cehttp.WriteResponseWriter(ctx, binding.ToMessage(reply), http.StatusOK, w)
	}
	if err != nil {
		return fmt.Errorf("writing the reply event %s: %w", reply.Type(), err)
	}
	return nil
}

// writeBinaryV1 answers 200 with a CloudEvents 1.0 event in binary mode, with the very
// headers the SDK's binary writer (cehttp.WriteResponseWriter) sets, without its copies of the
// context: a Ce-* header per attribute and per extension, the data content type as
// Content-Type, and the data as the body with its Content-Length.
func writeBinaryV1(w http.ResponseWriter, ec *event.EventContextV1, data []byte) error {
	h := w.Header()
	values := make([]string, 0, 10+len(ec.Extensions)) // one array for every header's value
	set := func(key, value string) {
		values = append(values, value)
		h[key] = values[len(values)-1 : len(values) : len(values)]
	}
	attr := func(key, value string) {
		if value != "" { // the SDK writes no header for a blank attribute
			if old := h[key]; len(old) > 0 {
				h[key] = append(old, value)
				return
			}
			set(key, value)
		}
	}
	attr("Ce-Id", ec.ID)
	attr("Ce-Source", ec.Source.String())
	attr("Ce-Specversion", event.CloudEventsVersionV1)
	attr("Ce-Type", ec.Type)
	if ec.DataContentType != nil {
		attr("Content-Type", *ec.DataContentType)
	}
	if ec.DataSchema != nil {
		attr("Ce-Dataschema", ec.DataSchema.String())
	}
	if ec.Subject != nil {
		attr("Ce-Subject", *ec.Subject)
	}
	if ec.Time != nil && !ec.Time.IsZero() {
		attr("Ce-Time", types.FormatTime(ec.Time.Time))
	}
	for name, v := range ec.Extensions {
		s, err := types.Format(v)
		if err != nil {
			return err
		}
		set(extensionHeader(name), s)
	}
	if len(data) == 0 {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	attr("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(data)
	return err
}

// extensionHeader is the header of an extension: Ce- and its name with the first letter in
// upper case, as the SDK names it.
func extensionHeader(name string) string {
	switch name {
	case "traceparent":
		return "Ce-Traceparent"
	case "tracestate":
		return "Ce-Tracestate"
	case names.ExtensionDryRun:
		return "Ce-Dryrun"
	case "reason":
		return "Ce-Reason"
	}
	if name == "" {
		return "Ce-"
	}
	return "Ce-" + string(unicode.ToUpper(rune(name[0]))) + name[1:]
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
