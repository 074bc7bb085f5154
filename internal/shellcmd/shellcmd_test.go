package shellcmd

import (
	"slices"
	"strings"
	"sync"
	"testing"
)

// programs returns the normalised text of every command Parse finds.
func programs(a *Analysis) []string {
	var out []string
	for _, c := range a.Commands {
		out = append(out, c.Normalised)
	}
	return out
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		cmd     string
		want    []string // normalised commands
		dynamic string   // a substring of one Dynamic reason; "" for none
	}{
		{"ls -l", []string{"ls -l"}, ""},
		{"/bin/rm -rf x", []string{"rm -rf x"}, ""},
		{"ls; rm x", []string{"ls", "rm x"}, ""},
		{"true && rm x", []string{"true", "rm x"}, ""},
		{"false || rm x", []string{"false", "rm x"}, ""},
		{"ls | rm x", []string{"ls", "rm x"}, ""},
		{"(cd /; rm x)", []string{"cd /", "rm x"}, ""},
		{"{ rm x; }", []string{"rm x"}, ""},
		{"echo $(rm x)", []string{"echo $(rm x)", "rm x"}, ""},
		{"echo `rm x`", []string{"echo $(rm x)", "rm x"}, ""},
		{"cat <(rm x)", []string{"cat <(rm x)", "rm x"}, ""},
		{"r''m x", []string{"rm x"}, ""},
		{`r""m x`, []string{"rm x"}, ""},
		{`r\m x`, []string{"rm x"}, ""},
		{`"/bin/rm" x`, []string{"rm x"}, ""},
		{`$'\x72m' x`, []string{"rm x"}, ""},
		{"rm x 2>/dev/null", []string{"rm x 2>/dev/null"}, ""},
		{"f() { rm x; }; f", []string{"rm x", "f"}, ""},
		{"for i in 1; do rm $i; done", []string{"rm $i"}, ""},
		{"if true; then rm x; fi", []string{"true", "rm x"}, ""},
		{"sh -c 'rm x'", []string{"sh -c rm x", "rm x"}, ""},
		{"bash -ec 'ls; rm x'", []string{"bash -ec ls; rm x", "ls", "rm x"}, ""},
		{`sh -c "sh -c 'rm x'"`, []string{"sh -c sh -c 'rm x'", "sh -c rm x", "rm x"}, ""},
		{"bash --command=rm", []string{"bash --command=rm", "rm"}, ""},
		{"su -c 'rm x' root", []string{"su -c rm x root", "rm x"}, ""},
		{"env rm x", []string{"env rm x", "rm x"}, ""},
		{"env -i A=1 /bin/rm x", []string{"env -i A=1 /bin/rm x", "rm x"}, ""},
		{"sudo -u root rm x", []string{"sudo -u root rm x", "rm x"}, ""},
		{"nice -n 5 rm x", []string{"nice -n 5 rm x", "rm x"}, ""},
		{"timeout 5 rm x", []string{"timeout 5 rm x", "rm x"}, ""},
		{"exec rm x", []string{"exec rm x", "rm x"}, ""},
		{"command rm x", []string{"command rm x", "rm x"}, ""},
		{"nohup sudo rm x", []string{"nohup sudo rm x", "sudo rm x", "rm x"}, ""},
		{"xargs rm", []string{"xargs rm", "rm"}, ""},
		{`find . -exec rm {} \;`, []string{"find . -exec rm {} ;", "rm {}"}, ""},
		{"find . -name x -execdir /bin/rm {} +", []string{"find . -name x -execdir /bin/rm {} +", "rm {}"}, ""},
		{"watch 'rm x'", []string{"watch rm x", "rm x"}, ""},
		{"eval 'rm x'", []string{"eval rm x", "rm x"}, ""},
		{"flock /tmp/l -c 'rm x'", []string{"flock /tmp/l -c rm x", "rm x"}, ""},
		{"", nil, ""},
		{"A=1", nil, ""},

		{"$x", nil, "not a literal"},
		{"$(echo rm) x", []string{"echo rm"}, "not a literal"},
		{"/bin/r? x", nil, "not a literal"},
		{"/bin/r[m] x", nil, "not a literal"},
		{"{rm,-rf,x}", nil, "not a literal"},
		{"s=sftp-server; /usr/lib/openssh/$s", nil, "not a literal"},
		{"sftp -s '/usr/lib/openssh/sftp-serve[r]'", []string{"sftp -s /usr/lib/openssh/sftp-serve[r]"}, ""},
		{"eval $x", []string{"eval $x"}, "non-literal string"},
		{"sh -c \"$x\"", []string{"sh -c \"$x\""}, "non-literal"},
		{"bash -s", []string{"bash -s"}, "standard input"},
		{"bash", []string{"bash"}, "standard input"},
		{"sh <<EOF\nrm x\nEOF", []string{"sh <<EOF\nrm x\n"}, "standard input"},
		{"bash script.sh", []string{"bash script.sh"}, "script file"},
		{"source ./x", []string{"source ./x"}, "file"},
		{". ./x", []string{". ./x"}, "file"},
		{"PATH=/tmp ls", []string{"ls"}, "PATH"},
		{"export PATH=/tmp; ls", []string{"ls"}, "PATH"},
		{"env LD_PRELOAD=/tmp/x.so ls", []string{"env LD_PRELOAD=/tmp/x.so ls", "ls"}, "LD_PRELOAD"},
		{"env -S 'rm x'", []string{"env -S rm x"}, "splits"},
		{"alias ls=rm", []string{"alias ls=rm"}, "defines commands"},
		{"trap 'rm x' EXIT", []string{"trap rm x EXIT"}, "defines commands"},
		{"sudo $cmd", []string{"sudo $cmd"}, "non-literal"},
	} {
		t.Run(tt.cmd, func(t *testing.T) {
			a, err := Parse(tt.cmd)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.cmd, err)
			}
			if got := programs(a); !slices.Equal(got, tt.want) {
				t.Errorf("commands: got %q, want %q", got, tt.want)
			}
			got := strings.Join(a.Dynamic, "; ")
			switch {
			case tt.dynamic == "" && got != "":
				t.Errorf("dynamic: got %q, want none", got)
			case tt.dynamic != "" && !strings.Contains(got, tt.dynamic):
				t.Errorf("dynamic: got %q, want one holding %q", got, tt.dynamic)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, cmd := range []string{"ls '", "(ls", "ls \x00", "if", strings.Repeat("a", MaxLength+1)} {
		if a, err := Parse(cmd); err == nil {
			t.Errorf("Parse(%q): got %+v, want an error", cmd, a)
		}
	}
}

func TestParseDepth(t *testing.T) {
	a, err := Parse(strings.Repeat("eval ", maxDepth+2) + "rm x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(a.Dynamic, ";"), "nested") {
		t.Errorf("dynamic: got %q, want a nesting reason", a.Dynamic)
	}
}

func TestWrapped(t *testing.T) {
	a, err := Parse("sudo rm x; ls")
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, c := range a.Commands {
		got = append(got, c.Wrapped)
	}
	if want := []bool{false, true, false}; !slices.Equal(got, want) {
		t.Errorf("wrapped: got %v, want %v", got, want)
	}
}

// FuzzParse: Parse never panics, and a command it finds has a program
// name that is the base name of its text's first word.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"ls -l", "true && /bin/rm x", "sh -c 'rm x'", "r''m", "$(echo rm) x", "find . -exec rm {} ;", "env -i A=1 sudo -u r nice rm", "eval 'ls; rm'", "a=$(b) c <<EOF\nx\nEOF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		a, err := Parse(cmd)
		if err != nil {
			return
		}
		for _, c := range a.Commands {
			if c.Program == "" && c.Text != "" && !strings.HasPrefix(c.Text, " ") {
				t.Fatalf("%q: command %q without a program", cmd, c.Text)
			}
			if !strings.HasPrefix(c.Normalised, c.Program) {
				t.Fatalf("%q: normalised %q does not start with %q", cmd, c.Normalised, c.Program)
			}
		}
	})
}

// TestParseConcurrently: sessions decide their commands at once; under
// -race this fails if parsing shares state (expand.Fields given a nil
// Config prepares one package-level Config in place).
func TestParseConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				a, err := Parse(`r\m -rf x; "ls" 'a b'`)
				if err != nil || len(a.Commands) != 2 || a.Commands[0].Program != "rm" {
					t.Errorf("Parse: got %+v, %v", a, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
