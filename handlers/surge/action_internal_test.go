package surge

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every action has every field of its entry in actions: a name, an outcome, and an Event type,
// Event reason and reply type, each either set or marked absent (an action added without its
// entry, or an entry missing a field, fails here).
func TestActionsAreComplete(t *testing.T) {
	names := map[string]Action{}
	for a := range numActions {
		spec := reflect.ValueOf(actions[a])
		for i := range spec.NumField() {
			f := spec.Field(i)
			if f.Kind() == reflect.String {
				assert.NotEmpty(t, f.String(), "action %d has no %s (absent if it has none)", a, spec.Type().Field(i).Name)
			}
		}
		assert.NotEqual(t, absent, actions[a].name, "action %d has no name", a)
		assert.NotEqual(t, absent, actions[a].outcome, "action %d has no outcome", a)
		assert.Equal(t, actions[a].eventType == absent, actions[a].reason == absent, "action %s: an Event has a type and a reason, or neither", a)
		if prev, dup := names[actions[a].name]; dup {
			t.Errorf("actions %d and %d are both named %q", prev, a, actions[a].name)
		}
		names[actions[a].name] = a
	}
}
