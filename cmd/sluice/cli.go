package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-ssh/sluice/internal/config"
)

// cmdline is one subcommand's command line: its flags, its synopsis and
// what it does, printed in the one layout every subcommand's --help uses:
//
//	usage: sluice NAME SYNOPSIS
//
//	ABOUT
//
//	flags:
//	  -c FILE        config file
//	  --json         one JSON object per line
//
// --help (or -h) anywhere before "--" prints it on stdout and exits 0; a
// usage error prints the error and the usage line on stderr and exits 2.
type cmdline struct {
	fs       *flag.FlagSet
	name     string // "audit verify"
	synopsis string // "-c FILE [--head GATEWAY:SEQ:HASH]"
	about    string
	stdout   io.Writer
	stderr   io.Writer
	// dashdash is the number of positional arguments parse found before
	// "--", or -1 when there was none.
	dashdash int
}

func newCmdline(name, synopsis, about string, stdout, stderr io.Writer) *cmdline {
	fs := flag.NewFlagSet("sluice "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &cmdline{fs: fs, name: name, synopsis: synopsis, about: about, stdout: stdout, stderr: stderr, dashdash: -1}
}

// usageLine is "usage: sluice NAME SYNOPSIS".
func (c *cmdline) usageLine() string {
	return strings.TrimSpace("usage: sluice " + c.name + " " + c.synopsis)
}

// help writes the whole help to w.
func (c *cmdline) help(w io.Writer) {
	fmt.Fprintf(w, "%s\n\n%s\n", c.usageLine(), c.about)
	var rows [][2]string
	c.fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		left := strings.TrimSpace(dash + f.Name + " " + arg)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += " (default " + f.DefValue + ")"
		}
		rows = append(rows, [2]string{left, usage})
	})
	if len(rows) == 0 {
		return
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	fmt.Fprintln(w, "\nflags:")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
}

// fail reports a usage error: "sluice NAME: MESSAGE" and the usage line on
// stderr; it returns exit status 2.
func (c *cmdline) fail(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "sluice %s: %s\n%s\n(sluice %s --help tells more)\n", c.name, fmt.Sprintf(format, a...), c.usageLine(), c.name)
	return 2
}

// isHelp says whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// verb checks that args start with the command's one verb (the last word
// of its name, e.g. "add" of "known-hosts add") and returns the rest; a
// help flag in its place prints the help. When ok is false the caller
// returns code.
func (c *cmdline) verb(args []string) (rest []string, code int, ok bool) {
	v := c.name[strings.LastIndexByte(c.name, ' ')+1:]
	switch {
	case len(args) > 0 && args[0] == v:
		return args[1:], 0, true
	case len(args) > 0 && isHelp(args[0]):
		c.help(c.stdout)
		return nil, 0, false
	}
	return nil, c.fail("the only verb is %s", v), false
}

// parse parses args, flags and positional arguments in any order
// (everything after "--" is positional), and wants npos positional
// arguments (any number when npos < 0). When ok is false the caller
// returns code: 0 after --help, 2 after a usage error, each reported.
func (c *cmdline) parse(args []string, npos int) (pos []string, code int, ok bool) {
	for {
		err := c.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.help(c.stdout)
			return nil, 0, false
		}
		if err != nil {
			return nil, c.fail("%v", err), false
		}
		rest := c.fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			c.dashdash = len(pos)
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if npos >= 0 && len(pos) != npos {
		if len(pos) > npos {
			return nil, c.fail("unexpected argument %q", pos[npos]), false
		}
		return nil, c.fail("missing argument"), false
	}
	return pos, 0, true
}

// config parses args like parse, wants -c FILE and loads it; on a config
// error it prints it and the caller returns code 1.
func (c *cmdline) config(args []string, path *string, npos int) (*config.Config, []string, int) {
	pos, code, ok := c.parse(args, npos)
	if !ok {
		return nil, nil, code
	}
	cfg, code := c.load(*path)
	return cfg, pos, code
}

// load loads the config at path (-c FILE), which is required; on an error
// it prints it and the caller returns code.
func (c *cmdline) load(path string) (*config.Config, int) {
	if path == "" {
		return nil, c.fail("-c FILE is required")
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return nil, 1
	}
	return cfg, 0
}
