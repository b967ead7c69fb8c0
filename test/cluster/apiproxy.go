package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// APIRequest is one request that went through an APIProxy.
type APIRequest struct {
	At     time.Time // when the answer came (after the delay)
	Method string
	Path   string // URL path, e.g. /api/v1/namespaces/NS/pods/NAME
	Status int    // the API server's status; 502 when it could not be reached or the client gave up
	Body   []byte // the request body of a PATCH
}

// APIProxy is a plain-HTTP reverse proxy in front of the API server. A client pointed at it
// (Kubeconfig, RESTConfig) needs no credentials: the proxy talks TLS to the API server with
// the admin's. It records every request with its answer's status, so a test can count the
// writes of function processes it cannot instrument, and it can hold every answer back
// (SetDelay) to play a slow API server.
type APIProxy struct {
	URL      string
	srv      *http.Server
	upstream http.RoundTripper
	delay    atomic.Int64 // nanoseconds added to every answer

	mu  sync.Mutex
	log []APIRequest
}

// StartAPIProxy listens on a free loopback port and forwards to the API server of cfg.
func StartAPIProxy(cfg *rest.Config) (*APIProxy, error) {
	target, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("api proxy target: %w", err)
	}
	target.Path = ""
	upstream, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("api proxy transport: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("api proxy listen: %w", err)
	}
	p := &APIProxy{URL: "http://" + l.Addr().String(), upstream: upstream}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: roundTripFunc(p.roundTrip),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
		FlushInterval: -1,
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := APIRequest{Method: r.Method, Path: r.URL.Path, Status: http.StatusBadGateway}
		if r.Method == http.MethodPatch {
			rec.Body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(rec.Body))
		}
		sw := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(sw, r)
		if sw.status != 0 {
			rec.Status = sw.status
		}
		rec.At = time.Now()
		p.mu.Lock()
		p.log = append(p.log, rec)
		p.mu.Unlock()
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// roundTrip forwards to the API server and holds the answer back by the delay (less if the
// client gives up first).
func (p *APIProxy) roundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.upstream.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if d := time.Duration(p.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			resp.Body.Close()
			return nil, r.Context().Err()
		}
	}
	return resp, nil
}

// SetDelay holds every later answer back by d (0: none).
func (p *APIProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Requests returns a copy of the requests recorded so far.
func (p *APIProxy) Requests() []APIRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]APIRequest(nil), p.log...)
}

// RESTConfig is a client config for the proxy: plain HTTP, no credentials.
func (p *APIProxy) RESTConfig() *rest.Config {
	return &rest.Config{Host: p.URL}
}

// Kubeconfig writes a kubeconfig for the proxy (plain HTTP, no credentials) into dir and
// returns its path, for child processes.
func (p *APIProxy) Kubeconfig(dir string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{Server: p.URL}
	cfg.AuthInfos["anonymous"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "anonymous"}
	cfg.CurrentContext = "proxy"
	path := filepath.Join(dir, "kubeconfig-api-proxy")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing the api proxy kubeconfig: %w", err)
	}
	return path, nil
}

// CloseIdleConnections closes the proxy's idle connections to the API server.
func (p *APIProxy) CloseIdleConnections() {
	if c, ok := p.upstream.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Close stops the proxy.
func (p *APIProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		err = p.srv.Close()
	}
	return err
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// KubeconfigVia writes a copy of the kubeconfig at base, with every cluster's server replaced
// by server (e.g. a TCPProxy's https://127.0.0.1:PORT: the API server's certificate is for
// 127.0.0.1, so it still verifies), into dir and returns its path.
func KubeconfigVia(base, server, dir string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(base)
	if err != nil {
		return "", fmt.Errorf("reading kubeconfig %s: %w", base, err)
	}
	for _, c := range cfg.Clusters {
		c.Server = server
	}
	path := filepath.Join(dir, "kubeconfig-via-"+strings.NewReplacer(":", "-", "/", "-").Replace(strings.TrimPrefix(server, "https://")))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return path, nil
}
