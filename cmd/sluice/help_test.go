package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// helpLayout is the one layout of every --help: the usage line, a blank
// line, what the command does, and its flags when it has any.
var helpLayout = regexp.MustCompile(`^usage: sluice \S[^\n]*\n\n[A-Z][^\n]*(\n[^\n]+)*\n(\nflags:\n(  -{1,2}[a-z][\w-]*( \S+)?  +\S[^\n]*\n)+)?$`)

// helpArgs are every command and verb, each with --help.
func helpArgs() [][]string {
	var out [][]string
	for _, n := range sortedNames(commands()) {
		out = append(out, []string{n, "--help"}, []string{n, "-h"}, []string{"help", n})
		for _, v := range verbs[n] {
			out = append(out, []string{n, v, "--help"})
		}
	}
	return out
}

// TestHelpEverywhere: --help on every command and verb exits 0, writes
// the help on stdout (nothing on stderr) in the one layout, and does
// nothing else (no gateway started, no file read).
func TestHelpEverywhere(t *testing.T) {
	for _, args := range append(helpArgs(), []string{"--help"}, []string{"help"}, []string{"-h"}) {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		if code != 0 || stderr.Len() != 0 {
			t.Errorf("sluice %s: exit %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, stderr.String())
			continue
		}
		if len(args) > 1 && !helpLayout.MatchString(stdout.String()) {
			t.Errorf("sluice %s: help not in the layout:\n%s", strings.Join(args, " "), stdout.String())
		}
	}
	// --help after other flags and arguments still only helps.
	var stdout bytes.Buffer
	if code := run([]string{"replay", "-c", "/nonexistent", "ID", "--help"}, &stdout, &bytes.Buffer{}); code != 0 || !strings.HasPrefix(stdout.String(), "usage: sluice replay") {
		t.Errorf("replay ... --help: exit %d, %q", code, stdout.String())
	}
}

// TestUsageErrors: a usage error says what is wrong and the usage line on
// stderr, nothing on stdout, and exits 2.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "sluice serve: -c FILE is required\nusage: sluice serve -c FILE\n"},
		{[]string{"kill", "-c", "x"}, "sluice kill: missing argument\nusage: sluice kill -c FILE|--server URL ID\n"},
		{[]string{"sessions", "--bogus"}, "sluice sessions: flag provided but not defined: -bogus\n"},
		{[]string{"known-hosts", "del"}, "sluice known-hosts add: the only verb is add\n"},
		{[]string{"completion", "fish"}, "sluice completion: unknown shell \"fish\": want bash or zsh\n"},
		{[]string{"nope"}, "sluice: unknown command \"nope\"\n"},
		{nil, "usage: sluice COMMAND [flags]\n"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), tc.want) {
			t.Errorf("sluice %q: exit %d, stdout %q, stderr %q; want 2, nothing, %q", tc.args, code, stdout.String(), stderr.String(), tc.want)
		}
	}
}

// TestBashCompletion loads the script in a real bash and asks it, as
// bash's completion would, for commands, verbs, flags and file names.
func TestBashCompletion(t *testing.T) {
	bash := sshtest.RequireTool(t, "bash")
	var script bytes.Buffer
	if code := run([]string{"completion", "bash"}, &script, os.Stderr); code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.bash")
	if err := os.WriteFile(path, script.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gateway.yaml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		// COMP_WORDS as bash splits the line; the last word is the one
		// being completed.
		q := make([]string, len(words))
		for i, w := range words {
			q[i] = "'" + w + "'"
		}
		cmd := exec.Command(bash, "-c", `source "$1"; COMP_WORDS=(`+strings.Join(q, " ")+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _sluice; printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '`, "bash", path)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sluice", "se"}, "serve sessions"},
		{[]string{"sluice", "audit", "v"}, "verify"},
		{[]string{"sluice", "audit", "verify", "--h"}, "--head --help"},
		{[]string{"sluice", "sessions", "--l"}, "--live"},
		{[]string{"sluice", "completion", ""}, "--help bash zsh"},
		{[]string{"sluice", "serve", "-c", "gate"}, "gateway.yaml"},
		{[]string{"sluice", "help", "kn"}, "known-hosts"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("complete %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestZshCompletion: the zsh script parses, defines _sluice through
// compinit from fpath, and lists every command with its summary.
func TestZshCompletion(t *testing.T) {
	zsh := sshtest.RequireTool(t, "zsh")
	var script bytes.Buffer
	if code := run([]string{"completion", "zsh"}, &script, os.Stderr); code != 0 {
		t.Fatalf("completion zsh: exit %d", code)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "_sluice"), script.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zsh, "-n", filepath.Join(dir, "_sluice")).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v: %s", err, out)
	}
	cmd := exec.Command(zsh, "-f", "-c", `fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -d "$1/.zcompdump"; print -r -- ${_comps[sluice]}; autoload +X _sluice; whence -w _sluice`, "zsh", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v: %s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) != 3 || got[0] != "_sluice" || got[2] != "function" {
		t.Fatalf("zsh: got %q, want _sluice registered for sluice and loaded as a function", out)
	}
	for _, n := range sortedNames(commands()) {
		if !strings.Contains(script.String(), "'"+n+":"+zshQuote(commands()[n].summary)+"'") {
			t.Errorf("zsh script lacks command %s with its summary", n)
		}
	}
}
