package handlers_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"function/config"
	"function/handlers"
)

// Each kind the table of kinds marks Read has a reader, and no other kind has one.
func TestOwnerReadersFollowTheKindTable(t *testing.T) {
	var want []config.Kind
	for _, k := range config.Kinds() {
		if k.Spec().Read {
			want = append(want, k)
		}
	}
	assert.ElementsMatch(t, want, handlers.OwnerReaderKinds())
}
