package surge

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"

	"function/names"
)

type op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch is the one guarded JSON patch that applies dec to the Deployment as read: `test` ops on
// its uid and resourceVersion (the decision applies to exactly that state), then the state
// annotation and, for a restart or an abort, the pod template's annotations.
func Patch(d *appsv1.Deployment, dec Decision) ([]byte, error) {
	if dec.Action == None {
		return nil, fmt.Errorf("action %s writes nothing", dec.Action)
	}
	if d.UID == "" || d.ResourceVersion == "" {
		return nil, fmt.Errorf("the Deployment %s/%s was not read from the API server (no uid or resourceVersion)", d.Namespace, d.Name)
	}
	state, err := json.Marshal(dec.State)
	if err != nil {
		return nil, fmt.Errorf("encoding the surge state: %w", err)
	}
	ops := []op{
		{Op: "test", Path: "/metadata/uid", Value: string(d.UID)},
		{Op: "test", Path: "/metadata/resourceVersion", Value: d.ResourceVersion},
	}
	ops = append(ops, setAnnotations("/metadata/annotations", d.Annotations, map[string]string{names.AnnotationSurgeState: string(state)})...)
	if dec.Action == Restart || dec.Action == Abort {
		ops = append(ops, setAnnotations("/spec/template/metadata/annotations", d.Spec.Template.Annotations, dec.Template)...)
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encoding patch: %w", err)
	}
	return b, nil
}

// setAnnotations sets (value "" removes) annotations in the map at path, which holds have.
func setAnnotations(path string, have, set map[string]string) []op {
	if have == nil {
		m := map[string]string{}
		for k, v := range set {
			if v != "" {
				m[k] = v
			}
		}
		if len(m) == 0 {
			return nil
		}
		return []op{{Op: "add", Path: path, Value: m}}
	}
	var ops []op
	for _, k := range sortedKeys(set) {
		p := path + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
		_, present := have[k]
		switch v := set[k]; {
		case v != "":
			ops = append(ops, op{Op: "add", Path: p, Value: v})
		case present:
			ops = append(ops, op{Op: "remove", Path: p})
		}
	}
	return ops
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
