package drain

import (
	"strconv"
	"unicode/utf8"
)

// MaxQuoted is how many bytes of a value its sender controls (an annotation, a label, an
// event's attribute) a log line, a reply or a Kubernetes Event repeats: Quote cuts the rest.
const MaxQuoted = 256

// Quote is v quoted as %q quotes it (strconv.Quote: control characters, non-printable runes
// and invalid UTF-8 escaped) when it is at most MaxQuoted bytes. A longer v is cut to its
// first MaxQuoted bytes, never inside a UTF-8 sequence, marked with "…" inside the quotes
// and followed by its whole length: "abc…" (3145728 bytes). Whatever v, the result is one
// line of valid UTF-8 of at most 4*MaxQuoted+40 bytes (an escape takes at most 4 bytes a byte).
func Quote(v string) string {
	if len(v) <= MaxQuoted {
		return strconv.Quote(v)
	}
	n := MaxQuoted
	// Back up to the start of the rune v[n] continues (at most UTFMax-1 bytes: further back,
	// the bytes are no valid UTF-8 and are escaped one by one).
	for k := 1; k < utf8.UTFMax && !utf8.RuneStart(v[n]); k++ {
		n--
	}
	b := make([]byte, 0, n+48)
	b = strconv.AppendQuote(b, v[:n]+"…")
	b = append(b, " ("...)
	b = strconv.AppendInt(b, int64(len(v)), 10)
	return string(append(b, " bytes)"...))
}
