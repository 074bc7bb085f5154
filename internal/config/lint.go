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

// fileCommands are commands that read or write files by other means than
// a file-transfer protocol: an exec.allow pattern that matches one of them
// lets a user get around the sftp policy's file rules.
var fileCommands = []string{"cat /etc/hosts", "tar cf - /srv", "dd if=/srv/f", "cp /a /b", "vi /etc/hosts", "sh", "python3 -c x", "base64 /srv/f"}

// transferLeak says why p's file rules can be got around, or "": the sftp
// subsystem restricts which files move while a shell or a broad
// exec.allow lets the user read and write files with other programs.
func transferLeak(p *Policy) string {
	sub, ok := p.Subsystems["sftp"]
	if !ok {
		return ""
	}
	rule := ""
	switch {
	case sub.ReadOnly:
		rule = "read_only"
	case !sub.AllowUpload:
		rule = "allow_upload: false"
	case !sub.AllowDownload:
		rule = "allow_download: false"
	case len(sub.AllowPaths) > 0:
		rule = "allow_paths"
	case len(sub.DenyPaths) > 0:
		rule = "deny_paths"
	case sub.MaxUploadSize > 0:
		rule = "max_upload_size"
	default:
		return ""
	}
	if p.Shell {
		return fmt.Sprintf("subsystems.sftp has %s, but shell: true lets the user read and write files with any program (cat, tar, an editor): the sftp rules bind SFTP and scp only (see docs/security.md)", rule)
	}
	for _, a := range p.Exec.Allow {
		for _, c := range fileCommands {
			if a.Re.MatchString(c) {
				return fmt.Sprintf("subsystems.sftp has %s, but exec.allow %q permits %q, which reads or writes files by other means: the sftp rules bind SFTP and scp only (see docs/security.md)", rule, a.Text, c)
			}
		}
	}
	return ""
}
