package cluster

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Requests records the API requests a client made ("PATCH pods", "GET pods", "POST events"),
// so a test can assert exactly which calls the function code made against the real server.
type Requests struct {
	mu   sync.Mutex
	list []string
	// paths are the same requests as "METHOD /path" (with the object's name).
	paths []string
}

// CountingClient returns a clientset on cfg whose requests are recorded in the result.
func CountingClient(cfg *rest.Config) (kubernetes.Interface, *Requests, error) {
	client, _, reqs, err := CountingClients(cfg)
	return client, reqs, err
}

// CountingClients are CountingClient and a dynamic client (the owner reads' and VPAs'),
// whose requests are counted together.
func CountingClients(cfg *rest.Config) (kubernetes.Interface, dynamic.Interface, *Requests, error) {
	reqs := &Requests{}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 200, 400
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			reqs.add(r.Method+" "+resourceOf(r.URL.Path), r.Method+" "+r.URL.Path)
			return rt.RoundTrip(r)
		})
	})
	client, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating counting client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating counting dynamic client: %w", err)
	}
	return client, dyn, reqs, nil
}

// List returns the requests so far and forgets them.
func (r *Requests) List() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.list
	r.list, r.paths = nil, nil
	return out
}

// Paths returns the requests so far as "METHOD /path" and forgets them.
func (r *Requests) Paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.paths
	r.list, r.paths = nil, nil
	return out
}

func (r *Requests) add(s, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, s)
	r.paths = append(r.paths, path)
}

// resourceOf turns /api/v1/namespaces/NS/pods/NAME/eviction into "pods/eviction".
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+2 < len(parts) {
			rest := parts[i+2:]
			if len(rest) >= 3 {
				return rest[0] + "/" + rest[2]
			}
			return rest[0]
		}
	}
	return path
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
