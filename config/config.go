// Package config holds the function's configuration: its keys, defaults, parsing and
// validation. Values come from environment variables (func.yaml run.envs, or a ConfigMap
// imported with `{{ configMap:vpa-graceful-drain }}`) and from files in a mounted ConfigMap
// directory; an environment variable wins over a file.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Keys, as written in config/configmap.yaml: the names code refers to. The table of keys
// (keys, in keys.go) defines each: its UPPER_SNAKE_CASE alias (GRACE_PERIOD_SECONDS, for
// environments where camelCase variables are awkward), default, documentation and parsing.
const (
	KeyGracePeriodSeconds   = "gracePeriodSeconds"
	KeyDrainTimeoutSeconds  = "drainTimeoutSeconds"
	KeyNamespaceSelector    = "namespaceSelector"
	KeyDetectVpaAnnotations = "detectVpaAnnotations"
	KeySweepIntervalSeconds = "sweepIntervalSeconds"
	KeyHoldOn               = "holdOn"
	KeyWorkloadDefaults     = "workloadDefaults"
	KeyEnsurePDB            = "ensurePodDisruptionBudget"
	// Surge rollouts (docs/surge-rollouts.md): the switch, and the VPA updater's settings
	// they decide with, named after the updater's flags.
	KeySurgeRollout                   = "surgeRollout"
	KeyPodUpdateThreshold             = "podUpdateThreshold"
	KeyInRecommendationBoundsLifetime = "inRecommendationBoundsEvictionLifetimeThreshold"
	KeyEvictAfterOOMThreshold         = "evictAfterOomThreshold"
	KeyUseAdmissionControllerStatus   = "useAdmissionControllerStatus"
	// The limits of surge rollouts: in flight at once, started a minute, the cool-down
	// between two rollouts of one Deployment, how long a surge pod may stay Pending.
	KeySurgeMaxInFlight    = "surgeMaxInFlight"
	KeySurgeMaxPerMinute   = "surgeMaxPerMinute"
	KeySurgeCoolDown       = "surgeCoolDown"
	KeySurgePendingTimeout = "surgePendingTimeout"
	// KeySurgeRolloutTimeout is the deadline of every surge rollout (it also bounds a
	// Deployment's progressDeadlineSeconds): one not complete by then is aborted.
	KeySurgeRolloutTimeout = "surgeRolloutTimeout"
	// KeySurgeMaxAttempts is how many surge rollouts of one Deployment may fail (abort) in a
	// row before the function stops trying and says so in a Warning Event.
	KeySurgeMaxAttempts = "surgeMaxAttempts"
	// KeyAdmissionControllerStatusLeaseNamespace is where VPA's admission controller writes its
	// status Lease (the updater's --admission-controller-status-lease-namespace).
	KeyAdmissionControllerStatusLeaseNamespace = "admissionControllerStatusLeaseNamespace"
	// KeyConfigDir names the directory of a mounted ConfigMap (one file per key).
	KeyConfigDir = "CONFIG_DIR"
	// KeyDryRun forces dry-run mode: decide and reply, never write.
	KeyDryRun = "DRY_RUN"
	// KeyConfigMap names the ConfigMap the function follows live through the API
	// ("name" in the function's own namespace, or "namespace/name"); unset: none.
	KeyConfigMap = "CONFIG_MAP"
)

// DefaultConfigDir is where config/ YAML mounts the ConfigMap.
const DefaultConfigDir = "/etc/vpa-graceful-drain"

// Sweeps cannot be turned off: they are the last safety net that finishes a drain whose events
// were lost while no replica held its re-check (a restart, a scale-down). A release can be
// late by up to one interval then, so the interval is bounded on both sides.
const (
	MinSweepSeconds = 5
	MaxSweepSeconds = 900
)

// MaxSeconds bounds every duration setting (one day): a drain longer than that is a
// mistake that would leave pods Terminating for too long.
const MaxSeconds = 24 * 60 * 60

// Config is the validated configuration. The zero value is not useful: use Default or Load.
type Config struct {
	// GracePeriod is the minimum time a drain lasts after it starts, for every kind of owner
	// but those workloadDefaults (or the built-in defaults, see Workload) give another.
	GracePeriod time.Duration
	// DrainTimeout bounds a drain: at started+DrainTimeout the finalizer is removed whatever
	// else holds.
	DrainTimeout time.Duration
	// Namespaces selects the namespaces whose pods may be managed.
	Namespaces NamespaceSelector
	// DetectVpaAnnotations also treats pods carrying VPA's own annotations as managed.
	DetectVpaAnnotations bool
	// SweepInterval is how often every pod is reconciled again (the first sweep runs at
	// start), to catch events the source dropped and pods that existed before it started.
	// Load accepts MinSweepSeconds..MaxSweepSeconds; 0 (tests, embedding) means no sweeps.
	SweepInterval time.Duration
	// Uninstalling means the function is being uninstalled (the followed ConfigMap carries
	// AnnotationUninstalling, or is gone). No finalizer is added; every one is removed.
	Uninstalling bool
	// HoldOn says which deletions are held: evictions only (the default) or all.
	HoldOn HoldOn
	// Workloads overrides the built-in policy per owner kind (workloadDefaults); see Workload.
	Workloads map[Kind]WorkloadOverride
	// EnsurePDB makes the function create a PodDisruptionBudget (maxUnavailable 1) for a managed
	// Deployment or StatefulSet of 2 or more replicas that none selects, so evictions are paced.
	EnsurePDB bool
	// Surge is the surge-rollout mode and the VPA updater settings it decides with.
	Surge Surge
}

// Surge is the surge-rollout configuration: the surgeRollout switch and the VPA updater's
// settings under the updater's flag names (--pod-update-threshold,
// --in-recommendation-bounds-eviction-lifetime-threshold, --evict-after-oom-threshold,
// --use-admission-controller-status), with the updater's defaults.
type Surge struct {
	Enabled                      bool
	PodUpdateThreshold           float64
	InBoundsLifetime             time.Duration
	EvictAfterOOM                time.Duration
	UseAdmissionControllerStatus bool
	// The budget over all Deployments (surgeMaxInFlight, surgeMaxPerMinute), the cool-down
	// between two rollouts of one Deployment (surgeCoolDown, doubling when it is selected again
	// within InBoundsLifetime) and the Pending timeout of a surge pod (surgePendingTimeout).
	MaxInFlight, MaxPerMinute int
	CoolDown, PendingTimeout  time.Duration
	// Timeout is every rollout's deadline (surgeRolloutTimeout); MaxAttempts the failed
	// rollouts in a row after which a Deployment's are stopped (surgeMaxAttempts).
	Timeout     time.Duration
	MaxAttempts int
	// StatusLeaseNamespace is the namespace of VPA's admission controller status Lease
	// (admissionControllerStatusLeaseNamespace, default kube-system as VPA's).
	StatusLeaseNamespace string
}

// NamespaceSelector is the JSON value of the namespaceSelector key. Exclude wins over
// Include; an empty Include means every namespace.
type NamespaceSelector struct {
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// Selects reports whether pods in namespace ns may be managed.
func (s NamespaceSelector) Selects(ns string) bool {
	if slices.Contains(s.Exclude, ns) {
		return false
	}
	return len(s.Include) == 0 || slices.Contains(s.Include, ns)
}

// Default returns the documented defaults: every key's Default (see KeySpec), parsed.
func Default() Config {
	cfg, err := defaults()
	if err != nil {
		panic("config: the table of keys holds an invalid default: " + err.Error()) // TestKeyTable says which
	}
	// A copy of its own: a caller may change the selector's lists.
	cfg.Namespaces.Include = slices.Clone(cfg.Namespaces.Include)
	cfg.Namespaces.Exclude = slices.Clone(cfg.Namespaces.Exclude)
	cfg.Workloads = maps.Clone(cfg.Workloads)
	return cfg
}

// defaults are the table's defaults, parsed once.
var defaults = sync.OnceValues(func() (Config, error) { return Parse(nil) })

// KeyError names the configuration key that is wrong and why.
type KeyError struct {
	Key    string
	Value  string
	Reason string
}

// Error returns the key, its value and why it is invalid.
func (e *KeyError) Error() string {
	return fmt.Sprintf("config key %s=%q: %s", e.Key, e.Value, e.Reason)
}

// Load builds the configuration from env (the process environment as a map, which is what
// func-go hands to Start) and the files of the mounted ConfigMap directory (env's CONFIG_DIR,
// default DefaultConfigDir; a missing directory is not an error). Every invalid key is
// reported, joined in one error.
func Load(env map[string]string) (Config, error) {
	values, err := Values(env)
	if err != nil {
		return Config{}, err
	}
	return Parse(values)
}

// Values are the raw configuration values Load parses: the mounted ConfigMap directory's
// files, overridden by environment variables.
func Values(env map[string]string) (map[string]string, error) {
	values, err := readDir(lookup(env, KeyConfigDir, DefaultConfigDir))
	if err != nil {
		return nil, err
	}
	for i := range keys {
		k := &keys[i]
		if v, ok := env[k.Name]; ok {
			values[k.Name] = v
		} else if v, ok := env[k.Env]; ok {
			values[k.Name] = v
		}
	}
	return values, nil
}

// Parse validates a map of key to raw value (missing keys take their defaults). Every invalid
// key is reported (in the order the keys are documented), joined in one error of KeyErrors;
// the checks across keys follow once each key is valid.
func Parse(values map[string]string) (Config, error) {
	var cfg Config
	var errs []error
	for i := range keys {
		k := &keys[i]
		v, ok := values[k.Name]
		if !ok {
			v = k.Default
		}
		if err := k.parse(v, &cfg); err != nil {
			errs = append(errs, &KeyError{Key: k.Name, Value: v, Reason: err.Error()})
		}
	}
	if len(errs) == 0 {
		for k, o := range cfg.Workloads {
			if g := cfg.Workload(k).GracePeriod; o.GracePeriodSeconds != nil && g > cfg.DrainTimeout {
				errs = append(errs, &KeyError{Key: KeyWorkloadDefaults, Value: values[KeyWorkloadDefaults],
					Reason: fmt.Sprintf("%s.gracePeriodSeconds %d must be <= %s (%d)", k, int(g.Seconds()), KeyDrainTimeoutSeconds, int(cfg.DrainTimeout.Seconds()))})
			}
		}
	}
	if len(errs) == 0 && cfg.DrainTimeout < cfg.GracePeriod {
		errs = append(errs, &KeyError{
			Key:    KeyDrainTimeoutSeconds,
			Value:  strconv.Itoa(int(cfg.DrainTimeout.Seconds())),
			Reason: fmt.Sprintf("must be >= %s (%d)", KeyGracePeriodSeconds, int(cfg.GracePeriod.Seconds())),
		})
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, nil
}

// ParseSeconds parses a whole number of seconds in [min, MaxSeconds].
func ParseSeconds(v string, minimum int) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("not a whole number of seconds")
	}
	if n < minimum || n > MaxSeconds {
		return 0, fmt.Errorf("must be between %d and %d seconds", minimum, MaxSeconds)
	}
	return time.Duration(n) * time.Second, nil
}

// ParseBool accepts true/false (any case), 1/0, yes/no.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean (use true or false)")
}

func parseSelector(v string) (NamespaceSelector, error) {
	var sel NamespaceSelector
	if strings.TrimSpace(v) == "" {
		return sel, nil
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sel); err != nil {
		return NamespaceSelector{}, fmt.Errorf(`not a JSON object like {"include":["ns"],"exclude":["ns"]}: %w`, err)
	}
	if dec.More() {
		return NamespaceSelector{}, fmt.Errorf("unexpected data after the JSON object")
	}
	for _, ns := range slices.Concat(sel.Include, sel.Exclude) {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return NamespaceSelector{}, fmt.Errorf("namespace %q is not a valid name: %s", ns, strings.Join(msgs, "; "))
		}
	}
	return sel, nil
}

// readDir reads one file per known key from dir (a mounted ConfigMap).
func readDir(dir string) (map[string]string, error) {
	values := map[string]string{}
	for _, key := range Keys() {
		b, err := os.ReadFile(filepath.Join(dir, key))
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading config file %s: %w", filepath.Join(dir, key), err)
		}
		values[key] = strings.TrimSpace(string(b))
	}
	return values, nil
}

func lookup(env map[string]string, key, def string) string {
	if v, ok := env[key]; ok && v != "" {
		return v
	}
	return def
}

// EnvNames returns every environment variable the function reads its configuration from:
// each key, its UPPER_SNAKE_CASE alias, CONFIG_DIR, CONFIG_MAP and the process settings
// (DRY_RUN, LOG_LEVEL, KUBE_API_QPS, KUBE_API_BURST, SENDER_AUDIENCE, SENDER_IDENTITIES).
func EnvNames() []string {
	names := []string{KeyConfigDir, KeyConfigMap, KeyDryRun, KeyLogLevel, KeyAPIQPS, KeyAPIBurst, KeySenderAudience, KeySenderIdentities}
	for i := range keys {
		names = append(names, keys[i].Name, keys[i].Env)
	}
	return names
}
