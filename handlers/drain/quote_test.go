package drain_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/handlers/drain"
)

func TestQuote(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	const limit = drain.MaxQuoted
	tests := []struct {
		name string
		v    string
		want string
		// kept is how many bytes of v a cut value keeps (0: not cut).
		kept int
	}{
		{name: "empty", v: "", want: `""`},
		{name: "short", v: "30", want: `"30"`},
		{name: "a control character", v: "30\x01", want: `"30\x01"`},
		{name: "a newline and a tab", v: "1\n2\t", want: `"1\n2\t"`},
		{name: "invalid UTF-8", v: "\xff\xfe", want: `"\xff\xfe"`},
		{name: "multi-byte runes, short", v: "grâce ⏳", want: `"grâce ⏳"`},
		{name: "exactly the limit", v: a(limit), want: `"` + a(limit) + `"`},
		{name: "one byte over", v: a(limit + 1), want: `"` + a(limit) + `…" (257 bytes)`, kept: limit},
		{name: "3 MiB", v: a(3 << 20), want: `"` + a(limit) + `…" (3145728 bytes)`, kept: limit},
		{name: "3 MiB of control characters", v: strings.Repeat("\x01", 3<<20), want: `"` + strings.Repeat(`\x01`, limit) + `…" (3145728 bytes)`, kept: limit},
		{name: "a 2-byte rune across the limit", v: a(limit-1) + "é" + a(10), want: `"` + a(limit-1) + `…" (267 bytes)`, kept: limit - 1},
		{name: "a 2-byte rune ending at the limit", v: a(limit-2) + "é" + a(10), want: `"` + a(limit-2) + `é…" (266 bytes)`, kept: limit},
		{name: "a 3-byte rune, one byte in", v: a(limit-1) + "⏳" + a(10), want: `"` + a(limit-1) + `…" (268 bytes)`, kept: limit - 1},
		{name: "a 3-byte rune, two bytes in", v: a(limit-2) + "⏳" + a(10), want: `"` + a(limit-2) + `…" (267 bytes)`, kept: limit - 2},
		{name: "a 4-byte rune, three bytes in", v: a(limit-3) + "🚀" + a(10), want: `"` + a(limit-3) + `…" (267 bytes)`, kept: limit - 3},
		{name: "a 4-byte rune ending at the limit", v: a(limit-4) + "🚀" + a(10), want: `"` + a(limit-4) + `🚀…" (266 bytes)`, kept: limit},
		{name: "invalid UTF-8 across the limit: escaped byte by byte", v: strings.Repeat("\xff", limit+10), want: `"` + strings.Repeat(`\xff`, limit) + `…" (266 bytes)`, kept: limit},
		{name: "stray continuation bytes: cut at most 3 bytes early", v: strings.Repeat("\x80", limit+10), want: `"` + strings.Repeat(`\x80`, limit-3) + `…" (266 bytes)`, kept: limit - 3},
		{name: "a control character after the limit: cut", v: a(limit) + "\x01", want: `"` + a(limit) + `…" (257 bytes)`, kept: limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := drain.Quote(tt.v)
			assert.Equal(t, tt.want, got)
			assert.True(t, utf8.ValidString(got), "valid UTF-8")
			assert.LessOrEqual(t, len(got), 4*drain.MaxQuoted+40)
			for _, r := range got {
				assert.False(t, r < 0x20 || r == 0x7f, "no raw control character: %q", r)
			}
			if tt.kept == 0 {
				assert.Equal(t, strconv.Quote(tt.v), got, "as %%q")
				return
			}
			quoted, length, ok := strings.Cut(got, " (")
			require.True(t, ok)
			assert.Equal(t, strconv.Itoa(len(tt.v))+" bytes)", length, "the original length")
			prefix, err := strconv.Unquote(quoted)
			require.NoError(t, err)
			prefix, ok = strings.CutSuffix(prefix, "…")
			require.True(t, ok, "marked as cut")
			assert.Equal(t, tt.v[:tt.kept], prefix, "a prefix of the value")
		})
	}
}
