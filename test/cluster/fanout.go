package cluster

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// FanoutExchange is one event and every target's answer to it.
type FanoutExchange struct {
	At      time.Time
	Type    string // ce-type of the request
	Subject string // ce-subject of the request
	// Statuses and ReplyTypes are per target, in the order of the targets: the HTTP status
	// (502 when the target was unreachable) and the reply's ce-type ("" when none).
	Statuses   []int
	ReplyTypes []string
}

// Fanout delivers every event it receives to all its targets at once (several replicas of
// the function, each seeing every event), waits for all of them and answers with the first
// target's answer. It records every target's answer.
type Fanout struct {
	URL     string
	srv     *http.Server
	targets []string
	mu      sync.Mutex
	log     []FanoutExchange
}

// StartFanout listens on a free loopback port and forwards to every target.
func StartFanout(targets ...string) (*Fanout, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("fanout: no targets")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fanout listen: %w", err)
	}
	f := &Fanout{URL: "http://" + l.Addr().String() + "/", targets: targets}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = f.srv.Serve(l) }()
	return f, nil
}

// Close stops the fan-out.
func (f *Fanout) Close() error { return f.srv.Close() }

// Exchanges returns a copy of what was recorded so far.
func (f *Fanout) Exchanges() []FanoutExchange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FanoutExchange(nil), f.log...)
}

type fanoutAnswer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (f *Fanout) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	answers := make([]fanoutAnswer, len(f.targets))
	var wg sync.WaitGroup
	for i, target := range f.targets {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, target, bytes.NewReader(body))
			req.Header = r.Header.Clone()
			resp, err := forwardClient.Do(req)
			if err != nil {
				answers[i] = fanoutAnswer{status: http.StatusBadGateway, err: err}
				return
			}
			defer resp.Body.Close()
			reply, _ := io.ReadAll(resp.Body)
			answers[i] = fanoutAnswer{status: resp.StatusCode, header: resp.Header, body: reply}
		})
	}
	wg.Wait()
	x := FanoutExchange{At: time.Now(), Type: r.Header.Get("Ce-Type"), Subject: r.Header.Get("Ce-Subject")}
	for _, a := range answers {
		x.Statuses = append(x.Statuses, a.status)
		x.ReplyTypes = append(x.ReplyTypes, a.header.Get("Ce-Type"))
	}
	f.mu.Lock()
	f.log = append(f.log, x)
	f.mu.Unlock()
	first := answers[0]
	if first.err != nil {
		http.Error(w, first.err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range first.header {
		w.Header()[k] = v
	}
	w.WriteHeader(first.status)
	_, _ = w.Write(first.body)
}
