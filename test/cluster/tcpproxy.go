package cluster

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// TCPProxy forwards TCP connections from a loopback port to a target (e.g. the API server's
// host:port). It passes bytes through untouched, so TLS runs end to end and the target's
// serving certificate still verifies (it is issued for 127.0.0.1, whatever the port). Pause
// takes the target away: new connections are refused and open ones are closed, until Resume.
type TCPProxy struct {
	// Addr is the loopback host:port the proxy listens on.
	Addr   string
	target string

	mu     sync.Mutex
	l      net.Listener // nil while paused
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// StartTCPProxy listens on a free loopback port and forwards every connection to target.
func StartTCPProxy(target string) (*TCPProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcp proxy listen: %w", err)
	}
	p := &TCPProxy{Addr: l.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(l)
	return p, nil
}

func (p *TCPProxy) serve(l net.Listener) {
	p.l = l
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by Pause or Close
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

// Pause stops listening, so new connections are refused (ECONNREFUSED), and closes every open
// connection. It is a no-op when already paused.
func (p *TCPProxy) Pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pauseLocked()
}

func (p *TCPProxy) pauseLocked() error {
	if p.l == nil {
		return nil
	}
	err := p.l.Close()
	p.l = nil
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	return err
}

// Resume listens again on the same address. It is a no-op when not paused.
func (p *TCPProxy) Resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil || p.closed {
		return nil
	}
	l, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return fmt.Errorf("tcp proxy listening again on %s: %w", p.Addr, err)
	}
	p.serve(l)
	return nil
}

// Close stops the proxy, closes its connections and waits for its goroutines.
func (p *TCPProxy) Close() error {
	p.mu.Lock()
	err := p.pauseLocked()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track registers open connections; false (and both closed) when the proxy is paused.
func (p *TCPProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *TCPProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *TCPProxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	defer p.untrack(c, up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	// Either side ending (or Pause closing both) ends the connection.
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
}
