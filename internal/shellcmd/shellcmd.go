package shellcmd

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// Command is one simple command the shell would start.
type Command struct {
	// Text is the command after quote removal: the program as written,
	// its arguments and its redirections, one space apart
	// ("/bin/rm -rf x >/dev/null"). A word that is not literal keeps its
	// source form ("$HOME").
	Text string
	// Program is the base name of the program ("rm" for "/bin/rm").
	Program string
	// Normalised is Text with the program as its base name ("rm -rf x").
	Normalised string
	// Args are the words after the program, as in Text.
	Args []string
	// Wrapped marks a command started by another one: through a wrapper
	// (env, sudo, nohup, timeout, xargs, find -exec, …) or a shell's -c
	// string. The starting command is in the Analysis too.
	Wrapped bool
}

// Analysis is what Parse found in a command string.
type Analysis struct {
	// Commands are the simple commands, in source order.
	Commands []Command
	// Dynamic says, one reason each, what cannot be decided without
	// running the command. Empty when every program is known.
	Dynamic []string
}

// Limits of Parse: the length of a command string (OpenSSH's sshd takes
// exec requests up to its 256 KiB packet limit; commands people type are
// far shorter) and how deep `sh -c` strings may nest.
const (
	MaxLength = 64 << 10
	maxDepth  = 8
)

// ErrTooLong is returned for a command longer than MaxLength.
var ErrTooLong = errors.New("shellcmd: command too long")

// Parse analyses cmd as the target's shell would read it. A command that
// does not parse is an error: the caller cannot know what it runs.
func Parse(cmd string) (*Analysis, error) {
	if len(cmd) > MaxLength {
		return nil, ErrTooLong
	}
	var z analyser
	if err := z.source(cmd, 0); err != nil {
		return nil, err
	}
	return &z.a, nil
}

type analyser struct{ a Analysis }

func (z *analyser) dynamic(format string, args ...any) {
	z.a.Dynamic = append(z.a.Dynamic, fmt.Sprintf(format, args...))
}

// source parses src and analyses every simple command in it.
func (z *analyser) source(src string, depth int) error {
	if depth > maxDepth {
		z.dynamic("shell strings nested more than %d deep", maxDepth)
		return nil
	}
	if strings.ContainsRune(src, 0) {
		return errors.New("shellcmd: NUL byte in command")
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), "")
	if err != nil {
		return fmt.Errorf("shellcmd: %w", err)
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Stmt:
			if call, ok := n.Cmd.(*syntax.CallExpr); ok {
				z.call(call, n.Redirs, depth)
			}
		case *syntax.DeclClause:
			z.assigns(n.Args)
		}
		return true
	})
	return nil
}

// riskyVariables change which program a name runs, or run code of their
// own when a shell or the dynamic linker starts.
var riskyVariables = map[string]bool{
	"PATH": true, "LD_PRELOAD": true, "LD_LIBRARY_PATH": true, "LD_AUDIT": true,
	"BASH_ENV": true, "ENV": true, "IFS": true, "SHELLOPTS": true, "BASHOPTS": true,
	"PS4": true, "PROMPT_COMMAND": true, "CDPATH": true, "GLOBIGNORE": true,
	"BASH_LOADABLES_PATH": true, "EXECIGNORE": true,
}

func (z *analyser) assigns(as []*syntax.Assign) {
	for _, a := range as {
		if a.Name != nil && (riskyVariables[a.Name.Value] || strings.HasPrefix(a.Name.Value, "BASH_FUNC_")) {
			z.dynamic("assignment to %s changes which program runs", a.Name.Value)
		}
	}
}

// call analyses one simple command.
func (z *analyser) call(call *syntax.CallExpr, redirs []*syntax.Redirect, depth int) {
	z.assigns(call.Assigns)
	if len(call.Args) == 0 {
		return
	}
	words := make([]word, len(call.Args))
	for i, w := range call.Args {
		words[i] = literal(w)
	}
	var extra []string
	for _, r := range redirs {
		extra = append(extra, redirect(r))
	}
	z.command(words, extra, false, depth)
}

// word is one shell word: its value after quote removal when it is
// literal, its source text otherwise.
type word struct {
	text    string
	literal bool
	// pattern is set for a literal word with an unquoted glob or brace
	// character, which the shell may expand into other words.
	pattern bool
}

// command records a command made of words and decides what it starts.
func (z *analyser) command(words []word, redirs []string, wrapped bool, depth int) {
	name := words[0]
	if !name.literal || name.pattern {
		z.dynamic("program name %q is not a literal", name.text)
		return
	}
	texts := make([]string, 0, len(words)+len(redirs))
	for _, w := range words {
		texts = append(texts, w.text)
	}
	texts = append(texts, redirs...)
	prog := path.Base(name.text)
	if name.text == "" {
		prog = ""
	}
	text := strings.Join(texts, " ")
	z.a.Commands = append(z.a.Commands, Command{
		Text:       text,
		Program:    prog,
		Normalised: strings.Join(append([]string{prog}, texts[1:]...), " "),
		Args:       texts[1:len(words)],
		Wrapped:    wrapped,
	})
	args := words[1:]
	switch {
	case shells[prog]:
		z.shell(prog, args, depth)
	case prog == "eval":
		z.shellString("eval", args, depth)
	case prog == "source" || prog == ".":
		z.dynamic("%s runs the commands of a file", prog)
	case prog == "alias" || prog == "trap" || prog == "enable" || prog == "coproc":
		z.dynamic("%s defines commands from strings", prog)
	case prog == "watch":
		z.shellString("watch", args, depth)
	case prog == "find":
		z.find(args, depth)
	default:
		if skip, ok := wrappers[prog]; ok {
			z.wrapped(prog, args, skip, depth)
		}
	}
}

// shells read their commands from a -c string, a file or standard input.
var shells = map[string]bool{
	"sh": true, "bash": true, "rbash": true, "dash": true, "zsh": true, "ksh": true,
	"mksh": true, "pdksh": true, "ash": true, "yash": true, "posh": true,
	"csh": true, "tcsh": true, "fish": true,
	"su": true, "runuser": true, // su -c STRING runs STRING in the user's shell
}

// shellOptionArgs are shell options that take the next word as their
// argument (bash -o OPT, --rcfile FILE; su -s SHELL, -g GROUP).
var shellOptionArgs = map[string]bool{
	"-o": true, "+o": true, "-O": true, "+O": true, "--rcfile": true, "--init-file": true,
	"--shell": true, "-g": true, "-G": true, "--group": true, "--supp-group": true,
	"-w": true, "--whitelist-environment": true,
}

// shell analyses a shell's arguments: a literal -c string is parsed in
// turn; anything else runs commands nobody can see here.
func (z *analyser) shell(prog string, args []word, depth int) {
	su := prog == "su" || prog == "runuser"
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !a.literal {
			z.dynamic("%s with a non-literal argument %q", prog, a.text)
			return
		}
		t := a.text
		switch {
		case strings.HasPrefix(t, "--command="):
			z.shellString(prog+" --command", []word{{text: strings.TrimPrefix(t, "--command="), literal: true}}, depth)
			return
		case t == "--command" || len(t) > 1 && t[0] == '-' && t[1] != '-' && strings.ContainsRune(t[1:], 'c'):
			// -c, or a cluster holding it (-ec): the next word is the string.
			if i+1 >= len(args) {
				z.dynamic("%s %s without a command string", prog, t)
				return
			}
			z.shellString(prog+" "+t, args[i+1:i+2], depth)
			return
		case t == "--" || t == "-":
			i = len(args)
		case shellOptionArgs[t]:
			i++
		case strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+"):
		case su:
			// su's operand is the user name.
		default:
			z.dynamic("%s runs the script file %q", prog, t)
			return
		}
	}
	z.dynamic("%s reads its commands from standard input", prog)
}

// shellString parses the literal words of a string a program runs as
// shell source (sh -c, watch), joined by spaces as those programs do.
func (z *analyser) shellString(what string, args []word, depth int) {
	if len(args) == 0 {
		return
	}
	parts := make([]string, 0, len(args))
	for _, a := range args {
		if !a.literal {
			z.dynamic("%s with a non-literal string %q", what, a.text)
			return
		}
		parts = append(parts, a.text)
	}
	if err := z.sourceWrapped(strings.Join(parts, " "), depth+1); err != nil {
		z.dynamic("%s with a string that does not parse: %v", what, err)
	}
}

// sourceWrapped analyses src and marks what it finds as wrapped.
func (z *analyser) sourceWrapped(src string, depth int) error {
	from := len(z.a.Commands)
	err := z.source(src, depth)
	for i := from; i < len(z.a.Commands); i++ {
		z.a.Commands[i].Wrapped = true
	}
	return err
}

// wrapperOptions says how a wrapper's arguments lead to the program it
// runs: options with an argument of their own, and how many operands come
// before the program.
type wrapperOptions struct {
	withArg  map[string]bool
	operands int
	// assignments: NAME=VALUE words before the program (env).
	assignments bool
}

func opts(operands int, withArg ...string) wrapperOptions {
	w := wrapperOptions{withArg: map[string]bool{}, operands: operands}
	for _, o := range withArg {
		w.withArg[o] = true
	}
	return w
}

// wrappers start the program named by one of their arguments.
var wrappers = map[string]wrapperOptions{
	"env":         {withArg: map[string]bool{"-u": true, "--unset": true, "-C": true, "--chdir": true}, assignments: true},
	"sudo":        opts(0, "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "-R", "--user", "--group", "--chdir", "--host", "--prompt", "--role", "--type", "--other-user", "--command-timeout", "--chroot", "--close-from"),
	"doas":        opts(0, "-u", "-C"),
	"nohup":       opts(0),
	"nice":        opts(0, "-n", "--adjustment"),
	"ionice":      opts(0, "-c", "-n", "-p", "-P", "-u", "--class", "--classdata"),
	"timeout":     opts(1, "-s", "-k", "--signal", "--kill-after"),
	"stdbuf":      opts(0, "-i", "-o", "-e"),
	"setsid":      opts(0),
	"chroot":      opts(1, "--userspec", "--groups"),
	"exec":        opts(0, "-a"),
	"command":     opts(0),
	"builtin":     opts(0),
	"time":        opts(0, "-f", "-o", "--format", "--output"),
	"xargs":       opts(0, "-I", "-i", "-n", "-P", "-L", "-l", "-s", "-d", "-E", "-e", "-a", "--max-args", "--max-procs", "--max-lines", "--max-chars", "--delimiter", "--eof", "--arg-file", "--replace"),
	"busybox":     opts(0),
	"flock":       opts(1, "-w", "-E", "--timeout", "--conflict-exit-code"),
	"strace":      opts(0, "-o", "-p", "-e", "-s", "-u", "-E"),
	"ltrace":      opts(0, "-o", "-p", "-e", "-s", "-u"),
	"unshare":     opts(0),
	"nsenter":     opts(0, "-t", "--target"),
	"taskset":     opts(1, "-c"),
	"chrt":        opts(1),
	"prlimit":     opts(0, "-p", "--pid"),
	"cgexec":      opts(0, "-g"),
	"systemd-run": opts(0, "-p", "--property", "-u", "--unit", "-M", "--machine", "-E", "--setenv"),
	"script":      opts(0, "-c", "--command"),
	"unbuffer":    opts(0),
}

// wrapped finds the program a wrapper runs and analyses it in turn.
func (z *analyser) wrapped(prog string, args []word, w wrapperOptions, depth int) {
	operands := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !a.literal {
			z.dynamic("%s with a non-literal argument %q", prog, a.text)
			return
		}
		t := a.text
		switch {
		case t == "--":
			if i+1 < len(args) {
				z.commandAt(prog, args[i+1:], depth)
			}
			return
		case (prog == "script") && (t == "-c" || t == "--command"):
			z.shellString(prog+" "+t, args[i+1:min(i+2, len(args))], depth)
			return
		case (prog == "env") && (t == "-S" || strings.HasPrefix(t, "--split-string") || strings.HasPrefix(t, "-S")):
			z.dynamic("env %s splits a string into a command", t)
			return
		case (prog == "flock") && (t == "-c" || t == "--command"):
			z.shellString(prog+" "+t, args[i+1:min(i+2, len(args))], depth)
			return
		case w.withArg[t]:
			i++
		case len(t) > 1 && t[0] == '-':
		case w.assignments && strings.Contains(t, "="):
			name, _, _ := strings.Cut(t, "=")
			if riskyVariables[name] || strings.HasPrefix(name, "BASH_FUNC_") {
				z.dynamic("assignment to %s changes which program runs", name)
			}
		case operands < w.operands:
			operands++
		default:
			z.commandAt(prog, args[i:], depth)
			return
		}
	}
	// No program named: xargs runs echo, the others nothing.
}

// commandAt analyses the command a wrapper starts.
func (z *analyser) commandAt(prog string, words []word, depth int) {
	if depth > maxDepth {
		z.dynamic("%s wrappers nested more than %d deep", prog, maxDepth)
		return
	}
	z.command(words, nil, true, depth+1)
}

// find analyses the commands of -exec, -execdir, -ok and -okdir, each up
// to its ";" or "+".
func (z *analyser) find(args []word, depth int) {
	for i := 0; i < len(args); i++ {
		switch args[i].text {
		case "-exec", "-execdir", "-ok", "-okdir":
			j := i + 1
			for j < len(args) && args[j].text != ";" && args[j].text != "+" {
				j++
			}
			if j > i+1 {
				z.commandAt("find", args[i+1:j], depth)
			}
			i = j
		}
	}
}

// literal returns w after quote removal when it holds no expansion, and
// its source text otherwise.
func literal(w *syntax.Word) word {
	pattern := false
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			if strings.ContainsAny(p.Value, "*?[{") || strings.HasPrefix(p.Value, "~") {
				pattern = true
			}
		case *syntax.SglQuoted:
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				if _, ok := q.(*syntax.Lit); !ok {
					return word{text: printed(w)}
				}
			}
		default:
			return word{text: printed(w)}
		}
	}
	// Fields, unlike Literal, removes the backslashes of unquoted escapes
	// (r\m is rm); with no environment and no file system it expands
	// nothing else in a word made of literals and quotes. Each call gets
	// its own Config: given nil, expand prepares a package-level one in
	// place, which races when sessions decide commands concurrently.
	fields, err := expand.Fields(&expand.Config{}, w)
	if err != nil {
		return word{text: printed(w)}
	}
	return word{text: strings.Join(fields, " "), literal: true, pattern: pattern}
}

// printed is n's shell source.
func printed(n syntax.Node) string {
	var b strings.Builder
	if err := syntax.NewPrinter(syntax.Minify(true)).Print(&b, n); err != nil {
		return fmt.Sprintf("%T", n)
	}
	return b.String()
}

// redirect is r's source text ("2>/dev/null"), a here-document with its
// body.
func redirect(r *syntax.Redirect) string {
	var b strings.Builder
	if r.N != nil {
		b.WriteString(r.N.Value)
	}
	b.WriteString(r.Op.String())
	if r.Word != nil {
		b.WriteString(printed(r.Word))
	}
	if r.Hdoc != nil {
		b.WriteString("\n" + printed(r.Hdoc))
	}
	return b.String()
}
