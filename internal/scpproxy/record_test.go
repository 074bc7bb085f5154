package scpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseRecord(t *testing.T) {
	tests := []struct {
		line string
		want record
		err  error
	}{
		{"C0644 12 a.txt\n", record{typ: recFile, mode: 0o644, size: 12, name: "a.txt"}, nil},
		{"C4755 0 run me\n", record{typ: recFile, mode: 0o4755, name: "run me"}, nil},
		{"D0755 0 dir\n", record{typ: recDir, mode: 0o755, name: "dir"}, nil},
		{"D0755 0 .\n", record{typ: recDir, mode: 0o755, name: "."}, nil},
		{"E\n", record{typ: recEnd}, nil},
		{"T1700000000 0 1700000001 999999\n", record{typ: recTimes, mtime: 1700000000, atime: 1700000001, atimeUsec: 999999}, nil},
		{"\x01scp: x: No such file\n", record{typ: recError, msg: "scp: x: No such file"}, nil},
		{"\x02fatal\n", record{typ: recFatal, msg: "fatal"}, nil},
		{"C0644 12 ../x\n", record{}, ErrProtocol},
		{"C0644 12 ..\n", record{}, ErrProtocol},
		{"C0644 12 \n", record{}, ErrProtocol},
		{"C0644 12 a\x00b\n", record{}, ErrProtocol},
		{"C0844 12 a\n", record{}, ErrProtocol},
		{"C644 12 a\n", record{}, ErrProtocol},
		{"C0644 012 a\n", record{}, ErrProtocol},
		{"C0644 -1 a\n", record{}, ErrProtocol},
		{"C0644 9223372036854775808 a\n", record{}, ErrProtocol},
		{"C0644 12a\n", record{}, ErrProtocol},
		{"D0755 5 dir\n", record{}, ErrProtocol},
		{"E \n", record{}, ErrProtocol},
		{"T1 0 2 1000000\n", record{}, ErrProtocol},
		{"T1 0 2\n", record{}, ErrProtocol},
		{"X\n", record{}, ErrProtocol},
		{"C0644 1 a", record{}, ErrProtocol},
	}
	for _, tc := range tests {
		got, err := parseRecord([]byte(tc.line))
		if !errors.Is(err, tc.err) {
			t.Errorf("%q: got error %v, want %v", tc.line, err, tc.err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

func TestReadLineAndStatus(t *testing.T) {
	long := strings.Repeat("x", maxLine)
	for _, tc := range []struct {
		in   string
		want string
		err  error
	}{
		{"C0644 1 a\nrest", "C0644 1 a\n", nil},
		{"", "", io.EOF},
		{"C0644", "", io.ErrUnexpectedEOF},
		{long + "\n", "", ErrProtocol},
	} {
		got, err := readLine(bufio.NewReaderSize(strings.NewReader(tc.in), 16))
		if !errors.Is(err, tc.err) || string(got) != tc.want {
			t.Errorf("readLine(%.20q): got %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		in     string
		want   string
		wantOK bool
		err    error
	}{
		{"\x00more", "\x00", true, nil},
		{"\x01scp: no\nmore", "\x01scp: no\n", false, nil},
		{"bash: scp: not found\n", "bash: scp: not found\n", false, nil},
		{"\x01scp: cut", "", false, io.ErrUnexpectedEOF},
		{"", "", false, io.EOF},
	} {
		got, ok, err := readStatus(bufio.NewReader(strings.NewReader(tc.in)))
		if !errors.Is(err, tc.err) || string(got) != tc.want || ok != tc.wantOK {
			t.Errorf("readStatus(%q): got %q, %v, %v; want %q, %v, %v", tc.in, got, ok, err, tc.want, tc.wantOK, tc.err)
		}
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		cmd  string
		want Command
		ok   bool
	}{
		{"scp -t /srv/in", Command{Sink: true, Path: "/srv/in"}, true},
		{"scp -v -r -p -d -t -- -odd", Command{Sink: true, Recursive: true, Preserve: true, TargetDir: true, Path: "-odd"}, true},
		{"scp -rpf ~/x", Command{Recursive: true, Preserve: true, Path: "~/x"}, true},
		{"scp -f .", Command{Path: "."}, true},
		{"scp -t", Command{}, false},
		{"scp -t a b", Command{}, false},
		{"scp -tf a", Command{}, false},
		{"scp -r a", Command{}, false},
		{"scp -t -x a", Command{}, false},
		{"scp - -t a", Command{}, false},
		{"scp -t -odd", Command{}, false},
		{"/usr/bin/scp -t a", Command{}, false},
		{"cd /x && scp -t a", Command{}, false},
		{"scp -t /x;rm", Command{}, false},
		{"scp -t /sec?et", Command{}, false},
		{"scp -t $HOME/x", Command{}, false},
		{"scp -t `id`", Command{}, false},
		{"scp -t ~root/x", Command{}, false},
		{"scp -f ~", Command{}, false},
		{"scp -t\t/x", Command{}, false},
		{"scp -t a\\ b", Command{}, false},
	}
	for _, tc := range tests {
		got, err := ParseCommand(tc.cmd)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseCommand(%q): got %+v, %v; want %+v, ok %v", tc.cmd, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrCommand) {
			t.Errorf("ParseCommand(%q): got %v, want ErrCommand", tc.cmd, err)
		}
	}
}

func TestPaths(t *testing.T) {
	tests := []struct {
		cmd  string
		name string
		want []string
	}{
		{"scp -t /srv/in", "f", []string{"/srv/in", "/srv/in/f"}},
		{"scp -t /srv/in/", "f", []string{"/srv/in/f"}},
		{"scp -d -t /srv/in", "f", []string{"/srv/in/f"}},
		{"scp -t /srv/in/..", "f", []string{"/srv/f"}},
		{"scp -t .", "f", []string{"f"}},
		{"scp -t ~", "f", []string{"f"}},
		{"scp -t ~/up", "f", []string{"up", "up/f"}},
		{"scp -f /srv/out/f", "f", []string{"/srv/out/f"}},
		{"scp -r -f /srv/out/d/", "d", []string{"/srv/out/d"}},
	}
	for _, tc := range tests {
		c, err := ParseCommand(tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := (&relay{cmd: c}).paths(tc.name)
		var got []string
		for _, l := range ls {
			if l.canon != l.lex {
				t.Errorf("%q, %q: got %q resolved before it was asked", tc.cmd, tc.name, l.canon)
			}
			got = append(got, l.lex)
		}
		if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%q, %q: got %q, %v; want %q", tc.cmd, tc.name, got, err, tc.want)
		}
	}
	c, _ := ParseCommand("scp -f /srv/out/f")
	if _, err := (&relay{cmd: c}).paths("other"); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a download's record for another name: got %v, want ErrProtocol", err)
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"C0644 12 a.txt\n", "D0755 0 dir\n", "E\n", "T1700000000 0 1700000001 0\n",
		"\x01scp: x: No such file\n", "C0644 12 ../x\n", "C0644 1 a\x00b\n", "T1 0 2 1000000\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		line, err := readLine(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		rec, err := parseRecord(line)
		if err != nil {
			return
		}
		// What is accepted is forwarded re-encoded: it must be the line.
		if got := rec.marshal(); !bytes.Equal(got, line) {
			t.Fatalf("got %q re-encoded, want %q", got, line)
		}
		if (rec.typ == recFile || rec.typ == recDir) && (rec.name == "" || rec.name == ".." || strings.ContainsAny(rec.name, "/\x00\n")) {
			t.Fatalf("name %q accepted", rec.name)
		}
	})
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"scp -t /srv/in", "scp -v -r -p -d -t -- -odd", "scp -f ~/x", "scp -t /x;rm", "cd / && scp -f x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		c, err := ParseCommand(cmd)
		if err != nil {
			return
		}
		if strings.ContainsAny(c.Path, shellSpecial+" \t\n\x00") {
			t.Fatalf("path %q with a shell-special byte accepted", c.Path)
		}
		if strings.HasPrefix(c.Path, "~") && c.Path != "~" && !strings.HasPrefix(c.Path, "~/") {
			t.Fatalf("path %q of another home accepted", c.Path)
		}
	})
}
