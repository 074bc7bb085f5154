package sshsession

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// wire builds a payload from uint32, string, []byte and bool values.
func wire(vs ...any) []byte {
	var b []byte
	for _, v := range vs {
		switch v := v.(type) {
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		case string:
			b = appendString(b, v)
		case []byte:
			b = append(b, v...)
		case bool:
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		default:
			panic("wire: unsupported type")
		}
	}
	return b
}

// modes builds an encoded terminal-modes string body.
func modes(bs ...byte) string { return string(bs) }

func TestParseRequest(t *testing.T) {
	small := Limits{MaxTermLen: 5, MaxModes: 2, MaxEnvName: 4, MaxEnvValue: 3, MaxCommandLen: 4, MaxSubsystem: 4}
	tests := []struct {
		name    string
		typ     string
		payload []byte
		lim     Limits
		want    Request
		wantErr string // substring; "" means success
		limit   bool   // the error must match ErrLimit
	}{
		{name: "pty", typ: "pty-req", payload: wire("xterm", uint32(80), uint32(24), uint32(640), uint32(480), modes(53, 0, 0, 0, 1, 128, 0, 0, 0x96, 0, 0)),
			want: &PtyRequest{Term: "xterm", Columns: 80, Rows: 24, WidthPixels: 640, HeightPixels: 480, Modes: []Mode{{53, 1}, {128, 38400}}}},
		{name: "pty empty modes", typ: "pty-req", payload: wire("", uint32(0), uint32(0), uint32(0), uint32(0), ""),
			want: &PtyRequest{}},
		{name: "pty modes without TTY_OP_END", typ: "pty-req", payload: wire("vt100", uint32(1), uint32(2), uint32(3), uint32(4), modes(1, 0, 0, 0, 3)),
			want: &PtyRequest{Term: "vt100", Columns: 1, Rows: 2, WidthPixels: 3, HeightPixels: 4, Modes: []Mode{{1, 3}}}},
		{name: "pty mode after TTY_OP_END", typ: "pty-req", payload: wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0), modes(0, 53, 0, 0, 0, 1)),
			wantErr: "malformed pty-req: terminal modes: 5 bytes after TTY_OP_END"},
		{name: "pty truncated mode value", typ: "pty-req", payload: wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0), modes(53, 0, 0)),
			wantErr: "opcode 53 value: truncated"},
		{name: "pty undefined opcode", typ: "pty-req", payload: wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0), modes(200, 0, 0, 0, 0, 0)),
			wantErr: "opcode 200 is undefined"},
		{name: "pty too many modes", typ: "pty-req", lim: small, payload: wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0), modes(1, 0, 0, 0, 1, 2, 0, 0, 0, 1, 3, 0, 0, 0, 1, 0)),
			wantErr: "more than 2", limit: true},
		{name: "pty term too long", typ: "pty-req", lim: small, payload: wire("xterm-256color", uint32(80), uint32(24), uint32(0), uint32(0), modes(0)),
			wantErr: "terminal name is 14 bytes, over the limit of 5", limit: true},
		{name: "pty term not printable", typ: "pty-req", payload: wire("x\x00", uint32(80), uint32(24), uint32(0), uint32(0), modes(0)),
			wantErr: "not printable"},
		{name: "pty truncated dimensions", typ: "pty-req", payload: wire("xterm", uint32(80)), wantErr: "dimensions: truncated"},
		{name: "pty missing modes", typ: "pty-req", payload: wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0)), wantErr: "terminal modes: truncated"},
		{name: "pty trailing", typ: "pty-req", payload: wire("xterm", uint32(80), uint32(24), uint32(0), uint32(0), modes(0), []byte{9}), wantErr: "trailing"},
		{name: "pty string length overflow", typ: "pty-req", payload: wire(uint32(0xffffffff), "x"), wantErr: "terminal name: truncated"},

		{name: "env", typ: "env", payload: wire("LANG", "C.UTF-8"), want: &EnvRequest{Name: "LANG", Value: "C.UTF-8"}},
		{name: "env empty value", typ: "env", payload: wire("X", ""), want: &EnvRequest{Name: "X"}},
		{name: "env empty name", typ: "env", payload: wire("", "v"), wantErr: "empty name"},
		{name: "env name with =", typ: "env", payload: wire("A=B", "v"), wantErr: "contains '='"},
		{name: "env value with NUL", typ: "env", payload: wire("A", "v\x00"), wantErr: "contains NUL"},
		{name: "env name too long", typ: "env", lim: small, payload: wire("ABCDE", "v"), wantErr: "name is 5 bytes", limit: true},
		{name: "env value too long", typ: "env", lim: small, payload: wire("A", "vvvv"), wantErr: "value is 4 bytes", limit: true},
		{name: "env missing value", typ: "env", payload: wire("A"), wantErr: "value: truncated"},
		{name: "env trailing", typ: "env", payload: wire("A", "b", uint32(0)), wantErr: "trailing"},

		{name: "shell", typ: "shell", payload: nil, want: &ShellRequest{}},
		{name: "shell with payload", typ: "shell", payload: []byte{0}, wantErr: "malformed shell: trailing"},

		{name: "exec", typ: "exec", payload: wire("ls -l"), want: &ExecRequest{Command: "ls -l"}},
		{name: "exec empty", typ: "exec", payload: wire(""), want: &ExecRequest{}},
		{name: "exec NUL", typ: "exec", payload: wire("ls\x00rm"), wantErr: "contains NUL"},
		{name: "exec too long", typ: "exec", lim: small, payload: wire("ls -l"), wantErr: "command is 5 bytes", limit: true},
		{name: "exec truncated", typ: "exec", payload: []byte{0, 0, 0, 9, 'l'}, wantErr: "command: truncated"},

		{name: "subsystem", typ: "subsystem", payload: wire("sftp"), want: &SubsystemRequest{Name: "sftp"}},
		{name: "subsystem empty", typ: "subsystem", payload: wire(""), wantErr: "empty"},
		{name: "subsystem too long", typ: "subsystem", lim: small, payload: wire("netconf"), wantErr: "over the limit of 4", limit: true},

		{name: "window-change", typ: "window-change", payload: wire(uint32(100), uint32(50), uint32(0), uint32(0)), want: &WindowChange{Columns: 100, Rows: 50}},
		{name: "window-change short", typ: "window-change", payload: wire(uint32(100), uint32(50), uint32(0)), wantErr: "truncated"},
		{name: "window-change long", typ: "window-change", payload: wire(uint32(1), uint32(1), uint32(1), uint32(1), uint32(1)), wantErr: "trailing"},

		{name: "signal", typ: "signal", payload: wire("INT"), want: &SignalRequest{Name: "INT"}},
		{name: "signal empty", typ: "signal", payload: wire(""), wantErr: "empty"},
		{name: "signal too long", typ: "signal", payload: wire(strings.Repeat("A", 65)), wantErr: "signal name is 65 bytes", limit: true},

		{name: "break", typ: "break", payload: wire(uint32(500)), want: &BreakRequest{Millis: 500}},
		{name: "break short", typ: "break", payload: []byte{0, 1}, wantErr: "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.typ, tt.payload, tt.lim)
			if tt.wantErr != "" {
				var pe *ParseError
				if err == nil || !errors.As(err, &pe) || pe.Type != tt.typ || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "sshsession: malformed ") {
					t.Fatalf("got %v, %v; want *ParseError containing %q", got, err, tt.wantErr)
				}
				if errors.Is(err, ErrLimit) != tt.limit {
					t.Errorf("errors.Is(%v, ErrLimit): got %v, want %v", err, !tt.limit, tt.limit)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %#v", err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			if got.Type() != tt.typ {
				t.Errorf("Type: got %q, want %q", got.Type(), tt.typ)
			}
			again, err := ParseRequest(tt.typ, got.Marshal(), tt.lim)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("round trip: got %#v, %v; want %#v", again, err, got)
			}
		})
	}
}

func TestParseRequestUnknownType(t *testing.T) {
	for _, typ := range []string{"x11-req", "exit-status", "", "PTY-REQ"} {
		_, err := ParseRequest(typ, nil, Limits{})
		var ue *UnknownRequestError
		if !errors.As(err, &ue) || ue.Type != typ {
			t.Errorf("ParseRequest(%q): got %v, want *UnknownRequestError", typ, err)
		}
	}
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxTermLen: 256, MaxModes: 256, MaxEnvName: 256, MaxEnvValue: 32 << 10, MaxCommandLen: 256 << 10, MaxSubsystem: 64, MaxPending: 64}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits: got %+v, want %+v", got, want)
	}
	partial := Limits{MaxEnvValue: 7}
	want.MaxEnvValue = 7
	if got := partial.withDefaults(); got != want {
		t.Errorf("withDefaults: got %+v, want %+v", got, want)
	}
	if _, err := ParseRequest("env", wire("A", strings.Repeat("v", 32<<10)), Limits{}); err != nil {
		t.Errorf("env value of the default limit: got %v, want accepted", err)
	}
	if _, err := ParseRequest("env", wire("A", strings.Repeat("v", 32<<10+1)), Limits{}); !errors.Is(err, ErrLimit) {
		t.Errorf("env value over the default limit: got %v, want ErrLimit", err)
	}
}

func TestExitPayloads(t *testing.T) {
	if got, err := ParseExitStatus(MarshalExitStatus(255)); err != nil || got != 255 {
		t.Errorf("exit-status round trip: got %d, %v; want 255", got, err)
	}
	for _, p := range [][]byte{nil, {0, 0, 1}, {0, 0, 0, 1, 0}} {
		if _, err := ParseExitStatus(p); err == nil || !strings.HasPrefix(err.Error(), "sshsession: malformed exit-status") {
			t.Errorf("ParseExitStatus(%x): got %v, want malformed exit-status", p, err)
		}
	}
	sig := ExitSignal{Signal: "SEGV", CoreDumped: true, Message: "boom", Language: "en-US"}
	if got, err := ParseExitSignal(sig.Marshal()); err != nil || got != sig {
		t.Errorf("exit-signal round trip: got %+v, %v; want %+v", got, err, sig)
	}
	if got, err := ParseExitSignal(wire("HUP", []byte{7}, "", "")); err != nil || !got.CoreDumped {
		t.Errorf("exit-signal with boolean 7: got %+v, %v; want core dumped", got, err)
	}
	bad := []struct {
		name, want string
		payload    []byte
	}{
		{"truncated", "core dumped: truncated", wire("TERM")},
		{"no language", "language tag: truncated", wire("TERM", false, "m")},
		{"trailing", "trailing", wire("TERM", false, "", "", uint32(1))},
		{"empty signal", "signal name is empty", wire("", false, "", "")},
		{"long message", "message is 32769 bytes", wire("TERM", false, strings.Repeat("m", 32<<10+1), "")},
	}
	for _, tt := range bad {
		if _, err := ParseExitSignal(tt.payload); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want error containing %q", tt.name, err, tt.want)
		}
	}
}
