package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode"
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

// KeySenderAudience turns on sender authentication: every event must carry an
// `Authorization: Bearer` token the API server accepts (a TokenReview) for this audience, the
// audience Knative Eventing's OIDC authentication issues the senders' tokens for (the Trigger's
// spec.subscriber.audience). Unset or empty: off, the default. KeySenderIdentities, optional,
// lists the user names allowed to send (comma-separated, e.g.
// system:serviceaccount:<namespace>:<name>); a valid token of another is refused. Both are
// read from the environment only, never from the followed ConfigMap: whoever may edit the
// ConfigMap must not be able to turn authentication off.
const (
	KeySenderAudience   = "SENDER_AUDIENCE"
	KeySenderIdentities = "SENDER_IDENTITIES"
)

// maxSenderValue bounds the audience and each identity.
const maxSenderValue = 1024

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
	// SenderAudience is SENDER_AUDIENCE: "" means no sender authentication.
	SenderAudience string
	// SenderIdentities is SENDER_IDENTITIES: the user names allowed to send (empty: any user
	// with a valid token for SenderAudience).
	SenderIdentities []string
}

// LoadProcess reads DRY_RUN, LOG_LEVEL, KUBE_API_QPS, KUBE_API_BURST, SENDER_AUDIENCE and
// SENDER_IDENTITIES from env (the environment func-go hands Start). Every invalid value is reported, joined in one error of
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
	p.SenderAudience, p.SenderIdentities, errs = loadSenders(env, errs)
	return p, errors.Join(errs...)
}

// loadSenders reads SENDER_AUDIENCE and SENDER_IDENTITIES.
func loadSenders(env map[string]string, errs []error) (string, []string, []error) {
	audience := strings.TrimSpace(env[KeySenderAudience])
	if bad := senderValueProblem(audience); audience != "" && bad != "" {
		errs = append(errs, &KeyError{Key: KeySenderAudience, Value: audience, Reason: "an audience " + bad})
	}
	raw := strings.TrimSpace(env[KeySenderIdentities])
	if raw == "" {
		return audience, nil, errs
	}
	if audience == "" {
		return audience, nil, append(errs, &KeyError{Key: KeySenderIdentities, Value: raw,
			Reason: "needs " + KeySenderAudience + ": identities are checked on verified tokens only, and without an audience no token is verified"})
	}
	var ids []string
	for _, id := range strings.Split(raw, ",") {
		id = strings.TrimSpace(id)
		if bad := senderValueProblem(id); bad != "" {
			errs = append(errs, &KeyError{Key: KeySenderIdentities, Value: raw, Reason: fmt.Sprintf("identity %q: a user name %s", id, bad)})
			continue
		}
		ids = append(ids, id)
	}
	return audience, ids, errs
}

// senderValueProblem says what is wrong with an audience or a user name ("" for nothing).
func senderValueProblem(v string) string {
	switch {
	case v == "":
		return "cannot be empty"
	case len(v) > maxSenderValue:
		return fmt.Sprintf("is at most %d bytes", maxSenderValue)
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "cannot hold spaces or control characters"
	}
	return ""
}
