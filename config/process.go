package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// KeyLogLevel sets the level of the function's and the func-go runtime's logs.
const KeyLogLevel = "LOG_LEVEL"

// KeyAPIQPS and KeyAPIBurst set client-go's client-side rate limit of the function's requests
// to the Kubernetes API: a steady rate (requests per second) and a burst. KUBE_API_QPS=-1
// turns the client-side limit off and leaves the protection to the API server's own Priority
// and Fairness (which answers 429 and client-go retries).
const (
	KeyAPIQPS   = "KUBE_API_QPS"
	KeyAPIBurst = "KUBE_API_BURST"
)

// The default client-side limit: high enough that a burst of 1,000 evictions (a drain stamp,
// a release and two Events each, within seconds) is not queued in the function, low enough to
// stop a runaway loop well before it costs the API server. client-go's own default (5, 10)
// and the function's earlier (50, 100) held such a burst for over a minute.
const (
	DefaultAPIQPS   = 500
	DefaultAPIBurst = 1000
)

// Process is the configuration of the process itself, read once at Start (unlike Config, it
// does not follow the ConfigMap).
type Process struct {
	// DryRun makes the function decide and reply but never write (DRY_RUN).
	DryRun bool
	// LogLevel is LOG_LEVEL: debug, info (default), warn or error.
	LogLevel slog.Level
	// APIQPS and APIBurst are the client-side rate limit of the API client (KUBE_API_QPS,
	// KUBE_API_BURST); a negative APIQPS means no client-side limit.
	APIQPS   float32
	APIBurst int
}

// LoadProcess reads DRY_RUN, LOG_LEVEL, KUBE_API_QPS and KUBE_API_BURST from env (the
// environment func-go hands Start). Every invalid value is reported, joined in one error of
// KeyErrors.
func LoadProcess(env map[string]string) (Process, error) {
	p := Process{LogLevel: slog.LevelInfo, APIQPS: DefaultAPIQPS, APIBurst: DefaultAPIBurst}
	var errs []error
	if v := strings.TrimSpace(env[KeyDryRun]); v != "" {
		b, err := ParseBool(v)
		if err != nil {
			errs = append(errs, &KeyError{Key: KeyDryRun, Value: v, Reason: err.Error()})
		}
		p.DryRun = b
	}
	if v := strings.TrimSpace(env[KeyLogLevel]); v != "" {
		if err := p.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, &KeyError{Key: KeyLogLevel, Value: v, Reason: "not a level (use debug, info, warn or error)"})
		}
	}
	burstSet := false
	if v := strings.TrimSpace(env[KeyAPIQPS]); v != "" {
		q, err := strconv.ParseFloat(v, 32)
		switch {
		case err != nil || q == 0 || (q > 0 && q < 1) || q > 100000:
			errs = append(errs, &KeyError{Key: KeyAPIQPS, Value: v, Reason: "must be a number of requests per second from 1 to 100000, or -1 for no client-side limit"})
		case q < 0:
			p.APIQPS = -1
		default:
			p.APIQPS = float32(q)
			p.APIBurst = max(int(2*q), 1)
		}
	}
	if v := strings.TrimSpace(env[KeyAPIBurst]); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil || b < 1 || b > 200000 {
			errs = append(errs, &KeyError{Key: KeyAPIBurst, Value: v, Reason: "must be a whole number of requests from 1 to 200000"})
		} else {
			p.APIBurst, burstSet = b, true
		}
	}
	if burstSet && p.APIQPS > 0 && float32(p.APIBurst) < p.APIQPS {
		errs = append(errs, &KeyError{Key: KeyAPIBurst, Value: strconv.Itoa(p.APIBurst), Reason: fmt.Sprintf("must be at least %s (%g)", KeyAPIQPS, p.APIQPS)})
	}
	return p, errors.Join(errs...)
}
