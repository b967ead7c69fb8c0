package eventing_test

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"function/eventing"
)

type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Mode               string `json:"mode"`
		ServiceAccountName string `json:"serviceAccountName"`
		Resources          []struct {
			APIVersion, Kind string
			Selector         map[string]any `json:"selector"`
		}
		NamespaceSelector map[string]any                            `json:"namespaceSelector"`
		Sink              struct{ Ref struct{ Kind, Name string } } `json:"sink"`
		Broker            string                                    `json:"broker"`
		Filters           []struct {
			Any []struct {
				Prefix map[string]string `json:"prefix"`
			} `json:"any"`
			Exact map[string]string `json:"exact"`
		} `json:"filters"`
		Subscriber struct{ Ref struct{ Kind, Name string } } `json:"subscriber"`
		Delivery   struct {
			Retry int `json:"retry"`
		} `json:"delivery"`
	} `json:"spec"`
}

// The Knative wiring routes exactly the event types the function accepts, and none of its
// own replies (which would loop through the Broker).
func TestKnativeWiring(t *testing.T) {
	b, err := os.ReadFile("knative.yaml")
	require.NoError(t, err)
	objs := map[string]object{}
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		var o object
		require.NoError(t, yaml.Unmarshal(d, &o))
		objs[o.Kind] = o
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}
	require.Contains(t, objs, "Broker")
	source, trigger := objs["ApiServerSource"], objs["Trigger/vpa-graceful-drain"]
	assert.Equal(t, "Resource", source.Spec.Mode)
	assert.Equal(t, "vpa-graceful-drain-source", source.Spec.ServiceAccountName)
	require.Len(t, source.Spec.Resources, 1)
	assert.Equal(t, "Pod", source.Spec.Resources[0].Kind)
	// The source sees every pod the function's sweeps may manage: no narrower selector.
	assert.Empty(t, source.Spec.Resources[0].Selector, "no label selector on pods")
	assert.Empty(t, source.Spec.NamespaceSelector, "every namespace: the function's namespaceSelector decides")
	assert.Equal(t, "Broker", source.Spec.Sink.Ref.Kind)
	assert.Equal(t, objs["Broker"].Metadata.Name, source.Spec.Sink.Ref.Name)
	assert.Equal(t, objs["Broker"].Metadata.Name, trigger.Spec.Broker)
	assert.Equal(t, "vpa-graceful-drain", trigger.Spec.Subscriber.Ref.Name, "the Service kn func deploys (func.yaml name)")
	assert.Positive(t, trigger.Spec.Delivery.Retry)

	require.Len(t, trigger.Spec.Filters, 1)
	matches := func(eventType string) bool {
		for _, f := range trigger.Spec.Filters[0].Any {
			if strings.HasPrefix(eventType, f.Prefix["type"]) {
				return true
			}
		}
		return false
	}
	for _, op := range []string{"add", "update", "delete"} {
		for _, mode := range []string{"resource", "ref"} {
			typ := "dev.knative.apiserver." + mode + "." + op
			assert.True(t, matches(typ), "trigger passes %s", typ)
			assertAccepted(t, typ)
		}
	}
	for _, reply := range []string{eventing.TypeFinalizerAdded, eventing.TypeDrainStarted, eventing.TypeFinalizerRemoved} {
		assert.False(t, matches(reply), "trigger must not send the function its own reply %s", reply)
	}

	// Sweeps: the PingSource's ticks, and only those, reach the function as sweep requests.
	ping, sweep := objs["PingSource/vpa-graceful-drain-sweep"], objs["Trigger/vpa-graceful-drain-sweep"]
	assert.Equal(t, objs["Broker"].Metadata.Name, ping.Spec.Sink.Ref.Name)
	assert.Equal(t, objs["Broker"].Metadata.Name, sweep.Spec.Broker)
	assert.Equal(t, "vpa-graceful-drain", sweep.Spec.Subscriber.Ref.Name)
	require.Len(t, sweep.Spec.Filters, 1)
	assert.Equal(t, map[string]string{
		"type":   eventing.TypePing,
		"source": "/apis/v1/namespaces/" + ping.Metadata.Namespace + "/pingsources/" + ping.Metadata.Name,
	}, sweep.Spec.Filters[0].Exact)
	e := event.New()
	e.SetType(sweep.Spec.Filters[0].Exact["type"])
	assert.True(t, eventing.IsSweep(e), "the function takes the tick for a sweep request")
	assert.False(t, matches(eventing.TypePing), "the pod Trigger does not pass ticks")
}

// assertAccepted: Decode does not reject the type as unknown.
func assertAccepted(t *testing.T, typ string) {
	t.Helper()
	e := event.New()
	e.SetType(typ)
	_, err := eventing.Decode(e)
	var bad *eventing.InputError
	require.ErrorAs(t, err, &bad)
	assert.Equal(t, http.StatusBadRequest, bad.Status)
	assert.NotContains(t, bad.Message, "unsupported event type", typ)
}
