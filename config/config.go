// Package config holds the function's configuration: its keys, defaults, parsing and
// validation. Values come from environment variables (func.yaml run.envs, or a ConfigMap
// imported with `{{ configMap:vpa-graceful-drain }}`) and from files in a mounted ConfigMap
// directory; an environment variable wins over a file.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Keys, as written in config/configmap.yaml. Each may also be given in UPPER_SNAKE_CASE
// (GRACE_PERIOD_SECONDS) for environments where camelCase variables are awkward.
const (
	KeyGracePeriodSeconds   = "gracePeriodSeconds"
	KeyDrainTimeoutSeconds  = "drainTimeoutSeconds"
	KeyNamespaceSelector    = "namespaceSelector"
	KeyDetectVpaAnnotations = "detectVpaAnnotations"
	KeySweepIntervalSeconds = "sweepIntervalSeconds"
	KeyHoldOn               = "holdOn"
	KeyWorkloadDefaults     = "workloadDefaults"
	KeyEnsurePDB            = "ensurePodDisruptionBudget"
	// Surge rollouts (README "Surge rollouts"): the switch, and the VPA updater's settings
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

// AnnotationUninstalling on the followed ConfigMap ("true") puts every replica in uninstall
// mode; `release-finalizers` sets it.
const AnnotationUninstalling = "vpagracefuldrain.dev/uninstalling"

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

// Default returns the documented defaults.
func Default() Config {
	return Config{
		GracePeriod:          30 * time.Second,
		DrainTimeout:         300 * time.Second,
		Namespaces:           NamespaceSelector{Exclude: []string{"kube-system", "kube-public", "kube-node-lease"}},
		DetectVpaAnnotations: true,
		SweepInterval:        60 * time.Second,
		HoldOn:               HoldEvictions,
		Surge: Surge{PodUpdateThreshold: 0.1, InBoundsLifetime: 12 * time.Hour, EvictAfterOOM: 10 * time.Minute,
			UseAdmissionControllerStatus: true, MaxInFlight: 2, MaxPerMinute: 6, CoolDown: 30 * time.Minute, PendingTimeout: 5 * time.Minute,
			Timeout: 15 * time.Minute, MaxAttempts: 2, StatusLeaseNamespace: "kube-system"},
	}
}

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
	for _, key := range Keys() {
		if v, ok := env[key]; ok {
			values[key] = v
		} else if v, ok := env[upperSnake(key)]; ok {
			values[key] = v
		}
	}
	return values, nil
}

// Keys returns the configuration keys, in the order they are documented.
func Keys() []string {
	return []string{KeyGracePeriodSeconds, KeyDrainTimeoutSeconds, KeyNamespaceSelector, KeyDetectVpaAnnotations, KeySweepIntervalSeconds,
		KeyHoldOn, KeyWorkloadDefaults, KeyEnsurePDB, KeySurgeRollout, KeyPodUpdateThreshold, KeyInRecommendationBoundsLifetime,
		KeyEvictAfterOOMThreshold, KeyUseAdmissionControllerStatus, KeySurgeMaxInFlight, KeySurgeMaxPerMinute, KeySurgeCoolDown,
		KeySurgePendingTimeout, KeySurgeRolloutTimeout, KeySurgeMaxAttempts, KeyAdmissionControllerStatusLeaseNamespace}
}

// Parse validates a map of key to raw value (missing keys take their defaults).
func Parse(values map[string]string) (Config, error) {
	cfg := Default()
	var errs []error
	if v, ok := values[KeyGracePeriodSeconds]; ok {
		d, err := ParseSeconds(v, 0)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyGracePeriodSeconds, Value: v, Reason: err.Error()})
		}
		cfg.GracePeriod = d
	}
	if v, ok := values[KeyDrainTimeoutSeconds]; ok {
		d, err := ParseSeconds(v, 1)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyDrainTimeoutSeconds, Value: v, Reason: err.Error()})
		}
		cfg.DrainTimeout = d
	}
	if v, ok := values[KeyNamespaceSelector]; ok {
		sel, err := parseSelector(v)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyNamespaceSelector, Value: v, Reason: err.Error()})
		}
		cfg.Namespaces = sel
	}
	if v, ok := values[KeyDetectVpaAnnotations]; ok {
		b, err := ParseBool(v)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyDetectVpaAnnotations, Value: v, Reason: err.Error()})
		}
		cfg.DetectVpaAnnotations = b
	}
	if v, ok := values[KeySweepIntervalSeconds]; ok {
		d, err := ParseSeconds(v, MinSweepSeconds)
		if err == nil && d > MaxSweepSeconds*time.Second {
			err = fmt.Errorf("must be between %d and %d seconds", MinSweepSeconds, MaxSweepSeconds)
		}
		if err != nil {
			errs = append(errs, &KeyError{Key: KeySweepIntervalSeconds, Value: v, Reason: err.Error() +
				" (sweeps are the last safety net for drains whose events were lost: they cannot be turned off)"})
		}
		cfg.SweepInterval = d
	}
	if v, ok := values[KeyHoldOn]; ok {
		h, err := parseHoldOn(v)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyHoldOn, Value: v, Reason: err.Error()})
		}
		cfg.HoldOn = h
	}
	if v, ok := values[KeyWorkloadDefaults]; ok {
		w, err := parseWorkloads(v)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyWorkloadDefaults, Value: v, Reason: err.Error()})
		}
		cfg.Workloads = w
	}
	if v, ok := values[KeyEnsurePDB]; ok {
		b, err := ParseBool(v)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyEnsurePDB, Value: v, Reason: err.Error()})
		}
		cfg.EnsurePDB = b
	}
	errs = append(errs, parseSurge(values, &cfg.Surge)...)
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

// parseSurge reads the surge-rollout keys into s.
func parseSurge(values map[string]string, s *Surge) []error {
	var errs []error
	for _, b := range []struct {
		key string
		to  *bool
	}{{KeySurgeRollout, &s.Enabled}, {KeyUseAdmissionControllerStatus, &s.UseAdmissionControllerStatus}} {
		if v, ok := values[b.key]; ok {
			x, err := ParseBool(v)
			if err != nil {
				errs = append(errs, &KeyError{Key: b.key, Value: v, Reason: err.Error()})
			}
			*b.to = x
		}
	}
	if v, ok := values[KeyPodUpdateThreshold]; ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 10 {
			errs = append(errs, &KeyError{Key: KeyPodUpdateThreshold, Value: v, Reason: "must be a fraction between 0 and 10 (the VPA updater's --pod-update-threshold, default 0.1)"})
		}
		s.PodUpdateThreshold = f
	}
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{KeyInRecommendationBoundsLifetime, &s.InBoundsLifetime}, {KeyEvictAfterOOMThreshold, &s.EvictAfterOOM}} {
		if v, ok := values[d.key]; ok {
			x, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil || x < 0 || x > 7*24*time.Hour {
				errs = append(errs, &KeyError{Key: d.key, Value: v, Reason: "must be a duration like 12h or 10m, between 0 and 168h (as the VPA updater's flag)"})
			}
			*d.to = x
		}
	}
	for _, n := range []struct {
		key string
		to  *int
		max int
	}{{KeySurgeMaxInFlight, &s.MaxInFlight, 1000}, {KeySurgeMaxPerMinute, &s.MaxPerMinute, 1000}, {KeySurgeMaxAttempts, &s.MaxAttempts, 100}} {
		if v, ok := values[n.key]; ok {
			x, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || x < 1 || x > n.max {
				errs = append(errs, &KeyError{Key: n.key, Value: v, Reason: fmt.Sprintf("must be a whole number between 1 and %d", n.max)})
			}
			*n.to = x
		}
	}
	for _, d := range []struct {
		key      string
		to       *time.Duration
		min, max time.Duration
	}{{KeySurgeCoolDown, &s.CoolDown, 0, 7 * 24 * time.Hour}, {KeySurgePendingTimeout, &s.PendingTimeout, time.Second, 24 * time.Hour},
		{KeySurgeRolloutTimeout, &s.Timeout, time.Minute, 24 * time.Hour}} {
		if v, ok := values[d.key]; ok {
			x, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil || x < d.min || x > d.max {
				errs = append(errs, &KeyError{Key: d.key, Value: v, Reason: fmt.Sprintf("must be a duration like 30m, between %s and %s", d.min, d.max)})
			}
			*d.to = x
		}
	}
	if v, ok := values[KeyAdmissionControllerStatusLeaseNamespace]; ok {
		ns := strings.TrimSpace(v)
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, &KeyError{Key: KeyAdmissionControllerStatusLeaseNamespace, Value: v,
				Reason: "must be a namespace name (the VPA updater's --admission-controller-status-lease-namespace): " + strings.Join(msgs, "; ")})
		}
		s.StatusLeaseNamespace = ns
	}
	return errs
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
	for _, k := range Keys() {
		names = append(names, k, upperSnake(k))
	}
	return names
}

// upperSnake turns gracePeriodSeconds into GRACE_PERIOD_SECONDS.
func upperSnake(key string) string {
	var b strings.Builder
	for i, r := range key {
		if r >= 'A' && r <= 'Z' && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
