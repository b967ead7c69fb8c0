package handlers

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

type limit3 struct{}

func (limit3) max() int { return 3 }

// A bounded map never holds more than its bound: a new key into a full map empties it first;
// an existing key is updated in place.
func TestBoundedNeverGrowsPastItsBound(t *testing.T) {
	var b bounded[int, string, limit3]
	_, ok := b.get(1)
	assert.False(t, ok, "the zero map is empty")
	for i := range 3 {
		b.put(i, "v")
	}
	assert.Equal(t, 3, b.len())
	b.put(2, "updated")
	assert.Equal(t, 3, b.len(), "an existing key does not empty the map")
	v, _ := b.get(2)
	assert.Equal(t, "updated", v)

	b.put(3, "new")
	assert.Equal(t, 1, b.len(), "a new key into a full map empties it first")
	v, ok = b.get(3)
	assert.True(t, ok)
	assert.Equal(t, "new", v)

	b.update(3, func(v string, ok bool) string { return v + "+" })
	got, ok := b.take(3)
	assert.True(t, ok)
	assert.Equal(t, "new+", got)
	assert.Equal(t, 0, b.len(), "take forgets")
	for i := range 1000 {
		b.put(i, "v")
		assert.LessOrEqual(t, b.len(), 3)
	}
}
