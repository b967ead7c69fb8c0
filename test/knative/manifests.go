// Package knative checks the project's Knative manifests (eventing/knative.yaml) with Knative
// Eventing's own code, from the knative.dev/eventing module the function builds with: its API
// types, their SetDefaults and Validate (what the eventing webhooks run), the Broker's trigger
// filters, the CRDs and the default configuration it ships. The package's tests apply the
// manifests to a real API server with server-side dry-run; the helpers here are also used by
// the cluster-free tests in eventing/.
package knative

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/rickb777/date/period"
	"go.uber.org/zap"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	brokerconfig "knative.dev/eventing/pkg/apis/config"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	channelconfig "knative.dev/eventing/pkg/apis/messaging/config"
	pingconfig "knative.dev/eventing/pkg/apis/sources/config"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/eventing/pkg/eventfilter"
	"knative.dev/eventing/pkg/eventfilter/attributes"
	"knative.dev/eventing/pkg/eventfilter/subscriptionsapi"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/logging"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// EventingModule is the module whose types, filters, CRDs and defaults the checks use.
const EventingModule = "knative.dev/eventing"

var eventingDir = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", EventingModule).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("locating %s in the module cache (go list -m): %w", EventingModule, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m %s: no directory (run go mod download)", EventingModule)
	}
	return dir, nil
})

// EventingDir returns the directory of the knative.dev/eventing module in the module cache
// (`go list -m -f '{{.Dir}}' knative.dev/eventing`): its config/ holds the CRDs and the
// ConfigMaps a default install ships.
func EventingDir() (string, error) { return eventingDir() }

// CRDFiles returns the paths of the CustomResourceDefinitions of the kinds the manifests use,
// in the eventing module (config/core/resources; one file per kind, singular).
func CRDFiles() ([]string, error) {
	dir, err := EventingDir()
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range []string{"broker.yaml", "trigger.yaml", "apiserversource.yaml", "pingsource.yaml"} {
		files = append(files, filepath.Join(dir, "config", "core", "resources", f))
	}
	return files, nil
}

// Document is one YAML document of a manifest file.
type Document struct {
	APIVersion, Kind, Name, Namespace string
	// YAML is the document as written.
	YAML []byte
}

// Documents splits a multi-document YAML file into its documents, skipping those with only
// comments (a commented-out example is such a document).
func Documents(b []byte) ([]Document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs []Document
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading document %d: %w", len(docs)+1, err)
		}
		j, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		docs = append(docs, Document{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name,
			Namespace: head.Metadata.Namespace, YAML: raw})
	}
}

var exampleMarker = regexp.MustCompile(`^(\s*)# --- example: (\S+) ---\s*$`)

// Uncomment returns b with the commented-out example named name switched on: the lines
// between `# --- example: NAME ---` and `# --- end ---` lose their `# ` (the marker's own
// indentation is kept, so a block inside a document, such as a delivery's dead-letter sink,
// lands at the right depth). The marker lines stay, as comments.
func Uncomment(b []byte, name string) ([]byte, error) {
	lines := strings.SplitAfter(string(b), "\n")
	var out strings.Builder
	found, in, indent := false, false, ""
	for i, line := range lines {
		text := strings.TrimRight(line, "\r\n")
		switch {
		case !in:
			if m := exampleMarker.FindStringSubmatch(text); m != nil && m[2] == name {
				if found {
					return nil, fmt.Errorf("line %d: example %q appears twice", i+1, name)
				}
				found, in, indent = true, true, m[1]
			}
		case text == indent+"# --- end ---":
			in = false
		case text == indent+"#":
			line = strings.Replace(line, indent+"#", indent, 1)
		case strings.HasPrefix(text, indent+"# "):
			line = indent + strings.TrimPrefix(line, indent+"# ")
		default:
			return nil, fmt.Errorf("line %d: in example %q, %q does not start with %q", i+1, name, text, indent+"# ")
		}
		out.WriteString(line)
	}
	if !found {
		return nil, fmt.Errorf("no example %q (a line `# --- example: %s ---`)", name, name)
	}
	if in {
		return nil, fmt.Errorf("example %q has no `# --- end ---` line", name)
	}
	return []byte(out.String()), nil
}

// Object is an Eventing object as the webhooks see it.
type Object interface {
	runtime.Object
	metav1.Object
	SetDefaults(context.Context)
	Validate(context.Context) *apis.FieldError
}

// Kinds are the kinds the manifests may use, with knative.dev/eventing's Go types.
var Kinds = map[schema.GroupVersionKind]func() Object{
	eventingv1.SchemeGroupVersion.WithKind("Broker"):         func() Object { return &eventingv1.Broker{} },
	eventingv1.SchemeGroupVersion.WithKind("Trigger"):        func() Object { return &eventingv1.Trigger{} },
	sourcesv1.SchemeGroupVersion.WithKind("ApiServerSource"): func() Object { return &sourcesv1.ApiServerSource{} },
	sourcesv1.SchemeGroupVersion.WithKind("PingSource"):      func() Object { return &sourcesv1.PingSource{} },
}

// Decode decodes a document into its knative.dev/eventing type, strictly: an unknown field, a
// field spelled in another case and a duplicate key each fail (what the API server's
// fieldValidation=Strict rejects; the eventing webhooks also decode with unknown fields
// disallowed, but case-insensitively and skipping metadata).
func Decode(doc Document) (Object, error) {
	gvk := schema.FromAPIVersionAndKind(doc.APIVersion, doc.Kind)
	newObj, ok := Kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("%s %q: not a kind these checks know (%s)", gvk, doc.Name, kindList())
	}
	j, err := yaml.YAMLToJSONStrict(doc.YAML)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", doc.Kind, doc.Name, err)
	}
	obj := newObj()
	strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", doc.Kind, doc.Name, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s %q: strict decoding: %w", doc.Kind, doc.Name, errors.Join(strict...))
	}
	return obj, nil
}

func kindList() string {
	var s []string
	for gvk := range Kinds {
		s = append(s, gvk.Kind)
	}
	return strings.Join(s, ", ")
}

// WebhookContext returns ctx as the eventing webhooks (cmd/webhook) decorate it for a create:
// the ConfigMaps a default install ships in the module's config/core/configmaps, parsed by the
// same constructors the webhooks' config stores use (config-br-defaults: the Broker class and
// delivery defaults, without which a Broker gets no class annotation and fails validation;
// config-features: the feature flags that decide, for example, whether delivery.timeout or
// ApiServerSource filters are allowed; config-ping-defaults; default-ch-webhook), then
// apis.WithinCreate and the requesting user. (The validation webhook also adds a Kubernetes
// client, which only JobSink validation reads.)
func WebhookContext(ctx context.Context) (context.Context, error) {
	dir, err := EventingDir()
	if err != nil {
		return nil, err
	}
	cm := func(file, name string) (*corev1.ConfigMap, error) {
		b, err := os.ReadFile(filepath.Join(dir, "config", "core", "configmaps", file))
		if err != nil {
			return nil, err
		}
		var m corev1.ConfigMap
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if m.Name != name {
			return nil, fmt.Errorf("%s holds ConfigMap %q, not %q", file, m.Name, name)
		}
		return &m, nil
	}
	var errs []error
	must := func(err error) { errs = append(errs, err) }

	brCM, err := cm("default-broker.yaml", brokerconfig.DefaultsConfigName)
	must(err)
	chCM, err := cm("default-channel.yaml", channelconfig.ChannelDefaultsConfigName)
	must(err)
	pingCM, err := cm("default-pingsource.yaml", pingconfig.PingDefaultsConfigName)
	must(err)
	flagsCM, err := cm("features.yaml", feature.FlagsConfigName)
	must(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	br, err := brokerconfig.NewDefaultsConfigFromConfigMap(brCM)
	must(err)
	ch, err := channelconfig.NewChannelDefaultsConfigFromConfigMap(chCM)
	must(err)
	ping, err := pingconfig.NewPingDefaultsConfigFromConfigMap(pingCM)
	must(err)
	flags, err := feature.NewFlagsConfigFromConfigMap(flagsCM)
	must(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	ctx = logging.WithLogger(ctx, zap.NewNop().Sugar())
	ctx = brokerconfig.ToContext(ctx, &brokerconfig.Config{Defaults: br})
	ctx = pingconfig.ToContext(ctx, &pingconfig.Config{PingDefaults: ping})
	ctx = channelconfig.ToContext(ctx, &channelconfig.Config{ChannelDefaults: ch})
	ctx = feature.ToContext(ctx, flags)
	ctx = apis.WithinCreate(ctx)
	ctx = apis.WithUserInfo(ctx, &authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:masters"}})
	return ctx, nil
}

// Admit runs on obj what the eventing webhooks run on a create: SetDefaults (the defaulting
// webhook), then Validate (the validation webhook). Error-level diagnostics are the error (the
// webhook denies the request); warning-level ones are returned as warnings (the webhook
// admits with a warning).
func Admit(ctx context.Context, obj Object) (warnings []string, err error) {
	obj.SetDefaults(ctx)
	fe := obj.Validate(ctx)
	if fe == nil {
		return nil, nil
	}
	if w := fe.Filter(apis.WarningLevel); w != nil {
		for _, e := range w.WrappedErrors() {
			warnings = append(warnings, e.Error())
		}
	}
	if e := fe.Filter(apis.ErrorLevel); e != nil {
		return warnings, fmt.Errorf("%s %q denied by validation: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), e)
	}
	return warnings, nil
}

// Delivers reports whether the Broker sends event to the trigger's subscriber, decided as the
// Broker's filter does (knative.dev/eventing pkg/broker/filter, filterEvent): spec.filters
// through the subscriptionsapi filters when set, else the legacy attributes filter; an event
// is dropped only on FailFilter.
func Delivers(ctx context.Context, t *eventingv1.Trigger, event cloudevents.Event) bool {
	var f eventfilter.Filter
	switch {
	case len(t.Spec.Filters) > 0:
		f = subscriptionsapi.CreateSubscriptionsAPIFilters(logging.FromContext(ctx).Desugar(), t.Spec.Filters)
	case t.Spec.Filter != nil:
		f = attributes.NewAttributesFilter(t.Spec.Filter.Attributes)
	default:
		return true
	}
	// No f.Cleanup(): in knative.dev/eventing v0.50.0 anyFilter.Cleanup reads its filters
	// without the lock under which the goroutine its Filter may start (swapWithEarlierFilter)
	// reorders them, a data race `go test -race` reports. Left alone, the filter's optimizer
	// goroutine stays blocked on its channel: one per call with an "any" filter, in tests only.
	return f.Filter(ctx, event) != eventfilter.FailFilter
}

// RetryWaits returns the waits before each retry of a failed delivery with spec, as Knative
// computes them (knative.dev/eventing pkg/kncloudevents RetryConfigFromDeliverySpec, called
// by go-retryablehttp with attempt numbers 0 .. retry-1): exponential, backoffDelay * 2^n;
// linear, backoffDelay * n; no policy or delay, no wait. The time the attempts themselves take
// is not included.
func RetryWaits(spec *eventingduckv1.DeliverySpec) ([]time.Duration, error) {
	if spec == nil || spec.Retry == nil {
		return nil, nil
	}
	waits := make([]time.Duration, *spec.Retry)
	if spec.BackoffPolicy == nil || spec.BackoffDelay == nil {
		return waits, nil
	}
	p, err := period.Parse(*spec.BackoffDelay)
	if err != nil {
		return nil, fmt.Errorf("backoffDelay %q: %w", *spec.BackoffDelay, err)
	}
	delay, _ := p.Duration()
	for n := range waits {
		switch *spec.BackoffPolicy {
		case eventingduckv1.BackoffPolicyExponential:
			waits[n] = delay * time.Duration(math.Exp2(float64(n)))
		case eventingduckv1.BackoffPolicyLinear:
			waits[n] = delay * time.Duration(n)
		default:
			return nil, fmt.Errorf("unknown backoffPolicy %q", *spec.BackoffPolicy)
		}
	}
	return waits, nil
}
