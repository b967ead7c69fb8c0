package config_test

import (
	"log/slog"
	"strings"
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
		{"defaults", nil, config.Process{LogLevel: slog.LevelInfo, APIQPS: 500, APIBurst: 1000}, ""},
		{"dry-run and debug", map[string]string{"DRY_RUN": "true", "LOG_LEVEL": "debug"}, config.Process{DryRun: true, LogLevel: slog.LevelDebug, APIQPS: 500, APIBurst: 1000}, ""},
		{"upper case level, blank dry-run", map[string]string{"DRY_RUN": " ", "LOG_LEVEL": "WARN"}, config.Process{LogLevel: slog.LevelWarn, APIQPS: 500, APIBurst: 1000}, ""},
		{"qps alone: burst twice it", map[string]string{"KUBE_API_QPS": "50"}, config.Process{LogLevel: slog.LevelInfo, APIQPS: 50, APIBurst: 100}, ""},
		{"qps and burst", map[string]string{"KUBE_API_QPS": "20.5", "KUBE_API_BURST": "30"}, config.Process{LogLevel: slog.LevelInfo, APIQPS: 20.5, APIBurst: 30}, ""},
		{"no client-side limit", map[string]string{"KUBE_API_QPS": "-1"}, config.Process{LogLevel: slog.LevelInfo, APIQPS: -1, APIBurst: 1000}, ""},
		{"qps zero", map[string]string{"KUBE_API_QPS": "0"}, config.Process{}, config.KeyAPIQPS},
		{"qps below one", map[string]string{"KUBE_API_QPS": "0.5"}, config.Process{}, config.KeyAPIQPS},
		{"qps not a number", map[string]string{"KUBE_API_QPS": "fast"}, config.Process{}, config.KeyAPIQPS},
		{"burst not a number", map[string]string{"KUBE_API_BURST": "lots"}, config.Process{}, config.KeyAPIBurst},
		{"burst below qps", map[string]string{"KUBE_API_QPS": "100", "KUBE_API_BURST": "10"}, config.Process{}, config.KeyAPIBurst},
		{"bad dry-run", map[string]string{"DRY_RUN": "perhaps"}, config.Process{}, config.KeyDryRun},
		{"bad level", map[string]string{"LOG_LEVEL": "loud"}, config.Process{}, config.KeyLogLevel},
		{"sender audience", map[string]string{"SENDER_AUDIENCE": " vpa-graceful-drain "},
			config.Process{LogLevel: slog.LevelInfo, APIQPS: 500, APIBurst: 1000, SenderAudience: "vpa-graceful-drain"}, ""},
		{"sender audience and identities", map[string]string{"SENDER_AUDIENCE": "a", "SENDER_IDENTITIES": "system:serviceaccount:ns:x, system:serviceaccount:ns:y"},
			config.Process{LogLevel: slog.LevelInfo, APIQPS: 500, APIBurst: 1000, SenderAudience: "a", SenderIdentities: []string{"system:serviceaccount:ns:x", "system:serviceaccount:ns:y"}}, ""},
		{"blank sender audience: off", map[string]string{"SENDER_AUDIENCE": "  ", "SENDER_IDENTITIES": " "}, config.Process{LogLevel: slog.LevelInfo, APIQPS: 500, APIBurst: 1000}, ""},
		{"identities without an audience", map[string]string{"SENDER_IDENTITIES": "system:serviceaccount:ns:x"}, config.Process{}, config.KeySenderIdentities},
		{"audience with a space", map[string]string{"SENDER_AUDIENCE": "my audience"}, config.Process{}, config.KeySenderAudience},
		{"audience with a control character", map[string]string{"SENDER_AUDIENCE": "a\x00b"}, config.Process{}, config.KeySenderAudience},
		{"audience too long", map[string]string{"SENDER_AUDIENCE": strings.Repeat("a", 1025)}, config.Process{}, config.KeySenderAudience},
		{"an empty identity", map[string]string{"SENDER_AUDIENCE": "a", "SENDER_IDENTITIES": "x,,y"}, config.Process{}, config.KeySenderIdentities},
		{"an identity with a space", map[string]string{"SENDER_AUDIENCE": "a", "SENDER_IDENTITIES": "system:serviceaccount:ns:x y"}, config.Process{}, config.KeySenderIdentities},
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
