package surge

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"function/handlers/drain"
)

// Slot is one surge rollout counted in the budget: the Deployment (namespace/name, its uid),
// when it was started and, once it completed or aborted, when it ended.
type Slot struct {
	Deployment string    `json:"deployment"`
	UID        types.UID `json:"uid,omitempty"`
	Started    time.Time `json:"started"`
	Ended      time.Time `json:"ended,omitzero"`
}

// Slots are the surge rollouts of the last minute and those in flight: the budget over every
// Deployment, kept by the function itself (a Lease of its own namespace, or memory), never
// counted from what Deployments' annotations say (which their owners can write).
type Slots []Slot

// MaxSlots bounds the slots kept: more than any budget allows (surgeMaxInFlight plus
// surgeMaxPerMinute, each at most 1,000).
const MaxSlots = 2000

// ParseSlots reads slots as the function wrote them ("" is none); more than MaxSlots is
// refused.
func ParseSlots(v string) (Slots, error) {
	if v == "" {
		return nil, nil
	}
	var s Slots
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return nil, fmt.Errorf("reading the surge-rollout slots (%d bytes): %w", len(v), err)
	}
	if len(s) > MaxSlots {
		return nil, fmt.Errorf("%d surge-rollout slots, more than %d", len(s), MaxSlots)
	}
	return s, nil
}

// String encodes the slots as ParseSlots reads them.
func (s Slots) String() string {
	b, _ := json.Marshal(s) // strings and times: it cannot fail
	return string(b)
}

// Prune drops what no longer counts at now: slots ended and started a minute ago or more, slots started
// longer than timeout ago (their rollout is aborted at its deadline, by whichever replica
// follows it), and slots started in the future beyond the clock skew (not the function's).
func (s Slots) Prune(now time.Time, timeout time.Duration) Slots {
	out := make(Slots, 0, len(s))
	for _, sl := range s {
		switch {
		case sl.Started.After(now.Add(drain.ClockSkew)):
		case !sl.Ended.IsZero() && now.Sub(sl.Started) >= time.Minute:
		case timeout > 0 && now.Sub(sl.Started) > timeout+time.Minute:
		default:
			out = append(out, sl)
		}
	}
	return out
}

// Budget counts the rollouts in flight and those started in the minute before now.
func (s Slots) Budget(now time.Time) Budget {
	var b Budget
	for _, sl := range s {
		if sl.Ended.IsZero() {
			b.InFlight++
		}
		if now.Sub(sl.Started) < time.Minute {
			b.LastMinute++
		}
	}
	return b
}

// Holds reports whether the Deployment key has a slot in flight.
func (s Slots) Holds(key string) bool {
	return slices.ContainsFunc(s, func(sl Slot) bool { return sl.Deployment == key && sl.Ended.IsZero() })
}

// ClaimGrace is how long a claim holds a Deployment's slot before its restart shows in the
// Deployment: a claim older than that on a Deployment not rolling (Claim is asked for a
// restart only) is an orphan, its restart never written (a timeout, a crash), and is replaced.
const ClaimGrace = 30 * time.Second

// Claim adds a slot for the Deployment key started at now, when the limits allow one more and
// key has none in flight claimed within ClaimGrace (another replica is starting it); not
// added: the slots as they were, and why.
func (s Slots) Claim(key string, uid types.UID, now time.Time, l Limits) (Slots, string) {
	for _, sl := range s {
		if sl.Deployment == key && sl.Ended.IsZero() && now.Sub(sl.Started) < ClaimGrace {
			return s, "another replica is starting or following its rollout"
		}
	}
	orig := s
	s = s.End(key, now, true) // an orphaned claim
	b := s.Budget(now)
	switch {
	case b.InFlight >= l.MaxInFlight:
		return orig, fmt.Sprintf("budget: %d rollouts in flight", b.InFlight)
	case b.LastMinute >= l.MaxPerMinute:
		return orig, fmt.Sprintf("budget: %d rollouts started in the last minute", b.LastMinute)
	}
	return append(slices.Clone(s), Slot{Deployment: key, UID: uid, Started: now.UTC()}), ""
}

// End marks key's slot in flight ended at now (it still counts for the minute it started
// in); drop removes it instead (a claim whose restart was never written).
func (s Slots) End(key string, now time.Time, drop bool) Slots {
	out := make(Slots, 0, len(s))
	for _, sl := range s {
		if sl.Deployment == key && sl.Ended.IsZero() {
			if drop {
				continue
			}
			sl.Ended = now.UTC()
		}
		out = append(out, sl)
	}
	return out
}

// InFlight lists the Deployments (namespace/name) with a slot in flight.
func (s Slots) InFlight() []string {
	var keys []string
	for _, sl := range s {
		if sl.Ended.IsZero() {
			keys = append(keys, sl.Deployment)
		}
	}
	return keys
}
