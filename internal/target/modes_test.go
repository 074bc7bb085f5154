package target

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sluice-ssh/sluice/sshsession"
)

func TestApplyModes(t *testing.T) {
	base := unix.Termios{Iflag: unix.ICRNL, Lflag: unix.ECHO | unix.ICANON, Cflag: unix.CS8}
	tests := []struct {
		name  string
		modes []sshsession.Mode
		check func(unix.Termios) bool
	}{
		{"echo off", []sshsession.Mode{{Opcode: opECHO, Value: 0}}, func(t unix.Termios) bool { return t.Lflag&unix.ECHO == 0 && t.Lflag&unix.ICANON != 0 }},
		{"iutf8 on", []sshsession.Mode{{Opcode: opIUTF8, Value: 1}}, func(t unix.Termios) bool { return t.Iflag&unix.IUTF8 != 0 && t.Iflag&unix.ICRNL != 0 }},
		{"vintr", []sshsession.Mode{{Opcode: opVINTR, Value: 3}}, func(t unix.Termios) bool { return t.Cc[unix.VINTR] == 3 }},
		{"cs7", []sshsession.Mode{{Opcode: opCS7, Value: 1}}, func(t unix.Termios) bool { return t.Cflag&unix.CSIZE == unix.CS7 }},
		{"cs8 zero ignored", []sshsession.Mode{{Opcode: opCS8, Value: 0}}, func(t unix.Termios) bool { return t.Cflag&unix.CSIZE == unix.CS8 }},
		{"opost off", []sshsession.Mode{{Opcode: opOPOST, Value: 0}}, func(t unix.Termios) bool { return t.Oflag&unix.OPOST == 0 }},
		{"speeds and unknown ignored", []sshsession.Mode{{Opcode: 128, Value: 38400}, {Opcode: 129, Value: 38400}, {Opcode: 100, Value: 1}, {Opcode: 11, Value: 7}}, func(t unix.Termios) bool { return t == base }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tio := base
			applyModes(&tio, tt.modes)
			if !tt.check(tio) {
				t.Errorf("got termios %+v, want %s applied to %+v", tio, tt.name, base)
			}
		})
	}
}

func FuzzApplyModes(f *testing.F) {
	f.Add(uint8(opECHO), uint32(0), uint8(opVINTR), uint32(3))
	f.Add(uint8(opCS7), uint32(1), uint8(opCS8), uint32(0))
	f.Add(uint8(159), uint32(0xffffffff), uint8(0), uint32(0))
	f.Fuzz(func(t *testing.T, op1 uint8, v1 uint32, op2 uint8, v2 uint32) {
		var tio unix.Termios
		applyModes(&tio, []sshsession.Mode{{Opcode: op1, Value: v1}, {Opcode: op2, Value: v2}})
		if size := tio.Cflag & unix.CSIZE; size != 0 && size != unix.CS7 && size != unix.CS8 {
			t.Errorf("character size: got %#x, want 0, CS7 or CS8", size)
		}
	})
}

func TestSignalNames(t *testing.T) {
	for _, name := range []string{"ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM", "USR1", "USR2"} {
		sig, ok := signalByName(name)
		if !ok {
			t.Errorf("signalByName(%q): got not found, want a signal", name)
			continue
		}
		if got := signalName(sig); got != name {
			t.Errorf("signalName(signalByName(%q)): got %q, want %q", name, got, name)
		}
	}
	if _, ok := signalByName("SIGTERM"); ok {
		t.Error(`signalByName("SIGTERM"): got found, want not found (names have no SIG prefix)`)
	}
	if got, want := signalName(syscall.SIGCHLD), "SIG@openssh.com"; got != want {
		t.Errorf("signalName(SIGCHLD): got %q, want %q", got, want)
	}
}
