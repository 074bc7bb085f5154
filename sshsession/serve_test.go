package sshsession

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestExecEchoesStdinAndExitStatus(t *testing.T) {
	type seen struct {
		user    string
		remote  bool
		program Request
		stdin   string
		readErr error
	}
	seenc := make(chan seen, 1)
	h := &testHandler{serve: func(s *Session) {
		in, err := io.ReadAll(s)
		seenc <- seen{s.User(), s.RemoteAddr() != nil && s.LocalAddr() != nil, s.Program(), string(in), err}
		io.WriteString(s, "out:"+string(in))
		io.WriteString(s.Stderr(), "err")
		s.Exit(7)
	}}
	sv := startServer(t, context.Background(), nil, h)
	sess, err := sv.client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdin = bytes.NewBufferString("hello")
	sess.Stdout, sess.Stderr = &stdout, &stderr
	err = sess.Run("cat")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
		t.Fatalf("Run: got %v, want exit status 7", err)
	}
	if got, want := stdout.String(), "out:hello"; got != want {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if got, want := stderr.String(), "err"; got != want {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
	got := waitFor(t, seenc, "Serve")
	if got.user != "alice" || !got.remote || got.stdin != "hello" || got.readErr != nil {
		t.Errorf("session: got user %q, addrs %v, stdin %q, err %v; want alice, true, hello, nil", got.user, got.remote, got.stdin, got.readErr)
	}
	if e, ok := got.program.(*ExecRequest); !ok || e.Command != "cat" {
		t.Errorf("Program: got %#v, want exec cat", got.program)
	}
}

func TestExitSignal(t *testing.T) {
	h := &testHandler{serve: func(s *Session) {
		s.Exit(3)
		s.ExitWithSignal(ExitSignal{Signal: "TERM", Message: "killed", Language: "en"})
	}}
	sv := startServer(t, context.Background(), nil, h)
	sess, err := sv.client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	err = sess.Run("x")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" || ee.Msg() != "killed" {
		t.Fatalf("Run: got %v, want exit signal TERM (killed)", err)
	}
}

// TestExitStatusBeforeClose checks the order of the last messages: EOF,
// exit-status, then close.
func TestExitStatusBeforeClose(t *testing.T) {
	h := &testHandler{serve: func(s *Session) { s.Exit(42) }}
	sv := startServer(t, context.Background(), nil, h)
	ch, reqs := openSession(t, sv.client)
	defer ch.Close()
	if !sendRequest(t, ch, &ShellRequest{}) {
		t.Fatal("shell: got refused, want accepted")
	}
	r := waitFor(t, reqs, "exit-status")
	if r == nil {
		t.Fatal("requests closed before exit-status arrived")
	}
	status, err := ParseExitStatus(r.Payload)
	if r.Type != "exit-status" || err != nil || status != 42 {
		t.Fatalf("got %s %d (%v), want exit-status 42", r.Type, status, err)
	}
	if _, err := ch.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("stdout after exit-status: got %v, want io.EOF", err)
	}
	if r, ok := <-reqs; ok {
		t.Errorf("after exit-status: got request %q, want channel closed", r.Type)
	}
}

func TestSecondProgramRefused(t *testing.T) {
	release := make(chan struct{})
	served := make(chan Request, 4)
	h := &testHandler{serve: func(s *Session) {
		served <- s.Program()
		select {
		case <-release:
		case <-s.Context().Done():
		}
	}}
	sv := startServer(t, context.Background(), nil, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	if !sendRequest(t, ch, &ExecRequest{Command: "first"}) {
		t.Fatal("first exec: got refused, want accepted")
	}
	for _, r := range []Request{&ShellRequest{}, &ExecRequest{Command: "second"}, &SubsystemRequest{Name: "sftp"}} {
		if sendRequest(t, ch, r) {
			t.Errorf("%s after exec: got accepted, want refused", r.Type())
		}
	}
	close(release)
	if p := waitFor(t, served, "Serve"); p.(*ExecRequest).Command != "first" {
		t.Errorf("Program: got %#v, want exec first", p)
	}
	select {
	case p := <-served:
		t.Errorf("Serve ran twice, second time with %#v", p)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestRefusedSubsystemStartsNothing(t *testing.T) {
	started := make(chan struct{}, 1)
	h := &testHandler{
		handle: func(s *Session, r Request) error {
			if sub, ok := r.(*SubsystemRequest); ok && sub.Name != "sftp" {
				return errors.New("no such subsystem")
			}
			return nil
		},
		serve: func(s *Session) { started <- struct{}{} },
	}
	sv := startServer(t, context.Background(), nil, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	if sendRequest(t, ch, &SubsystemRequest{Name: "netconf"}) {
		t.Fatal("subsystem netconf: got accepted, want refused")
	}
	select {
	case <-started:
		t.Fatal("Serve ran for a refused subsystem")
	case <-time.After(100 * time.Millisecond):
	}
	if !sendRequest(t, ch, &SubsystemRequest{Name: "sftp"}) {
		t.Fatal("subsystem sftp after a refused one: got refused, want accepted")
	}
	waitFor(t, started, "Serve for sftp")
}
