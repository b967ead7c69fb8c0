package cluster

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Exchange is one event the adapter sent and the function's answer.
type Exchange struct {
	At          time.Time
	Type        string      // ce-type of the request
	Subject     string      // ce-subject of the request
	Header      http.Header // the request's, and its body
	Body        []byte
	Status      int    // the function's HTTP status (502 when it was unreachable)
	ReplyType   string // ce-type of the reply, "" when none
	ReplyDryRun string
	ReplyBody   []byte
}

// Proxy sits between the adapter and the function: it forwards each event and records the
// function's reply, which the adapter itself throws away. The target can be switched, so a
// restarted function can take over.
type Proxy struct {
	URL    string
	srv    *http.Server
	target atomic.Value // string
	mu     sync.Mutex
	log    []Exchange
}

// StartProxy listens on a free loopback port and forwards to target.
func StartProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{URL: "http://" + l.Addr().String() + "/"}
	p.target.Store(target)
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// SetTarget sends later events to target.
func (p *Proxy) SetTarget(target string) { p.target.Store(target) }

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

// Exchanges returns a copy of what was recorded so far.
func (p *Proxy) Exchanges() []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exchange(nil), p.log...)
}

// Replies returns the recorded exchanges that carried a reply of type t for subject.
func (p *Proxy) Replies(t, subject string) []Exchange {
	var out []Exchange
	for _, x := range p.Exchanges() {
		if x.ReplyType == t && (subject == "" || x.Subject == subject) {
			out = append(out, x)
		}
	}
	return out
}

var forwardClient = &http.Client{Timeout: 30 * time.Second}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	x := Exchange{At: time.Now(), Type: r.Header.Get("Ce-Type"), Subject: r.Header.Get("Ce-Subject"), Header: r.Header.Clone(), Body: body}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, p.target.Load().(string), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := forwardClient.Do(req)
	if err != nil {
		x.Status = http.StatusBadGateway
		p.record(x)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	x.Status, x.ReplyType, x.ReplyDryRun, x.ReplyBody = resp.StatusCode, resp.Header.Get("Ce-Type"), resp.Header.Get("Ce-Dryrun"), reply
	p.record(x)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(reply)
}

func (p *Proxy) record(x Exchange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, x)
}
