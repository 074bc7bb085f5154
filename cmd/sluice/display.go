package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// cell is s as one cell of a text table: every character that is not
// graphic (control characters such as ESC, CR, LF and TAB, C1 controls,
// bidirectional overrides and other format characters), every invalid
// UTF-8 byte and the backslash itself are written as Go escapes (\x1b,
// \r, \u202e, \\), so that text a client chose (a user name, a path, a
// reason) can neither move the cursor, erase or forge a line, nor break
// the columns of the operator's terminal, and reads back unambiguously.
func cell(s string) string {
	if isPlain(s) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	// Drop the quotes and the escape of the double quote, which needs none
	// here: every `\"` in q escapes a quote of s (an escaped backslash is
	// `\\`, never followed by a bare quote).
	return strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
}

// isPlain reports whether s needs no escaping in a cell.
func isPlain(s string) bool {
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || !unicode.IsGraphic(r) || (r != ' ' && unicode.IsSpace(r)) {
			return false
		}
	}
	return true
}

// graphicJSON returns JSON text b with every non-graphic character written
// as a \uXXXX escape, which JSON reads as the same character:
// encoding/json escapes the C0 controls but leaves DEL, the C1 controls
// (0x9b is a CSI on some terminals) and the bidirectional overrides raw.
// Outside strings JSON text holds only graphic ASCII and whitespace, which
// the escaping leaves alone.
func graphicJSON(b []byte) []byte {
	var out []byte
	for i, r := range string(b) {
		if r == '\n' || r == '\t' || r == '\r' || r == ' ' || unicode.IsGraphic(r) {
			if out != nil {
				out = utf8.AppendRune(out, r)
			}
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(b)+16), b[:i]...)
		}
		for _, u := range utf16.Encode([]rune{r}) {
			out = fmt.Appendf(out, `\u%04x`, u)
		}
	}
	if out == nil {
		return b
	}
	return out
}
