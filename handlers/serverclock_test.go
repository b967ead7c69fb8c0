package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"

	"function/handlers"
)

// The API server's time is learned from its answers' Date header (whole seconds): whatever the
// replica's clock, the server time it uses is within 1 s of the truth and never ahead of it by
// more than the rounding, so a drain timed from API-server times is neither shortened nor
// lengthened by more than 1 s.
func TestServerClockLearnsTheOffset(t *testing.T) {
	tests := []struct {
		name   string
		offset time.Duration // the API server's clock minus the replica's
	}{
		{"replica 5 minutes behind", 5 * time.Minute},
		{"replica 5 minutes ahead", -5 * time.Minute},
		{"in step", 0},
		{"replica 0.3 s behind", 300 * time.Millisecond},
		{"replica 2.7 s ahead", -2700 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := clocktesting.NewFakeClock(now)
			c := &handlers.ServerClock{Local: local}
			assert.Equal(t, time.Duration(0), c.Offset(), "nothing known yet")
			rtt := 20 * time.Millisecond
			for i := range 20 { // answers at varying fractions of a second
				sent := local.Now()
				local.Step(rtt / 2)
				date := local.Now().Add(tt.offset).Truncate(time.Second) // written mid-way
				local.Step(rtt / 2)
				c.Observe(sent, local.Now(), date)
				local.Step(time.Duration(i*137) * time.Millisecond)
			}
			truth := local.Now().Add(tt.offset)
			got := c.Now()
			assert.LessOrEqual(t, (truth.Sub(got)).Abs(), time.Second, "within 1 s of the API server's time: offset %s", c.Offset())
			assert.False(t, got.After(truth.Add(time.Second)), "never ahead by more than the rounding")
		})
	}
}

// The transport reads the Date header of every answer.
func TestServerClockWrapTransport(t *testing.T) {
	ahead := 10 * time.Minute
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Date", time.Now().Add(ahead).UTC().Format(http.TimeFormat))
	}))
	t.Cleanup(srv.Close)
	c := &handlers.ServerClock{Local: clocktesting.NewFakeClock(time.Now())}
	client := &http.Client{Transport: c.WrapTransport(http.DefaultTransport)}
	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.InDelta(t, ahead.Seconds(), c.Offset().Seconds(), 2, "the fake local clock stands still: within the second and the round trip")
}
