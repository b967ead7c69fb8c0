package eventing_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/sources"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/kmeta"
	"sigs.k8s.io/yaml"

	"function/config"
	"function/eventing"
	"function/handlers"
	"function/handlers/advice"
	"function/handlers/drain"
	"function/names"
	"function/test/knative"
)

const (
	manifestFile = "knative.yaml"
	// The commented-out examples in knative.yaml (between `# --- example: NAME ---` and
	// `# --- end ---`).
	exampleTimeouts   = "timeouts"
	exampleDeadLetter = "dead-letter"
	// The subscriber audiences of the two Triggers (sender authentication), and func.yaml's
	// SENDER_AUDIENCE and SENDER_IDENTITIES.
	exampleAudience      = "audience"
	exampleSweepAudience = "sweep-audience"
	exampleSenderAuth    = "sender-auth"
	// The function's Knative Service (func.yaml name), subscriber of both Triggers.
	serviceName = "vpa-graceful-drain"
)

// manifests is knative.yaml decoded, strictly, into knative.dev/eventing's own types and
// admitted as the eventing webhooks admit a create: defaulted, then validated.
type manifests struct {
	docs []knative.Document
	objs map[string]knative.Object // by "Kind/name"
}

func webhookContext(t *testing.T) context.Context {
	t.Helper()
	ctx, err := knative.WebhookContext(context.Background())
	require.NoError(t, err)
	return ctx
}

func readManifest(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(manifestFile)
	require.NoError(t, err)
	return b
}

// withExamples returns knative.yaml with the named commented-out examples switched on.
func withExamples(t *testing.T, names ...string) []byte {
	t.Helper()
	b := readManifest(t)
	for _, n := range names {
		var err error
		b, err = knative.Uncomment(b, n)
		require.NoError(t, err)
	}
	return b
}

func admitAll(t *testing.T, b []byte) manifests {
	t.Helper()
	ctx := webhookContext(t)
	docs, err := knative.Documents(b)
	require.NoError(t, err)
	m := manifests{docs: docs, objs: map[string]knative.Object{}}
	for _, d := range docs {
		obj, err := knative.Decode(d)
		require.NoError(t, err)
		warnings, err := knative.Admit(ctx, obj)
		require.NoError(t, err)
		assert.Empty(t, warnings, "%s %s: webhook warnings", d.Kind, d.Name)
		key := d.Kind + "/" + d.Name
		require.NotContains(t, m.objs, key, "two documents are %s", key)
		m.objs[key] = obj
	}
	return m
}

func (m manifests) get(t *testing.T, kind, name string) knative.Object {
	t.Helper()
	obj, ok := m.objs[kind+"/"+name]
	require.True(t, ok, "knative.yaml has no %s %q", kind, name)
	return obj
}

func (m manifests) trigger(t *testing.T, name string) *eventingv1.Trigger {
	t.Helper()
	return m.get(t, "Trigger", name).(*eventingv1.Trigger)
}

// Every document of knative.yaml, as shipped and with each commented-out example switched
// on, decodes strictly into knative.dev/eventing's types and passes their SetDefaults and
// Validate with the configuration a default Eventing install ships.
func TestKnativeManifestsPassTheEventingWebhook(t *testing.T) {
	variants := map[string][]string{
		"as shipped":          nil,
		"timeouts example":    {exampleTimeouts},
		"dead-letter example": {exampleDeadLetter},
		"both examples":       {exampleTimeouts, exampleDeadLetter},
		"audience examples":   {exampleAudience, exampleSweepAudience},
		"every example":       {exampleTimeouts, exampleDeadLetter, exampleAudience, exampleSweepAudience},
	}
	for name, examples := range variants {
		t.Run(name, func(t *testing.T) {
			m := admitAll(t, withExamples(t, examples...))
			want := []string{"ApiServerSource/vpa-graceful-drain", "ApiServerSource/vpa-graceful-drain-vpas", "Broker/vpa-graceful-drain", "PingSource/vpa-graceful-drain-sweep",
				"Trigger/vpa-graceful-drain", "Trigger/vpa-graceful-drain-sweep"}
			if slices.Contains(examples, exampleTimeouts) {
				want = append(want, "Trigger/vpa-graceful-drain-timeouts")
			}
			var got []string
			for k, obj := range m.objs {
				got = append(got, k)
				assert.Equal(t, "vpa-graceful-drain", obj.GetNamespace(), k)
			}
			sort.Strings(got)
			sort.Strings(want)
			assert.Equal(t, want, got)
		})
	}

	// What the defaulting webhook adds, from config-br-defaults: the Broker's class.
	m := admitAll(t, readManifest(t))
	b := m.get(t, "Broker", "vpa-graceful-drain").(*eventingv1.Broker)
	assert.Equal(t, "MTChannelBasedBroker", b.Annotations[eventingv1.BrokerClassAnnotationKey])
}

// The checks are not vacuous: each of these edits of knative.yaml is caught by the strict
// decoding or by the webhook's validation.
func TestKnativeManifestsRejectMistakes(t *testing.T) {
	ctx := webhookContext(t)
	tests := []struct {
		name, old, new string
		want           string
	}{
		{"unknown field", "    retry: 8\n", "    retry: 8\n    retries: 8\n", `unknown field "spec.delivery.retries"`},
		{"field in another case", "    retry: 8\n", "    Retry: 8\n", `unknown field "spec.delivery.Retry"`},
		{"unknown metadata field", "  name: vpa-graceful-drain-sweep\n", "  name: vpa-graceful-drain-sweep\n  namspace: x\n", `unknown field "metadata.namspace"`},
		{"duplicate key", "    retry: 8\n", "    retry: 8\n    retry: 9\n", `"retry" already set`},
		{"bad backoff policy", "backoffPolicy: exponential", "backoffPolicy: exponentail", "invalid value: exponentail: spec.delivery.backoffPolicy"},
		{"bad backoff delay", "backoffDelay: PT0.5S", "backoffDelay: 500ms", "invalid value: 500ms: spec.delivery.backoffDelay"},
		{"timeout is allowed, but not empty", "    retry: 8\n", "    retry: 8\n    timeout: PT0S\n", "invalid value: PT0S: spec.delivery.timeout"},
		{"bad event mode", "mode: Resource", "mode: Resources", "invalid value: Resources: spec.mode"},
		{"bad schedule", `schedule: "* * * * *"`, `schedule: "every minute"`, "spec.schedule"},
		{"bad filter attribute name", "      type: dev.knative.sources.ping\n", "      Type: dev.knative.sources.ping\n", "spec.filters[0].exact[Type]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := string(readManifest(t))
			require.Contains(t, b, tt.old, "precondition: knative.yaml has the text to edit")
			docs, err := knative.Documents([]byte(strings.Replace(b, tt.old, tt.new, 1)))
			if err == nil {
				for _, d := range docs {
					var obj knative.Object
					if obj, err = knative.Decode(d); err != nil {
						break
					}
					if _, err = knative.Admit(ctx, obj); err != nil {
						break
					}
				}
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// The wiring: the source watches every pod, sends to the Broker; both Triggers go from that
// Broker to the function's Service; the PingSource ticks are sweep requests.
func TestKnativeWiring(t *testing.T) {
	m := admitAll(t, readManifest(t))
	broker := m.get(t, "Broker", "vpa-graceful-drain")
	source := m.get(t, "ApiServerSource", "vpa-graceful-drain").(*sourcesv1.ApiServerSource)
	assert.Equal(t, sourcesv1.ResourceMode, source.Spec.EventMode)
	assert.Equal(t, "vpa-graceful-drain-source", source.Spec.ServiceAccountName)
	require.Len(t, source.Spec.Resources, 1, "pods alone: a missing CRD of another resource stops the adapter")
	assert.Equal(t, "v1", source.Spec.Resources[0].APIVersion)
	assert.Equal(t, "Pod", source.Spec.Resources[0].Kind)
	// Surge rollouts' trigger, a source of its own: the objects Decode takes besides pods.
	vpas := m.get(t, "ApiServerSource", "vpa-graceful-drain-vpas").(*sourcesv1.ApiServerSource)
	assert.Equal(t, sourcesv1.ResourceMode, vpas.Spec.EventMode)
	assert.Equal(t, "vpa-graceful-drain-source", vpas.Spec.ServiceAccountName)
	require.Len(t, vpas.Spec.Resources, 1)
	assert.Equal(t, "autoscaling.k8s.io/v1", vpas.Spec.Resources[0].APIVersion)
	assert.Equal(t, "VerticalPodAutoscaler", vpas.Spec.Resources[0].Kind)
	assert.Nil(t, vpas.Spec.Resources[0].LabelSelector, "every VPA")
	require.NotNil(t, vpas.Spec.NamespaceSelector)
	assert.Equal(t, metav1.LabelSelector{}, *vpas.Spec.NamespaceSelector)
	assertRefersToBroker(t, broker, vpas.Spec.Sink.Ref)
	// The source sees every pod the function's sweeps may manage: no narrower selector.
	assert.Nil(t, source.Spec.Resources[0].LabelSelector, "no label selector on pods")
	require.NotNil(t, source.Spec.NamespaceSelector)
	assert.Equal(t, metav1.LabelSelector{}, *source.Spec.NamespaceSelector, "every namespace: the function's namespaceSelector decides")
	assert.Empty(t, source.Spec.Filters)
	assertRefersToBroker(t, broker, source.Spec.Sink.Ref)

	for _, name := range []string{"vpa-graceful-drain", "vpa-graceful-drain-sweep"} {
		tr := m.trigger(t, name)
		assert.Equal(t, broker.GetName(), tr.Spec.Broker, name)
		require.NotNil(t, tr.Spec.Subscriber.Ref, name)
		assert.Equal(t, "serving.knative.dev/v1", tr.Spec.Subscriber.Ref.APIVersion, name)
		assert.Equal(t, "Service", tr.Spec.Subscriber.Ref.Kind, name)
		assert.Equal(t, serviceName, tr.Spec.Subscriber.Ref.Name, "%s: the Service kn func deploys (func.yaml name)", name)
	}

	ping := m.get(t, "PingSource", "vpa-graceful-drain-sweep").(*sourcesv1.PingSource)
	assertRefersToBroker(t, broker, ping.Spec.Sink.Ref)
	assert.True(t, eventing.IsSweep(pingTick(ping)), "the function takes the tick for a sweep request")
}

func assertRefersToBroker(t *testing.T, broker knative.Object, ref *duckv1.KReference) {
	t.Helper()
	require.NotNil(t, ref)
	assert.Equal(t, eventingv1.SchemeGroupVersion.String(), ref.APIVersion)
	assert.Equal(t, "Broker", ref.Kind)
	assert.Equal(t, broker.GetName(), ref.Name)
	// Sources do not default their sink's namespace: the source's own is meant.
	assert.Contains(t, []string{"", broker.GetNamespace()}, ref.Namespace)
}

// pingTick is the event the PingSource adapter sends for ping: its type, its source
// (sourcesv1.PingSourceSource) and its data.
func pingTick(ping *sourcesv1.PingSource) event.Event {
	e := event.New()
	e.SetID(uuid.NewString())
	e.SetType(sourcesv1.PingSourceEventType)
	e.SetSource(sourcesv1.PingSourceSource(ping.Namespace, ping.Name))
	e.SetTime(time.Now())
	_ = e.SetData(ping.Spec.ContentType, []byte(ping.Spec.Data))
	return e
}

// replyTypes returns every Reply* constant declared in package names, by name: the types of
// the replies the function sends back to the Broker. They are read from the source, so a
// reply type added later is covered by the filter proofs without editing this test.
func replyTypes(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../names/names.go", nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	types := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Reply") || name.Name == "ReplySource" {
					continue
				}
				require.Less(t, i, len(vs.Values), "%s has a literal value", name.Name)
				lit, ok := vs.Values[i].(*ast.BasicLit)
				require.True(t, ok && lit.Kind == token.STRING, "%s is a string literal", name.Name)
				v, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				types[name.Name] = v
			}
		}
	}
	// The enumeration finds the constants the code uses.
	for name, v := range map[string]string{"ReplyFinalizerAdded": names.ReplyFinalizerAdded, "ReplyDrainStarted": names.ReplyDrainStarted,
		"ReplyFinalizerRemoved": names.ReplyFinalizerRemoved, "ReplyAdvice": names.ReplyAdvice, "ReplyRolloutStarted": names.ReplyRolloutStarted,
		"ReplyRolloutCompleted": names.ReplyRolloutCompleted, "ReplyRolloutAborted": names.ReplyRolloutAborted} {
		require.Equal(t, v, types[name], name)
	}
	for name, v := range types {
		require.True(t, strings.HasPrefix(v, "dev.vpagracefuldrain."), "%s = %q", name, v)
	}
	return types
}

// probe is an event to show the Triggers.
type probe struct {
	name string
	e    event.Event
}

func replyEvent(t *testing.T, d drain.Decision, advice *handlers.Advice, dryRun bool) event.Event {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "prod", UID: "uid-1"}}
	e, err := eventing.Reply(handlers.Outcome{Pod: pod, Decision: d, Applied: true, DryRun: dryRun, At: time.Now(), Advice: advice})
	require.NoError(t, err)
	require.NotNil(t, e)
	return *e
}

// probes: every request ApiServerSource really sent (testdata, captured from eventing v0.50.0;
// all six types), the sweep's PingSource tick and one from another PingSource, a direct sweep
// request, a synthetic event of every reply type in reply.go, and real replies from
// eventing.Reply for every action and removal reason.
func probes(t *testing.T, ping *sourcesv1.PingSource) []probe {
	t.Helper()
	var ps []probe
	files, err := filepath.Glob(filepath.Join(captured, "*", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		ps = append(ps, probe{"captured " + filepath.Base(f), readEvent(t, f)})
	}

	ps = append(ps, probe{"tick of " + ping.Name, pingTick(ping)})
	other := ping.DeepCopy()
	other.Name = "someone-elses-ping"
	ps = append(ps, probe{"tick of another PingSource", pingTick(other)})
	sweep := event.New()
	sweep.SetID(uuid.NewString())
	sweep.SetType(names.TypeSweep)
	sweep.SetSource("curl")
	ps = append(ps, probe{"direct sweep request", sweep})

	types := replyTypes(t)
	typeNames := make([]string, 0, len(types))
	for name := range types {
		typeNames = append(typeNames, name)
	}
	sort.Strings(typeNames)
	for _, name := range typeNames {
		e := event.New()
		e.SetID(uuid.NewString())
		e.SetType(types[name])
		e.SetSource(names.ReplySource)
		e.SetSubject(eventing.PodPath("prod", "web-1"))
		ps = append(ps, probe{"reply type " + name, e})
	}

	started := time.Now().Add(-time.Minute)
	advice := &handlers.Advice{Namespace: "prod", Owner: drain.Owner{Kind: config.KindDeployment, Name: "web"},
		Findings: []advice.Finding{{ID: advice.FindingSingleReplica, Message: "one replica", Fix: "replicas: 2"}}}
	ps = append(ps,
		probe{"reply: finalizer added", replyEvent(t, drain.Decision{Action: drain.AddFinalizer, FinalizerIndex: -1}, nil, false)},
		probe{"reply: advice", replyEvent(t, drain.Decision{Action: drain.AddFinalizer, FinalizerIndex: -1, Kind: config.KindDeployment, Owner: "web"}, advice, false)},
		probe{"reply: drain started", replyEvent(t, drain.Decision{Action: drain.StartDrain, Started: started, Deadline: started.Add(5 * time.Minute)}, nil, false)},
	)
	for _, reason := range []string{names.ReasonTimeout, names.ReasonDrained, names.ReasonReplaced, names.ReasonNotEvicted,
		names.ReasonUnmanaged, names.ReasonDryRun, names.ReasonUninstalled} {
		ps = append(ps, probe{"reply: finalizer removed, " + reason,
			replyEvent(t, drain.Decision{Action: drain.RemoveFinalizer, Reason: reason, Started: started}, nil, false)})
	}
	ps = append(ps, probe{"reply: finalizer removed, timeout, dry-run",
		replyEvent(t, drain.Decision{Action: drain.RemoveFinalizer, Reason: names.ReasonTimeout, Started: started}, nil, true)})
	return ps
}

// The filter proofs, with the Broker's own filter code (knative.dev/eventing
// pkg/eventfilter/subscriptionsapi) on the Triggers of knative.yaml:
//   - the function's Trigger delivers every ApiServerSource type the function accepts (the
//     six, each checked against eventing.Decode), and none of the function's replies (no loop);
//   - the sweep Trigger delivers the sweep PingSource's ticks and nothing else;
//   - the timeouts example delivers finalizer.removed replies with reason timeout, and nothing
//     else (not drained, not another type carrying reason=timeout).
func TestTriggerFilters(t *testing.T) {
	ctx := webhookContext(t)
	m := admitAll(t, withExamples(t, exampleTimeouts))
	pods, sweeps, timeouts := m.trigger(t, "vpa-graceful-drain"), m.trigger(t, "vpa-graceful-drain-sweep"), m.trigger(t, "vpa-graceful-drain-timeouts")
	ping := m.get(t, "PingSource", "vpa-graceful-drain-sweep").(*sourcesv1.PingSource)

	accepted := map[string]bool{}
	for _, typ := range slices.Concat(sources.ApiServerSourceEventResourceModeTypes, sources.ApiServerSourceEventReferenceModeTypes) {
		accepted[typ] = true
	}
	require.Len(t, accepted, 6)
	seen := map[string]bool{}

	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "event\ttype\tpod Trigger\tsweep Trigger\ttimeouts example")
	yes := map[bool]string{true: "delivers", false: "-"}
	for _, p := range probes(t, ping) {
		typ := p.e.Type()
		reason := p.e.Extensions()["reason"]
		wantPods := accepted[typ]
		wantSweep := typ == sourcesv1.PingSourceEventType && p.e.Source() == sourcesv1.PingSourceSource(ping.Namespace, ping.Name)
		wantTimeouts := typ == names.ReplyFinalizerRemoved && reason == names.ReasonTimeout

		gotPods, gotSweep, gotTimeouts := knative.Delivers(ctx, pods, p.e), knative.Delivers(ctx, sweeps, p.e), knative.Delivers(ctx, timeouts, p.e)
		assert.Equal(t, wantPods, gotPods, "pod Trigger, %s", p.name)
		assert.Equal(t, wantSweep, gotSweep, "sweep Trigger, %s", p.name)
		assert.Equal(t, wantTimeouts, gotTimeouts, "timeouts example, %s", p.name)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.name, typ, yes[gotPods], yes[gotSweep], yes[gotTimeouts])

		if accepted[typ] {
			seen[typ] = true
			_, err := eventing.Decode(p.e)
			assert.NoError(t, err, "the function accepts %s", p.name)
		}

		// The timeouts example matches on the type too: the same event with reason=timeout.
		if typ != names.ReplyFinalizerRemoved {
			e := p.e.Clone()
			e.SetExtension("reason", names.ReasonTimeout)
			assert.False(t, knative.Delivers(ctx, timeouts, e), "timeouts example, %s with reason=timeout", p.name)
		}
	}
	require.NoError(t, tw.Flush())
	t.Log("\n" + table.String())
	for typ := range accepted {
		assert.True(t, seen[typ], "a captured %s event is among the probes", typ)
	}
}

// The function's Trigger keeps retrying for longer than a rolling restart of the function
// takes: the waits, computed as Knative computes them from the decoded Trigger, add up to
// more than a minute, and knative.yaml's comment states the total.
func TestTriggerDeliveryRidesOutARestart(t *testing.T) {
	m := admitAll(t, readManifest(t))
	delivery := m.trigger(t, "vpa-graceful-drain").Spec.Delivery
	require.NotNil(t, delivery)
	require.NotNil(t, delivery.BackoffPolicy)
	assert.Equal(t, eventingduckv1.BackoffPolicyExponential, *delivery.BackoffPolicy)
	waits, err := knative.RetryWaits(delivery)
	require.NoError(t, err)
	var total time.Duration
	for _, w := range waits {
		total += w
	}
	t.Logf("%d retries, waits %v, total %v", len(waits), waits, total)
	assert.Greater(t, total, 60*time.Second, "retries ride out a restart")
	assert.Less(t, total, 10*time.Minute, "a failing subscriber does not hold events for long")
	assert.Nil(t, delivery.DeadLetterSink, "no dead-letter sink unless the user sets one")
	secs := strconv.FormatFloat(total.Seconds(), 'f', -1, 64)
	assert.Contains(t, string(readManifest(t)), fmt.Sprintf("%d retries add up to %s s", len(waits), secs), "the YAML comment states the total")

	// The comment's comparison: the delivery the Broker gets from config-br-defaults.
	broker := m.get(t, "Broker", "vpa-graceful-drain").(*eventingv1.Broker)
	waits, err = knative.RetryWaits(broker.Spec.Delivery)
	require.NoError(t, err)
	total = 0
	for _, w := range waits {
		total += w
	}
	assert.Contains(t, string(readManifest(t)), fmt.Sprintf("%d retries from %s, %s s", len(waits), *broker.Spec.Delivery.BackoffDelay,
		strconv.FormatFloat(total.Seconds(), 'f', -1, 64)), "the YAML comment states Eventing's default")

	// The computation, on the values knative.yaml had (5 retries from PT0.2S: about 6 s) and
	// on a linear policy (backoffDelay * n, n from 0).
	waits, err = knative.RetryWaits(&eventingduckv1.DeliverySpec{Retry: ptr.To[int32](5),
		BackoffPolicy: ptr.To(eventingduckv1.BackoffPolicyExponential), BackoffDelay: ptr.To("PT0.2S")})
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond}, waits)
	waits, err = knative.RetryWaits(&eventingduckv1.DeliverySpec{Retry: ptr.To[int32](3),
		BackoffPolicy: ptr.To(eventingduckv1.BackoffPolicyLinear), BackoffDelay: ptr.To("PT1S")})
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{0, time.Second, 2 * time.Second}, waits)
}

// The commented dead-letter sink, switched on, is a valid delivery.deadLetterSink of the
// function's Trigger and leaves the retries as they are.
func TestTriggerDeadLetterSinkExample(t *testing.T) {
	shipped := admitAll(t, readManifest(t)).trigger(t, "vpa-graceful-drain")
	tr := admitAll(t, withExamples(t, exampleDeadLetter)).trigger(t, "vpa-graceful-drain")
	require.NotNil(t, tr.Spec.Delivery)
	require.NotNil(t, tr.Spec.Delivery.DeadLetterSink)
	require.NotNil(t, tr.Spec.Delivery.DeadLetterSink.Ref)
	assert.Equal(t, "Service", tr.Spec.Delivery.DeadLetterSink.Ref.Kind)
	assert.Equal(t, "vpa-graceful-drain", tr.Spec.Delivery.DeadLetterSink.Ref.Namespace, "defaulted to the Trigger's namespace")
	tr.Spec.Delivery.DeadLetterSink = nil
	assert.Equal(t, shipped.Spec, tr.Spec, "only the dead-letter sink differs")
}

// Sender authentication, switched on on both sides as docs/security.md says: each Trigger's
// subscriber audience (what the Broker requests its token for) is func.yaml's SENDER_AUDIENCE,
// and SENDER_IDENTITIES are exactly the Triggers' OIDC ServiceAccounts, named as Knative
// Eventing names them (auth.GetOIDCServiceAccountNameForResource: kmeta.ChildName of the
// Trigger's name and -oidc-<group>-<kind>, in the Trigger's namespace). Nothing else changes.
func TestTriggerSenderAuthenticationExample(t *testing.T) {
	shipped := admitAll(t, readManifest(t))
	m := admitAll(t, withExamples(t, exampleAudience, exampleSweepAudience))

	b, err := os.ReadFile("../func.yaml")
	require.NoError(t, err)
	b, err = knative.Uncomment(b, exampleSenderAuth)
	require.NoError(t, err)
	var fn struct {
		Run struct {
			Envs []struct{ Name, Value string } `json:"envs"`
		} `json:"run"`
	}
	require.NoError(t, yaml.Unmarshal(b, &fn), "func.yaml with the example on")
	env := map[string]string{}
	for _, e := range fn.Run.Envs {
		env[e.Name] = e.Value
	}
	proc, err := config.LoadProcess(env)
	require.NoError(t, err)
	require.NotEmpty(t, proc.SenderAudience)

	var identities []string
	for _, name := range []string{"vpa-graceful-drain", "vpa-graceful-drain-sweep"} {
		tr := m.trigger(t, name)
		require.NotNil(t, tr.Spec.Subscriber.Audience, name)
		assert.Equal(t, proc.SenderAudience, *tr.Spec.Subscriber.Audience, "%s: the Broker's tokens are for the function's audience", name)
		gvk := eventingv1.SchemeGroupVersion.WithKind("Trigger")
		sa := strings.ToLower(kmeta.ChildName(tr.Name, fmt.Sprintf("-oidc-%s-%s", gvk.Group, gvk.Kind)))
		identities = append(identities, "system:serviceaccount:"+tr.Namespace+":"+sa)

		was := shipped.trigger(t, name)
		tr.Spec.Subscriber.Audience = nil
		assert.Equal(t, was.Spec, tr.Spec, "%s: only the audience differs", name)
	}
	assert.ElementsMatch(t, identities, proc.SenderIdentities)
	assert.Equal(t, fmt.Sprintf("serving.knative.dev/service/%s/%s", "vpa-graceful-drain", serviceName), proc.SenderAudience,
		"Knative's form of an audience (auth.GetAudience): <group>/<kind>/<namespace>/<name>")
}
