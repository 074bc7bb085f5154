package scpproxy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrCommand reports an exec command that is not scp in server mode as
// OpenSSH's scp client sends it.
var ErrCommand = errors.New("scpproxy: not a plain scp server command")

// Command is an scp server command line: "scp [-v] [-r] [-p] [-d] -t
// [--] PATH" or "scp [-v] [-r] [-p] -f [--] PATH" (scp.c, toremote and
// tolocal).
type Command struct {
	// Sink is set by -t: the server receives files (an upload); otherwise
	// -f, the server sends them (a download).
	Sink      bool
	Recursive bool // -r
	Preserve  bool // -p: times and modes travel with the files
	// TargetDir is set by -d: the target must be a directory.
	TargetDir bool
	// Path is the target (-t) or the source (-f) as given.
	Path string
}

// shellSpecial are the bytes a POSIX or csh-like shell gives a meaning to
// in a word; a path with one would be resolved by the remote shell, which
// the proxy cannot follow.
const shellSpecial = "!\"#$&'()*;<>?[\\]^`{|}"

// ParseCommand parses an exec command that runs scp in server mode. It
// accepts only the form OpenSSH's scp client sends: words separated by
// spaces, "scp", option words made of d, f, p, r, t and v with exactly one
// of t and f, an optional "--", and one path without shell-special bytes,
// where '~' may only start a path as "~" or "~/".
func ParseCommand(cmd string) (Command, error) {
	var c Command
	words := strings.Fields(cmd)
	if strings.ContainsAny(cmd, "\t\n\r\v\f") || len(words) < 2 || words[0] != "scp" {
		return c, ErrCommand
	}
	var t, f bool
	i := 1
	for ; i < len(words) && strings.HasPrefix(words[i], "-"); i++ {
		if words[i] == "--" {
			i++
			break
		}
		for _, o := range words[i][1:] {
			switch o {
			case 'd':
				c.TargetDir = true
			case 'f':
				f = true
			case 'p':
				c.Preserve = true
			case 'r':
				c.Recursive = true
			case 't':
				t = true
			case 'v':
			default:
				return c, fmt.Errorf("%w: option -%c", ErrCommand, o)
			}
		}
		if len(words[i]) == 1 {
			return c, fmt.Errorf("%w: empty option", ErrCommand)
		}
	}
	if t == f {
		return c, fmt.Errorf("%w: want exactly one of -t and -f", ErrCommand)
	}
	if len(words)-i != 1 {
		return c, fmt.Errorf("%w: want one path, got %d", ErrCommand, len(words)-i)
	}
	c.Sink, c.Path = t, words[i]
	if err := checkPath(c.Path); err != nil {
		return c, err
	}
	if f && c.Path == "~" {
		// The shell expands it; the name the server sends is not known.
		return c, fmt.Errorf("%w: the home directory as a source", ErrCommand)
	}
	return c, nil
}

func checkPath(p string) error {
	for i := 0; i < len(p); i++ {
		if b := p[i]; b < 0x20 || b == 0x7f || strings.IndexByte(shellSpecial, b) >= 0 {
			return fmt.Errorf("%w: shell-special byte %q in the path", ErrCommand, b)
		}
	}
	if strings.HasPrefix(p, "~") && p != "~" && !strings.HasPrefix(p, "~/") {
		return fmt.Errorf("%w: another user's home directory", ErrCommand)
	}
	return nil
}

// clean returns p as the server resolves it: clean, absolute when p is,
// and relative to the login directory otherwise ("~" and "~/" included).
func clean(p string) string {
	switch {
	case p == "~":
		p = "."
	case strings.HasPrefix(p, "~/"):
		p = "./" + p[2:]
	}
	return path.Clean(p)
}

// relative reports whether p is resolved from the login directory.
func relative(p string) bool { return !strings.HasPrefix(clean(p), "/") }

// targetIsDir reports whether a sink's target is a directory whatever the
// server holds: with -d, with a trailing slash, or a name that always is
// one. Otherwise scp writes into the target when it is an existing
// directory and creates it under that name when not, which only the
// server knows.
func (c Command) targetIsDir() bool {
	p := c.Path
	return c.TargetDir || strings.HasSuffix(p, "/") || p == "~" || clean(p) == "/" ||
		p == "." || p == ".." || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
}

// sourceName is the name a source's first record carries: scp strips
// trailing slashes from its argument and sends what follows the last
// slash (scp.c, source).
func (c Command) sourceName() string {
	p := c.Path
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}
