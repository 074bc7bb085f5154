package policy

import (
	"fmt"
	"regexp/syntax"

	"github.com/sluice-ssh/sluice/internal/shellcmd"
)

// Exec decides an exec request for cmd.
//
// By default cmd is read as shell source (internal/shellcmd) and every
// simple command in it is decided on its own: a command is refused when
// its text, as written or with the program as its base name ("/bin/rm x"
// is also "rm x"), matches a deny pattern, or when its text as written
// matches no allow pattern; cmd runs only if every command in it may. The
// commands a wrapper (sudo, env, xargs, find -exec, a literal sh -c
// string, …) starts count as commands of their own. What cannot be decided
// without running cmd (a program name from a variable, eval of a
// non-literal string, a shell reading standard input, an assignment to
// PATH, …) is refused unless the exec policy permits everything (no deny
// pattern, an allow pattern of ".*"). A command that does not parse as
// shell source is refused.
//
// With ExecWhole the patterns match the command string as sent.
func (p *Policy) Exec(cmd string) Verdict {
	if p.execWhole {
		return p.execWholeString(cmd)
	}
	a, err := shellcmd.Parse(cmd)
	if err != nil {
		return Verdict{Rule: p.prefix + ".exec.match", Reason: fmt.Sprintf("command cannot be read as shell source: %v", err)}
	}
	if len(a.Dynamic) > 0 && (len(p.execDeny) > 0 || !p.execCatchAll) {
		return Verdict{Rule: p.prefix + ".exec.match", Reason: "command cannot be decided before it runs: " + a.Dynamic[0]}
	}
	if len(a.Commands) == 0 {
		// Nothing starts (an empty command, assignments only): the
		// string as a whole is what the patterns can say anything about.
		return p.execWholeString(cmd)
	}
	for _, c := range a.Commands {
		for i, re := range p.execDeny {
			if re.MatchString(c.Text) || re.MatchString(c.Normalised) {
				return Verdict{Rule: p.rule(".exec.deny[%d]", i), Reason: fmt.Sprintf("command %q matches a deny pattern", c.Normalised)}
			}
		}
	}
	var rule string
	for _, c := range a.Commands {
		i := p.allowed(c.Text)
		if i < 0 {
			return Verdict{Rule: p.prefix + ".exec.allow", Reason: fmt.Sprintf("command %q matches no allow pattern", c.Text)}
		}
		if rule == "" {
			rule = p.rule(".exec.allow[%d]", i)
		}
	}
	what := "the command matches an allow pattern"
	if len(a.Commands) > 1 {
		what = fmt.Sprintf("each of its %d commands matches an allow pattern", len(a.Commands))
	}
	return Verdict{Accept: true, Rule: rule, Reason: what}
}

// allowed returns the index of the first allow pattern text matches, or -1.
func (p *Policy) allowed(text string) int {
	for i, re := range p.execAllow {
		if re.MatchString(text) {
			return i
		}
	}
	return -1
}

// execWholeString decides cmd as one string: a deny pattern that matches
// wins; otherwise the first matching allow pattern accepts.
func (p *Policy) execWholeString(cmd string) Verdict {
	for i, re := range p.execDeny {
		if re.MatchString(cmd) {
			return Verdict{Rule: p.rule(".exec.deny[%d]", i), Reason: "command matches a deny pattern"}
		}
	}
	if i := p.allowed(cmd); i >= 0 {
		return Verdict{Accept: true, Rule: p.rule(".exec.allow[%d]", i), Reason: "command matches an allow pattern"}
	}
	return Verdict{Rule: p.prefix + ".exec.allow", Reason: "command matches no allow pattern"}
}

// MatchesEverything reports whether the allow pattern pat, anchored as
// Compile anchors it, matches any command: ".*", "(.*)", ".+|", ….
func MatchesEverything(pat string) bool {
	re, err := syntax.Parse(`(?s:`+pat+`)`, syntax.Perl)
	if err != nil {
		return false
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture || re.Op == syntax.OpConcat && len(re.Sub) == 1 {
		re = re.Sub[0]
	}
	switch re.Op {
	case syntax.OpStar:
		return re.Sub[0].Op == syntax.OpAnyChar
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if s.Op == syntax.OpStar && s.Sub[0].Op == syntax.OpAnyChar {
				return true
			}
		}
	}
	return false
}
