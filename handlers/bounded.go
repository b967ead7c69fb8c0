package handlers

import (
	"sync"
)

// Every in-memory cache an event can grow is a bounded map whose bound is its type, declared
// beside the code that fills it: ownersOf (owners.go), advisedAt and workloadUIDs
// (ownerchecks.go), openGaps (capacitygap.go), lastWrites (stale.go), and the surge
// controller's (surgecontroller.go). A full map is emptied before it takes a new key (what is
// lost is read or decided again; none of them holds anything a drain needs to end). The
// sibling index and the re-check and surge queues have bounds of their own (siblings.go,
// rechecks.go, surgecontroller.go).

// limit is a bound, as a type, so a zero bounded map is ready to use.
type limit interface{ max() int }

type limit10k struct{}

func (limit10k) max() int { return 10_000 }

//lint:ignore U1000 used as lastWrites' type argument (staticcheck does not follow it there)
type limit100k struct{}

//lint:ignore U1000 called through the type argument
func (limit100k) max() int { return 100_000 }

// bounded is a map of at most L.max() entries, safe for concurrent use; its zero value is an
// empty map.
type bounded[K comparable, V any, L limit] struct {
	mu sync.Mutex
	m  map[K]V
}

func (b *bounded[K, V, L]) get(k K) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok
}

// update sets k to what f returns, given the current value (and whether there is one), under
// the map's lock.
func (b *bounded[K, V, L]) update(k K, f func(v V, ok bool) V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	if !ok && len(b.m) >= (*new(L)).max() {
		b.m = nil
	}
	if b.m == nil {
		b.m = map[K]V{}
	}
	b.m[k] = f(v, ok)
}

func (b *bounded[K, V, L]) put(k K, v V) {
	b.update(k, func(V, bool) V { return v })
}

// take returns k's value and forgets it.
func (b *bounded[K, V, L]) take(k K) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	delete(b.m, k)
	return v, ok
}

func (b *bounded[K, V, L]) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// holds reports whether the bounded map of strings b holds v at k.
func holds[L limit](b *bounded[string, string, L], k, v string) bool {
	got, ok := b.get(k)
	return ok && got == v
}
