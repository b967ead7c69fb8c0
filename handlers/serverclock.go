package handlers

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"
	"knative.dev/pkg/network"
)

// ServerClock is the API server's clock as this replica sees it: its own clock plus an offset
// learned from the Date header of the API server's answers. Drains are timed from API-server
// times (eviction, deletion), so decisions compare them with the server's now, not with a
// replica clock that may be off by minutes.
//
// Each answer bounds the offset (server - local): the server wrote Date (cut to the second)
// after the request was sent and before the answer arrived, so the offset lies in
// [Date - received, Date + 1 s - sent]. The bounds of the answers within serverClockWindow are
// intersected (a new window, or an answer that contradicts them, after a clock step, starts
// over). While the bounds hold 0 the local clock is taken as right; otherwise the lower bound
// is used, so the server's now is never overestimated: a replica whose clock is off by
// minutes times a drain to within 1 s plus a round trip, and later rather than earlier.
type ServerClock struct {
	// Local is this replica's clock.
	Local clock.PassiveClock
	// Log, when set, gets a line whenever the offset in use changes by a second or more.
	Log *slog.Logger

	mu            sync.Mutex
	known         bool
	lo, hi        time.Duration // bounds on server - local
	since         time.Time     // local time the bounds started
	offset        time.Duration // in use
	loggedOffset  time.Duration
	loggedAtLeast bool
}

// serverClockWindow is how long answers' bounds are intersected before starting over (so a
// slow drift of the local clock is followed).
const serverClockWindow = 10 * time.Minute

// Observe records one answer: sent and received on the local clock, date its Date header.
func (c *ServerClock) Observe(sent, received, date time.Time) {
	lo, hi := date.Sub(received), date.Add(time.Second).Sub(sent)
	c.mu.Lock()
	if !c.known || received.Sub(c.since) > serverClockWindow || received.Before(c.since) || lo > c.hi || hi < c.lo {
		c.known, c.lo, c.hi, c.since = true, lo, hi, received
	} else {
		c.lo, c.hi = max(c.lo, lo), min(c.hi, hi)
	}
	if c.lo <= 0 && c.hi >= 0 {
		c.offset = 0
	} else {
		c.offset = c.lo
	}
	offset, log := c.offset, c.Log != nil && (!c.loggedAtLeast || (c.offset-c.loggedOffset).Abs() >= time.Second)
	if log {
		c.loggedOffset, c.loggedAtLeast = offset, true
	}
	c.mu.Unlock()
	if log {
		c.Log.Info("API server clock offset", slog.Float64("offsetSeconds", offset.Seconds()),
			slog.String("meaning", "API server time minus this replica's; drains are timed on the API server's"))
	}
}

// Offset is the offset in use (API server time minus local time; 0 until an answer came).
func (c *ServerClock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// Now is the API server's time as best known.
func (c *ServerClock) Now() time.Time {
	return c.Local.Now().Add(c.Offset())
}

// WrapTransport observes the Date header of every API answer (for rest.Config.Wrap).
func (c *ServerClock) WrapTransport(rt http.RoundTripper) http.RoundTripper {
	return network.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		sent := c.Local.Now()
		resp, err := rt.RoundTrip(req)
		if err == nil {
			if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
				c.Observe(sent, c.Local.Now(), date)
			}
		}
		return resp, err
	})
}
