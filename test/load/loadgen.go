// Package load drives the served function with concurrent CloudEvent posts over loopback and
// measures every answer: the receive-path tests here, and benchmarks, use it.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one event as it is posted: headers and body.
type Request struct {
	Header http.Header
	Body   []byte
}

// Options shape a run.
type Options struct {
	URL         string
	Request     Request
	Concurrency int
	// Total is the number of requests to send; Duration, when set, ends the run earlier.
	Total    int
	Duration time.Duration
	// CancelShare is the share of requests (0..1) cancelled at a random moment within
	// CancelWithin of being sent: before, while or after the body is written.
	CancelShare  float64
	CancelWithin time.Duration
	// Timeout bounds each request that is not cancelled on purpose (a hung answer).
	Timeout time.Duration
}

// Result is what a run saw.
type Result struct {
	Sent      int
	Answered  int            // requests that got an HTTP answer
	Statuses  map[int]int    // answers by status
	Cancelled int            // requests cancelled on purpose before their answer came
	Failures  map[string]int // requests that were not cancelled on purpose and got no answer, by error
	Elapsed   time.Duration
	// Latencies of the answered requests that were not cancelled on purpose, sorted.
	Latencies []time.Duration
}

// Quantile is the q-quantile (0..1) of the answered requests' latencies.
func (r Result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(int(q*float64(len(r.Latencies))), len(r.Latencies)-1)]
}

// Max is the slowest answer.
func (r Result) Max() time.Duration { return r.Quantile(1) }

// PerSecond is the throughput in answered requests per second.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Answered) / r.Elapsed.Seconds()
}

// String returns the run's counts, rate and latency quantiles on one line.
func (r Result) String() string {
	return fmt.Sprintf("sent %d, answered %d (%v), cancelled %d, unanswered %v in %s: %.0f events/s, p50 %s, p99 %s, max %s",
		r.Sent, r.Answered, r.Statuses, r.Cancelled, r.Failures, r.Elapsed.Round(time.Millisecond), r.PerSecond(),
		r.Quantile(0.50).Round(10*time.Microsecond), r.Quantile(0.99).Round(10*time.Microsecond), r.Max().Round(10*time.Microsecond))
}

// NewClient is a keep-alive client with a connection per worker, as a Broker's dispatcher
// would hold them.
func NewClient(concurrency int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// Run sends o.Total requests from o.Concurrency workers and records every outcome.
func Run(ctx context.Context, client *http.Client, o Options) (Result, error) {
	if o.Concurrency < 1 || o.Total < 1 || o.Timeout <= 0 {
		return Result{}, errors.New("load: Concurrency, Total and Timeout must be positive")
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var (
		next    atomic.Int64
		mu      sync.Mutex
		res     = Result{Statuses: map[int]int{}, Failures: map[string]int{}}
		wg      sync.WaitGroup
		started = time.Now()
	)
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && next.Add(1) <= int64(o.Total) {
				cancelled := o.CancelShare > 0 && rand.Float64() < o.CancelShare
				status, latency, err := send(ctx, client, o, cancelled)
				mu.Lock()
				res.Sent++
				switch {
				case err == nil:
					res.Answered++
					res.Statuses[status]++
					if !cancelled {
						res.Latencies = append(res.Latencies, latency)
					}
				case cancelled && errors.Is(err, context.Canceled):
					res.Cancelled++
				case ctx.Err() != nil:
					res.Sent-- // the run ended under it: not a failure of the server
				default:
					res.Failures[errorKind(err)]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(started)
	slices.Sort(res.Latencies)
	return res, nil
}

// send posts one request; a request meant to be cancelled is cancelled at a random moment.
func send(ctx context.Context, client *http.Client, o Options, cancelEarly bool) (int, time.Duration, error) {
	ctx, cancelTimeout := context.WithTimeout(ctx, o.Timeout)
	defer cancelTimeout()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cancelEarly {
		t := time.AfterFunc(time.Duration(rand.Int64N(int64(max(o.CancelWithin, time.Microsecond)))), cancel)
		defer t.Stop()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(o.Request.Body))
	if err != nil {
		return 0, 0, err
	}
	for k, v := range o.Request.Header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, 0, err
	}
	return resp.StatusCode, time.Since(start), nil
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within the timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	default:
		return err.Error()
	}
}
