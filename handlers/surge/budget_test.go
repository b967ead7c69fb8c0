package surge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/handlers/surge"
)

func TestSlots(t *testing.T) {
	limits := surge.Limits{MaxInFlight: 2, MaxPerMinute: 3, Timeout: 15 * time.Minute}
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	tests := []struct {
		name   string
		slots  surge.Slots
		budget surge.Budget
		why    string // of a claim for ns/web; "" taken
	}{
		{name: "none", budget: surge.Budget{}},
		{name: "one in flight, started 10 minutes ago", slots: surge.Slots{{Deployment: "ns/a", Started: at(10 * time.Minute)}},
			budget: surge.Budget{InFlight: 1}},
		{name: "the in-flight budget is full", slots: surge.Slots{{Deployment: "ns/a", Started: at(10 * time.Minute)}, {Deployment: "ns/b", Started: at(5 * time.Minute)}},
			budget: surge.Budget{InFlight: 2}, why: "2 rollouts in flight"},
		{name: "the per-minute budget is full (ended ones count for their minute)", slots: surge.Slots{
			{Deployment: "ns/a", Started: at(10 * time.Second), Ended: at(5 * time.Second)},
			{Deployment: "ns/b", Started: at(20 * time.Second), Ended: at(5 * time.Second)},
			{Deployment: "ns/c", Started: at(30 * time.Second)}},
			budget: surge.Budget{InFlight: 1, LastMinute: 3}, why: "3 rollouts started in the last minute"},
		{name: "a slot past the deadline no longer counts", slots: surge.Slots{{Deployment: "ns/a", Started: at(17 * time.Minute)},
			{Deployment: "ns/b", Started: at(20 * time.Minute)}}},
		{name: "a slot from the future is not the function's", slots: surge.Slots{{Deployment: "ns/a", Started: now.Add(time.Hour)},
			{Deployment: "ns/b", Started: now.Add(time.Hour)}}},
		{name: "the Deployment holds a slot claimed just now (another replica)", slots: surge.Slots{{Deployment: "ns/web", Started: at(10 * time.Second)}},
			budget: surge.Budget{InFlight: 1, LastMinute: 1}, why: "another replica"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.slots.Prune(now, limits.Timeout)
			assert.Equal(t, tt.budget, s.Budget(now))
			claimed, why := s.Claim("ns/web", "uid-web", now, limits)
			if tt.why != "" {
				assert.Contains(t, why, tt.why)
				assert.Equal(t, s, claimed, "nothing added")
				return
			}
			require.Empty(t, why)
			assert.True(t, claimed.Holds("ns/web"))
			assert.Equal(t, tt.budget.InFlight+1, claimed.Budget(now).InFlight)
			ended := claimed.End("ns/web", now, false)
			assert.False(t, ended.Holds("ns/web"))
			assert.Equal(t, tt.budget.LastMinute+1, ended.Budget(now).LastMinute, "an ended slot counts for its minute")
			assert.Len(t, claimed.End("ns/web", now, true), len(s), "dropped: a claim never written")
			back, err := surge.ParseSlots(claimed.String())
			require.NoError(t, err)
			assert.Equal(t, claimed.Budget(now), back.Budget(now))
		})
	}
}

// A claim older than ClaimGrace on a Deployment that is due a restart (so not rolling) is an
// orphan, its restart never written: replaced, not counted twice.
func TestSlotsReplaceAnOrphanedClaim(t *testing.T) {
	limits := surge.Limits{MaxInFlight: 2, MaxPerMinute: 6, Timeout: 15 * time.Minute}
	s := surge.Slots{{Deployment: "ns/web", Started: now.Add(-surge.ClaimGrace - time.Second)}, {Deployment: "ns/a", Started: now.Add(-time.Minute)}}
	claimed, why := s.Claim("ns/web", "uid-web", now, limits)
	require.Empty(t, why)
	assert.Equal(t, surge.Budget{InFlight: 2, LastMinute: 1}, claimed.Budget(now), "the orphan replaced by the new claim")
	assert.Len(t, claimed.InFlight(), 2)
}

func TestParseSlotsIsBounded(t *testing.T) {
	_, err := surge.ParseSlots("[" + strings.Repeat(`{"deployment":"a/b","started":"2026-01-01T00:00:00Z"},`, surge.MaxSlots) + `{"deployment":"a/b","started":"2026-01-01T00:00:00Z"}]`)
	assert.ErrorContains(t, err, "more than")
	_, err = surge.ParseSlots("{")
	assert.Error(t, err)
	s, err := surge.ParseSlots("")
	require.NoError(t, err)
	assert.Empty(t, s)
}
