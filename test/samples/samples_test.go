package samples_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/test/samples"
)

func TestEverySampleParses(t *testing.T) {
	files, err := filepath.Glob(samples.Path("*.http"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			req, err := samples.Read(f)
			require.NoError(t, err)
			assert.NotEmpty(t, req.Header.Get("Ce-Type"))
			assert.NotEmpty(t, req.Body)
			for _, k := range []string{"Accept-Encoding", "User-Agent", "Content-Length"} {
				assert.Empty(t, req.Header.Values(k), "a client's own header %s is left out", k)
			}
			assert.NotContains(t, string(req.Body), "{{now", "every token is replaced")
		})
	}
}

func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.FixedZone("x", 3600))
	raw := "POST / HTTP/1.1\nCe-Type: t\nContent-Length: 99\nUser-Agent: curl\n\n" +
		`{"a":"{{now}}","b":"{{now-40s}}","c":"{{now+260s}}"}` + "\n"
	req, err := samples.Parse([]byte(raw), now)
	require.NoError(t, err)
	assert.Equal(t, `{"a":"2026-11-26T04:00:00Z","b":"2026-11-26T03:59:20Z","c":"2026-11-26T04:04:20Z"}`, string(req.Body))
	assert.Equal(t, "t", req.Header.Get("Ce-Type"))
	assert.Empty(t, req.Header.Get("Content-Length"))
	assert.Empty(t, req.Header.Get("User-Agent"))

	crlf := "POST / HTTP/1.1\r\nCe-Type: t\r\n\r\n{}\r\n"
	req, err = samples.Parse([]byte(crlf), now)
	require.NoError(t, err)
	assert.Equal(t, "{}", string(req.Body))

	_, err = samples.Parse([]byte("POST / HTTP/1.1\nCe-Type: t\n"), now)
	assert.Error(t, err, "no blank line after the headers")
}

func TestDirIsTestEvents(t *testing.T) {
	_, err := os.Stat(filepath.Join(samples.Dir(), "invoke.sh"))
	assert.NoError(t, err)
}
