// Package samples reads the sample events in test/events: each file is an HTTP request as
// ApiServerSource posts it (request line, headers, blank line, body; no Content-Length, the
// body is the rest of the file), with {{now}}, {{now-40s}}, {{now+260s}} tokens that stand for
// times relative to the moment it is read. test/events/invoke.sh posts the same files with
// curl and reads them the same way.
package samples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"time"
)

// Request is a sample as it is posted: its headers and body.
type Request struct {
	Header http.Header
	Body   []byte
}

// clientHeaders are set by whichever client posts a sample; a sample's own are left out, as
// invoke.sh leaves them out (Host is no header once parsed).
var clientHeaders = []string{"Accept-Encoding", "User-Agent", "Content-Length"}

var nowToken = regexp.MustCompile(`\{\{now(?:([+-][0-9]+)s)?\}\}`)

// Dir returns the absolute path of test/events, wherever the test runs from.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "events")
}

// Path returns the absolute path of the sample file name in test/events.
func Path(name string) string {
	return filepath.Join(Dir(), name)
}

// Read reads the sample file at path (see Path), its tokens set relative to now.
func Read(path string) (Request, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Request{}, fmt.Errorf("reading sample %s: %w", path, err)
	}
	req, err := Parse(raw, time.Now())
	if err != nil {
		return Request{}, fmt.Errorf("sample %s: %w", path, err)
	}
	return req, nil
}

// Parse returns the request in raw, the contents of a sample file, with its tokens replaced
// by RFC 3339 times relative to now (see Substitute) and without the headers a client sets
// itself (Accept-Encoding, User-Agent, Content-Length).
func Parse(raw []byte, now time.Time) (Request, error) {
	raw = Substitute(raw, now)
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return Request{}, fmt.Errorf("parsing the request: %w", err)
	}
	_, body, found := bytes.Cut(raw, []byte("\n\n"))
	if !found {
		if _, body, found = bytes.Cut(raw, []byte("\r\n\r\n")); !found {
			return Request{}, errors.New("no blank line after the headers")
		}
	}
	h := req.Header.Clone()
	for _, k := range clientHeaders {
		h.Del(k)
	}
	return Request{Header: h, Body: bytes.TrimRight(body, "\r\n")}, nil
}

// Substitute returns raw with each {{now}}, {{now-Ns}} and {{now+Ns}} replaced by the RFC 3339
// time (UTC, whole seconds) now, N seconds before or N seconds after it.
func Substitute(raw []byte, now time.Time) []byte {
	return nowToken.ReplaceAllFunc(raw, func(tok []byte) []byte {
		offset := 0
		if m := nowToken.FindSubmatch(tok); len(m[1]) > 0 {
			offset, _ = strconv.Atoi(string(m[1]))
		}
		return []byte(now.Add(time.Duration(offset) * time.Second).UTC().Format(time.RFC3339))
	})
}
