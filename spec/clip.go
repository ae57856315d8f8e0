package spec

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// MaxShown is the longest user value a diagnostic quotes in full: a longer
// one is cut after MaxShown bytes, with an ellipsis and its length.
const MaxShown = 64

// clipText shortens s to at most MaxShown bytes (whole characters) plus an
// ellipsis and reports whether it did.
func clipText(s string) (string, bool) {
	if len(s) <= MaxShown {
		return s, false
	}
	cut := MaxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…", true
}

// quote is %q of s, clipped: "aaaa…" (5000 bytes).
func quote(s string) string {
	c, clipped := clipText(s)
	if !clipped {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q (%d bytes)", c, len(s))
}

// ClipQuoted is clipQuoted, for text that quotes spec values the same way
// (the context HCL gives a source snippet: host "NAME").
func ClipQuoted(msg string) string { return clipQuoted(msg) }

// clipQuoted clips every double-quoted string in a message (the way
// diagnostics show user values) that is longer than MaxShown, so that no
// message repeats a huge value, whichever code wrote it.
func clipQuoted(msg string) string {
	if len(msg) <= MaxShown {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			break
		}
		end := closingQuote(msg, i+1)
		if end < 0 {
			break
		}
		b.WriteString(msg[:i+1])
		body := msg[i+1 : end]
		if len(body) > MaxShown && !clippedBefore(msg[end+1:]) {
			b.WriteString(clipEscaped(body))
			fmt.Fprintf(&b, "\" (%d bytes)", len(body))
		} else {
			b.WriteString(body)
			b.WriteByte('"')
		}
		msg = msg[end+1:]
	}
	b.WriteString(msg)
	return b.String()
}

// clippedBefore reports whether the text after a quoted string is the
// " (N bytes)" that quote adds to a value it clipped.
func clippedBefore(rest string) bool {
	n, ok := strings.CutPrefix(rest, " (")
	if !ok {
		return false
	}
	digits := len(n) - len(strings.TrimLeft(n, "0123456789"))
	return digits > 0 && strings.HasPrefix(n[digits:], " bytes)")
}

// closingQuote is the index of the '"' that ends a quoted string whose
// content starts at i, honouring backslash escapes, or -1.
func closingQuote(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			i += 2
		case '"':
			return i
		default:
			i++
		}
	}
	return -1
}

// clipEscaped cuts the content of a quoted string after MaxShown bytes,
// neither inside an escape sequence nor inside a character.
func clipEscaped(body string) string {
	cut := 0
	for cut < MaxShown && cut < len(body) {
		if body[cut] == '\\' {
			cut += escapeWidth(body[cut:])
			continue
		}
		_, n := utf8.DecodeRuneInString(body[cut:])
		cut += n
	}
	return body[:min(cut, len(body))] + "…"
}

// escapeWidth is the length of the escape sequence at the start of s.
func escapeWidth(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case 'x':
		return 4
	case 'u':
		return 6
	case 'U':
		return 10
	}
	return 2
}

// clipDiagnostics applies clipQuoted to every summary and detail.
func clipDiagnostics(diags hcl.Diagnostics) {
	for _, d := range diags {
		d.Summary = clipQuoted(d.Summary)
		d.Detail = clipQuoted(d.Detail)
	}
}
