package load

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
)

// ReadSample reads a test/events .http file (request line, headers, blank line, body) as the
// request to post. Headers the client sets itself are left out.
func ReadSample(path string) (Request, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Request{}, fmt.Errorf("reading sample %s: %w", path, err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return Request{}, fmt.Errorf("parsing sample %s: %w", path, err)
	}
	_, body, found := bytes.Cut(raw, []byte("\n\n"))
	if !found {
		return Request{}, fmt.Errorf("sample %s has no body", path)
	}
	h := req.Header.Clone()
	for _, k := range []string{"Accept-Encoding", "User-Agent", "Content-Length"} {
		h.Del(k)
	}
	return Request{Header: h, Body: bytes.TrimRight(body, "\r\n")}, nil
}
