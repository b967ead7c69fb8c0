package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// KeySpec is one configuration key. The table keys is the one place a key is defined: Keys,
// Default, Parse, Values, EnvNames, Config.LogValues and Config.Data derive from it, and
// tests check config/configmap.yaml against it. A key is added as one entry (with its field in
// Config and, for the code that reads it, a Key constant).
type KeySpec struct {
	// Name is the key as written in config/configmap.yaml and as an environment variable.
	Name string
	// Env is the key's UPPER_SNAKE_CASE alias, for environments where camelCase variables are
	// awkward (GRACE_PERIOD_SECONDS); a camelCase variable wins over it.
	Env string
	// Default is the key's default value, as written in config/configmap.yaml.
	Default string
	// Doc says in a line what the key sets.
	Doc string
	field
}

// field reads a key into its Config field and shows the field's value.
type field struct {
	// parse sets the key's field of c from the raw value v; its error is the KeyError's Reason.
	parse func(v string, c *Config) error
	// value is the field's value in c: logged under the key's name, and rendered as the
	// ConfigMap would write it (Data).
	value func(c *Config) slog.Value
}

// keys is the table of configuration keys, in the order they are documented.
var keys = [...]KeySpec{
	{Name: KeyGracePeriodSeconds, Env: "GRACE_PERIOD_SECONDS", Default: "30",
		Doc:   "Minimum seconds a drain lasts after the pod is evicted (0..86400).",
		field: seconds(0, func(c *Config) *time.Duration { return &c.GracePeriod })},
	{Name: KeyDrainTimeoutSeconds, Env: "DRAIN_TIMEOUT_SECONDS", Default: "300",
		Doc:   "Seconds after which the finalizer is removed whatever else holds (1..86400, >= gracePeriodSeconds).",
		field: seconds(1, func(c *Config) *time.Duration { return &c.DrainTimeout })},
	{Name: KeyNamespaceSelector, Env: "NAMESPACE_SELECTOR", Default: `{"exclude":["kube-system","kube-public","kube-node-lease"]}`,
		Doc: "Namespaces whose pods may be managed (JSON include and exclude lists): exclude wins, an empty include means all.",
		field: field{
			parse: func(v string, c *Config) (err error) { c.Namespaces, err = parseSelector(v); return err },
			value: func(c *Config) slog.Value { return slog.AnyValue(c.Namespaces) },
		}},
	{Name: KeyDetectVpaAnnotations, Env: "DETECT_VPA_ANNOTATIONS", Default: "true",
		Doc:   "Also manage pods that carry VPA's own annotations (vpaUpdates, vpaObservedContainers, legacy ones).",
		field: boolean(func(c *Config) *bool { return &c.DetectVpaAnnotations })},
	{Name: KeySweepIntervalSeconds, Env: "SWEEP_INTERVAL_SECONDS", Default: "60",
		Doc: "Seconds between sweeps that reconcile every pod again (5..900: sweeps cannot be turned off).",
		field: field{
			parse: func(v string, c *Config) error {
				d, err := ParseSeconds(v, MinSweepSeconds)
				if err == nil && d > MaxSweepSeconds*time.Second {
					err = fmt.Errorf("must be between %d and %d seconds", MinSweepSeconds, MaxSweepSeconds)
				}
				if err != nil {
					return fmt.Errorf("%w (sweeps are the last safety net for drains whose events were lost: they cannot be turned off)", err)
				}
				c.SweepInterval = d
				return nil
			},
			value: func(c *Config) slog.Value { return slog.IntValue(int(c.SweepInterval.Seconds())) },
		}},
	{Name: KeyHoldOn, Env: "HOLD_ON", Default: string(HoldEvictions),
		Doc: `Which deletions of a managed pod are held while it drains: "evictions" (through the Eviction API) or "all".`,
		field: field{
			parse: func(v string, c *Config) (err error) { c.HoldOn, err = parseHoldOn(v); return err },
			value: func(c *Config) slog.Value { return slog.StringValue(string(c.HoldOn)) },
		}},
	{Name: KeyWorkloadDefaults, Env: "WORKLOAD_DEFAULTS", Default: "{}",
		Doc: "Per owner kind, what a drain waits for (JSON: kind -> manage, gracePeriodSeconds and a wait field per gate).",
		field: field{
			parse: func(v string, c *Config) (err error) { c.Workloads, err = parseWorkloads(v); return err },
			value: func(c *Config) slog.Value {
				if c.Workloads == nil {
					return slog.AnyValue(map[Kind]WorkloadOverride{}) // {}, as the ConfigMap writes none
				}
				return slog.AnyValue(c.Workloads)
			},
		}},
	{Name: KeyEnsurePDB, Env: "ENSURE_POD_DISRUPTION_BUDGET", Default: "false",
		Doc:   "Create a PodDisruptionBudget (maxUnavailable 1) for each managed Deployment or StatefulSet of 2 or more replicas that none selects.",
		field: boolean(func(c *Config) *bool { return &c.EnsurePDB })},
	{Name: KeySurgeRollout, Env: "SURGE_ROLLOUT", Default: "false",
		Doc:   "Surge rollouts: restart an opted-in Deployment's rollout where VPA's updater would evict its pods.",
		field: boolean(func(c *Config) *bool { return &c.Surge.Enabled })},
	// The VPA updater's settings default to its own (DefaultUpdaterConfig, which this package
	// cannot import: the drain policy imports it and must not depend on client-go);
	// handlers/surge's TestDefaultsAreVPAUpdaters compares each default with VPA's.
	{Name: KeyPodUpdateThreshold, Env: "POD_UPDATE_THRESHOLD", Default: "0.1",
		Doc: "The VPA updater's --pod-update-threshold: the minimum change of a pod in its recommendation's bounds.",
		field: field{
			parse: func(v string, c *Config) error {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 10 {
					return errors.New("must be a fraction between 0 and 10 (the VPA updater's --pod-update-threshold, default 0.1)")
				}
				c.Surge.PodUpdateThreshold = f
				return nil
			},
			value: func(c *Config) slog.Value { return slog.Float64Value(c.Surge.PodUpdateThreshold) },
		}},
	{Name: KeyInRecommendationBoundsLifetime, Env: "IN_RECOMMENDATION_BOUNDS_EVICTION_LIFETIME_THRESHOLD", Default: "12h",
		Doc:   "The VPA updater's --in-recommendation-bounds-eviction-lifetime-threshold: how long a pod in its bounds must have run.",
		field: duration(0, 7*24*time.Hour, vpaDurationReason, func(c *Config) *time.Duration { return &c.Surge.InBoundsLifetime })},
	{Name: KeyEvictAfterOOMThreshold, Env: "EVICT_AFTER_OOM_THRESHOLD", Default: "10m",
		Doc:   "The VPA updater's --evict-after-oom-threshold: the quick-OOM window.",
		field: duration(0, 7*24*time.Hour, vpaDurationReason, func(c *Config) *time.Duration { return &c.Surge.EvictAfterOOM })},
	{Name: KeyUseAdmissionControllerStatus, Env: "USE_ADMISSION_CONTROLLER_STATUS", Default: "true",
		Doc:   "The VPA updater's --use-admission-controller-status: restart only while VPA's admission controller reports itself alive.",
		field: boolean(func(c *Config) *bool { return &c.Surge.UseAdmissionControllerStatus })},
	{Name: KeySurgeMaxInFlight, Env: "SURGE_MAX_IN_FLIGHT", Default: "2",
		Doc:   "At most this many surge rollouts at once, over every Deployment (1..1000).",
		field: wholeNumber(1000, func(c *Config) *int { return &c.Surge.MaxInFlight })},
	{Name: KeySurgeMaxPerMinute, Env: "SURGE_MAX_PER_MINUTE", Default: "6",
		Doc:   "At most this many surge rollouts started a minute, over every Deployment (1..1000).",
		field: wholeNumber(1000, func(c *Config) *int { return &c.Surge.MaxPerMinute })},
	{Name: KeySurgeCoolDown, Env: "SURGE_COOL_DOWN", Default: "30m",
		Doc:   "A Deployment's next surge rollout no sooner than this after its last (doubling when selected again within the lifetime threshold).",
		field: duration(0, 7*24*time.Hour, "", func(c *Config) *time.Duration { return &c.Surge.CoolDown })},
	{Name: KeySurgePendingTimeout, Env: "SURGE_PENDING_TIMEOUT", Default: "5m",
		Doc:   "A surge pod Pending longer than this aborts its rollout.",
		field: duration(time.Second, 24*time.Hour, "", func(c *Config) *time.Duration { return &c.Surge.PendingTimeout })},
	{Name: KeySurgeRolloutTimeout, Env: "SURGE_ROLLOUT_TIMEOUT", Default: "15m",
		Doc:   "Every surge rollout's deadline (it also bounds a Deployment's progressDeadlineSeconds): one not complete by then is aborted.",
		field: duration(time.Minute, 24*time.Hour, "", func(c *Config) *time.Duration { return &c.Surge.Timeout })},
	{Name: KeySurgeMaxAttempts, Env: "SURGE_MAX_ATTEMPTS", Default: "2",
		Doc:   "After this many surge rollouts of one Deployment in a row were aborted, its surge rollouts stop (1..100).",
		field: wholeNumber(100, func(c *Config) *int { return &c.Surge.MaxAttempts })},
	{Name: KeyAdmissionControllerStatusLeaseNamespace, Env: "ADMISSION_CONTROLLER_STATUS_LEASE_NAMESPACE", Default: "kube-system",
		Doc: "The VPA updater's --admission-controller-status-lease-namespace: where VPA's admission controller writes its status Lease.",
		field: field{
			parse: func(v string, c *Config) error {
				ns := strings.TrimSpace(v)
				if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
					return fmt.Errorf("must be a namespace name (the VPA updater's --admission-controller-status-lease-namespace): %s", strings.Join(msgs, "; "))
				}
				c.Surge.StatusLeaseNamespace = ns
				return nil
			},
			value: func(c *Config) slog.Value { return slog.StringValue(c.Surge.StatusLeaseNamespace) },
		}},
}

// vpaDurationReason is the reason of an invalid duration of the VPA updater's flags.
const vpaDurationReason = "must be a duration like 12h or 10m, between 0 and 168h (as the VPA updater's flag)"

// seconds is a field of whole seconds in [minimum, MaxSeconds] (ParseSeconds).
func seconds(minimum int, to func(*Config) *time.Duration) field {
	return field{
		parse: func(v string, c *Config) error {
			d, err := ParseSeconds(v, minimum)
			if err != nil {
				return err
			}
			*to(c) = d
			return nil
		},
		value: func(c *Config) slog.Value { return slog.IntValue(int(to(c).Seconds())) },
	}
}

// boolean is a field of ParseBool.
func boolean(to func(*Config) *bool) field {
	return field{
		parse: func(v string, c *Config) error {
			b, err := ParseBool(v)
			if err != nil {
				return err
			}
			*to(c) = b
			return nil
		},
		value: func(c *Config) slog.Value { return slog.BoolValue(*to(c)) },
	}
}

// wholeNumber is a field of a whole number in [1, maximum].
func wholeNumber(maximum int, to func(*Config) *int) field {
	return field{
		parse: func(v string, c *Config) error {
			x, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || x < 1 || x > maximum {
				return fmt.Errorf("must be a whole number between 1 and %d", maximum)
			}
			*to(c) = x
			return nil
		},
		value: func(c *Config) slog.Value { return slog.IntValue(*to(c)) },
	}
}

// duration is a field of a Go duration in [minimum, maximum]; reason ("": "must be a duration
// like 30m, between MIN and MAX") is why another value is invalid.
func duration(minimum, maximum time.Duration, reason string, to func(*Config) *time.Duration) field {
	if reason == "" {
		reason = fmt.Sprintf("must be a duration like 30m, between %s and %s", minimum, maximum)
	}
	return field{
		parse: func(v string, c *Config) error {
			x, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil || x < minimum || x > maximum {
				return errors.New(reason)
			}
			*to(c) = x
			return nil
		},
		value: func(c *Config) slog.Value { return slog.StringValue(to(c).String()) },
	}
}

// KeySpecs returns the table of configuration keys, in the order they are documented.
func KeySpecs() []KeySpec {
	return append([]KeySpec(nil), keys[:]...)
}

// Keys returns the configuration keys, in the order they are documented.
func Keys() []string {
	names := make([]string, len(keys))
	for i := range keys {
		names[i] = keys[i].Name
	}
	return names
}

// LogValues are every key's effective value in c, in the order the keys are documented, as
// the startup log shows them: whole seconds and counts as numbers, switches as booleans,
// durations as Go durations (12h0m0s), JSON keys as objects.
func (c Config) LogValues() []slog.Attr {
	attrs := make([]slog.Attr, len(keys))
	for i := range keys {
		attrs[i] = slog.Attr{Key: keys[i].Name, Value: keys[i].value(&c)}
	}
	return attrs
}
