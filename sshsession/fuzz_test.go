package sshsession

import (
	"reflect"
	"testing"
)

// fuzzRequest checks that ParseRequest never panics and that whatever it
// accepts survives Marshal and a second parse unchanged.
func fuzzRequest(f *testing.F, typ string, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := ParseRequest(typ, payload, Limits{})
		if err != nil {
			if r != nil {
				t.Fatalf("got request %#v with error %v, want nil", r, err)
			}
			return
		}
		if r.Type() != typ {
			t.Fatalf("Type: got %q, want %q", r.Type(), typ)
		}
		again, err := ParseRequest(typ, r.Marshal(), Limits{})
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: got %#v, %v; want %#v", again, err, r)
		}
	})
}

func FuzzParsePty(f *testing.F) {
	fuzzRequest(f, "pty-req",
		wire("xterm-256color", uint32(80), uint32(24), uint32(0), uint32(0), modes(53, 0, 0, 0, 1, 128, 0, 0, 0x96, 0, 0)),
		wire("", uint32(0), uint32(0), uint32(0), uint32(0), ""),
		wire("vt100", uint32(1), uint32(2), uint32(3), uint32(4), modes(1, 0, 0, 0, 3)),
		wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0), modes(0, 53, 0, 0, 0, 1)),
		wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0), modes(200)),
	)
}

func FuzzParseEnv(f *testing.F) {
	fuzzRequest(f, "env", wire("LANG", "C.UTF-8"), wire("A=B", ""), wire("", "x"), wire("X"))
}

func FuzzParseShell(f *testing.F) {
	fuzzRequest(f, "shell", nil, []byte{0})
}

func FuzzParseExec(f *testing.F) {
	fuzzRequest(f, "exec", wire("ls -l"), wire(""), wire("a\x00b"), []byte{0, 0, 0, 5})
}

func FuzzParseSubsystem(f *testing.F) {
	fuzzRequest(f, "subsystem", wire("sftp"), wire(""), wire("a b"))
}

func FuzzParseWindowChange(f *testing.F) {
	fuzzRequest(f, "window-change", wire(uint32(80), uint32(24), uint32(0), uint32(0)), wire(uint32(80)))
}

func FuzzParseSignal(f *testing.F) {
	fuzzRequest(f, "signal", wire("INT"), wire("USR1@example.com"), wire(""))
}

func FuzzParseBreak(f *testing.F) {
	fuzzRequest(f, "break", wire(uint32(500)), []byte{1})
}

func FuzzParseExitStatus(f *testing.F) {
	for _, s := range [][]byte{MarshalExitStatus(0), MarshalExitStatus(255), {1, 2}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		status, err := ParseExitStatus(payload)
		if err != nil {
			return
		}
		if again, err := ParseExitStatus(MarshalExitStatus(status)); err != nil || again != status {
			t.Fatalf("round trip: got %d, %v; want %d", again, err, status)
		}
	})
}

func FuzzParseExitSignal(f *testing.F) {
	for _, s := range [][]byte{
		ExitSignal{Signal: "TERM"}.Marshal(),
		ExitSignal{Signal: "SEGV", CoreDumped: true, Message: "core", Language: "en"}.Marshal(),
		wire("HUP", []byte{2}, "", ""),
		wire("KILL", false),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		sig, err := ParseExitSignal(payload)
		if err != nil {
			return
		}
		if again, err := ParseExitSignal(sig.Marshal()); err != nil || again != sig {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, sig)
		}
	})
}
