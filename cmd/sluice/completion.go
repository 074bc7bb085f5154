package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// verbs are the subcommands' own subcommands, which completion offers as
// the word after the subcommand.
var verbs = map[string][]string{
	"audit":       {"verify"},
	"ca":          {"show"},
	"completion":  {"bash", "zsh"},
	"console":     {"token", "user"},
	"known-hosts": {"add"},
	"user":        {"totp"},
}

// completionFlag is one flag completion offers.
type completionFlag struct {
	name  string // with its dashes
	file  bool   // its argument is a file or folder
	about string
}

// flagRow matches a flag line of the one --help layout (cmdline.help).
var flagRow = regexp.MustCompile(`(?m)^  (--?[A-Za-z][\w-]*)(?: ([A-Z][A-Z:]*))?\s{2,}(.*)$`)

// flagsOf returns the flags of `sluice ARGS... --help`, read from its
// help, so completion never drifts from what a command accepts.
func flagsOf(cmds map[string]command, args ...string) []completionFlag {
	var out bytes.Buffer
	cmds[args[0]].run(append(args[1:], "--help"), &out, io.Discard)
	var fl []completionFlag
	for _, m := range flagRow.FindAllStringSubmatch(out.String(), -1) {
		fl = append(fl, completionFlag{name: m[1], file: m[2] == "FILE" || m[2] == "DIR", about: m[3]})
	}
	return append(fl, completionFlag{name: "--help", about: "show the help"})
}

// runCompletion is `sluice completion bash|zsh`: the shell's completion
// script on stdout.
func runCompletion(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("completion", "bash|zsh", "Print the completion script for bash or zsh. Load it with\n  source <(sluice completion bash)          # in ~/.bashrc\n  sluice completion zsh > \"${fpath[1]}/_sluice\"   # then start a new zsh", stdout, stderr)
	pos, code, ok := cl.parse(args, 1)
	if !ok {
		return code
	}
	cmds := commands()
	switch pos[0] {
	case "bash":
		fmt.Fprint(stdout, bashCompletion(cmds))
	case "zsh":
		fmt.Fprint(stdout, zshCompletion(cmds))
	default:
		return cl.fail("unknown shell %q: want bash or zsh", pos[0])
	}
	return 0
}

// sortedNames returns the command names in order.
func sortedNames(cmds map[string]command) []string {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func flagNames(fl []completionFlag) string {
	names := make([]string, len(fl))
	for i, f := range fl {
		names[i] = f.name
	}
	return strings.Join(names, " ")
}

func fileFlags(fl []completionFlag) []string {
	var names []string
	for _, f := range fl {
		if f.file {
			names = append(names, f.name)
		}
	}
	return names
}

// bashCompletion is the bash script: commands, then each command's verbs
// and flags, and file names after a flag that takes a file or folder.
func bashCompletion(cmds map[string]command) string {
	var b strings.Builder
	b.WriteString("# bash completion for sluice: source <(sluice completion bash)\n_sluice() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words=\n")
	fmt.Fprintf(&b, "\tif [[ $COMP_CWORD -eq 1 ]]; then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(append(sortedNames(cmds), "help"), " "))
	b.WriteString("\tcase \"${COMP_WORDS[1]} ${COMP_WORDS[2]}\" in\n")
	var files []string
	for _, n := range sortedNames(cmds) {
		for _, v := range verbs[n] {
			fl := flagsOf(cmds, n, v)
			files = append(files, fileFlags(fl)...)
			fmt.Fprintf(&b, "\t%q) words=%q ;;\n", n+" "+v, flagNames(fl))
		}
		fl := flagsOf(cmds, n)
		files = append(files, fileFlags(fl)...)
		w := flagNames(fl)
		if len(verbs[n]) > 0 {
			w = strings.Join(verbs[n], " ") + " " + w
		}
		fmt.Fprintf(&b, "\t%q*) words=%q ;;\n", n+" ", w)
	}
	b.WriteString("\thelp*) words=" + fmt.Sprintf("%q", strings.Join(sortedNames(cmds), " ")) + " ;;\n\tesac\n")
	slices.Sort(files)
	files = slices.Compact(files)
	fmt.Fprintf(&b, "\tcase $prev in\n\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n\tesac\n", strings.Join(files, "|"))
	b.WriteString("\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -o default -F _sluice sluice\n")
	return b.String()
}

// zshQuote quotes s for a single-quoted zsh word.
func zshQuote(s string) string { return strings.ReplaceAll(s, "'", `'\''`) }

// zshSpecs are _arguments specs for fl.
func zshSpecs(fl []completionFlag) string {
	specs := make([]string, len(fl))
	for i, f := range fl {
		about := strings.NewReplacer("[", "(", "]", ")", ":", " ").Replace(f.about)
		spec := f.name + "[" + about + "]"
		if f.file {
			spec += ":file:_files"
		}
		specs[i] = "'" + zshQuote(spec) + "'"
	}
	return strings.Join(specs, " ")
}

// zshCompletion is the zsh script (#compdef), with each command's summary
// and each flag's help.
func zshCompletion(cmds map[string]command) string {
	var b strings.Builder
	b.WriteString("#compdef sluice\n# zsh completion for sluice: sluice completion zsh > \"${fpath[1]}/_sluice\"\n_sluice() {\n\tlocal -a cmds\n\tcmds=(\n")
	for _, n := range sortedNames(cmds) {
		fmt.Fprintf(&b, "\t\t'%s:%s'\n", n, zshQuote(cmds[n].summary))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe command cmds\n\t\treturn\n\tfi\n")
	b.WriteString("\tlocal cmd=$words[2]\n\tshift words\n\t(( CURRENT-- ))\n\tcase $cmd in\n")
	for _, n := range sortedNames(cmds) {
		fmt.Fprintf(&b, "\t%s)\n", n)
		if vs := verbs[n]; len(vs) > 0 {
			for _, v := range vs {
				fmt.Fprintf(&b, "\t\tif [[ $words[2] == %s ]]; then\n\t\t\tshift words\n\t\t\t(( CURRENT-- ))\n\t\t\t_arguments %s '*:file:_files'\n\t\t\treturn\n\t\tfi\n", v, zshSpecs(flagsOf(cmds, n, v)))
			}
			fmt.Fprintf(&b, "\t\t_arguments '1:verb:(%s)' %s\n", strings.Join(vs, " "), zshSpecs(flagsOf(cmds, n)))
		} else {
			fmt.Fprintf(&b, "\t\t_arguments %s '*:file:_files'\n", zshSpecs(flagsOf(cmds, n)))
		}
		b.WriteString("\t\t;;\n")
	}
	b.WriteString("\tesac\n}\n_sluice \"$@\"\n")
	return b.String()
}
