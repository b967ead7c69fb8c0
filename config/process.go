package config

import (
	"errors"
	"log/slog"
	"strings"
)

// KeyLogLevel sets the level of the function's and the func-go runtime's logs.
const KeyLogLevel = "LOG_LEVEL"

// Process is the configuration of the process itself, read once at Start (unlike Config, it
// does not follow the ConfigMap).
type Process struct {
	// DryRun makes the function decide and reply but never write (DRY_RUN).
	DryRun bool
	// LogLevel is LOG_LEVEL: debug, info (default), warn or error.
	LogLevel slog.Level
}

// LoadProcess reads DRY_RUN and LOG_LEVEL from env (the environment func-go hands Start).
// Every invalid value is reported, joined in one error of KeyErrors.
func LoadProcess(env map[string]string) (Process, error) {
	p := Process{LogLevel: slog.LevelInfo}
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
	return p, errors.Join(errs...)
}
