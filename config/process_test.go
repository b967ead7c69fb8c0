package config_test

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/config"
)

func TestLoadProcess(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    config.Process
		wantKey string
	}{
		{"defaults", nil, config.Process{LogLevel: slog.LevelInfo}, ""},
		{"dry-run and debug", map[string]string{"DRY_RUN": "true", "LOG_LEVEL": "debug"}, config.Process{DryRun: true, LogLevel: slog.LevelDebug}, ""},
		{"upper case level, blank dry-run", map[string]string{"DRY_RUN": " ", "LOG_LEVEL": "WARN"}, config.Process{LogLevel: slog.LevelWarn}, ""},
		{"bad dry-run", map[string]string{"DRY_RUN": "perhaps"}, config.Process{}, config.KeyDryRun},
		{"bad level", map[string]string{"LOG_LEVEL": "loud"}, config.Process{}, config.KeyLogLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.LoadProcess(tt.env)
			if tt.wantKey != "" {
				var keyErr *config.KeyError
				require.ErrorAs(t, err, &keyErr)
				assert.Equal(t, tt.wantKey, keyErr.Key)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
