package config

import (
	"fmt"
	"regexp/syntax"
	"strings"
)

// patternWarnings says what looks wrong in an exec pattern as written:
// an anchor (patterns already match the whole command, so "^rm " matches
// only the command "rm " with its trailing space), and, in a deny pattern,
// an alternative that is one bare word ("reboot" in "reboot|shutdown .*"
// refuses "reboot" but lets "reboot --help" through).
func patternWarnings(pat string, deny bool) []string {
	var out []string
	if strings.HasPrefix(pat, "^") || strings.HasSuffix(pat, "$") && !strings.HasSuffix(pat, `\$`) {
		out = append(out, fmt.Sprintf("pattern %q is anchored already (it must match the whole command); \"^rm \" would match only the command \"rm \" with its trailing space", pat))
	}
	if deny {
		for _, w := range bareWords(pat) {
			out = append(out, fmt.Sprintf("pattern %q refuses %q only without arguments; write %q to refuse it with any", pat, w, w+"( .*)?"))
		}
	}
	return out
}

// bareWords returns the alternatives of pat that are a single word, which
// match a command only when it has no arguments.
func bareWords(pat string) []string {
	re, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		return nil
	}
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpAlternate {
		subs = re.Sub
	}
	var out []string
	for _, s := range subs {
		for s.Op == syntax.OpCapture {
			s = s.Sub[0]
		}
		if s.Op != syntax.OpLiteral || s.Flags&syntax.FoldCase != 0 {
			continue
		}
		if w := string(s.Rune); w != "" && !strings.ContainsAny(w, " \t") {
			out = append(out, w)
		}
	}
	return out
}
