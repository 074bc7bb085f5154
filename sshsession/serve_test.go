package sshsession

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
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

// TestExitStatusBeforeEOF checks the order of the last messages, sshd's:
// exit-status, EOF, then close. x/crypto's client queues a request before
// it handles the next packet, so once stdout reports EOF an exit-status
// sent ahead of it is already queued.
func TestExitStatusBeforeEOF(t *testing.T) {
	h := &testHandler{serve: func(s *Session) {
		_, _ = s.Write([]byte("out"))
		s.Exit(42)
	}}
	sv := startServer(t, context.Background(), nil, h)
	ch, reqs := openSession(t, sv.client)
	defer ch.Close()
	if !sendRequest(t, ch, &ShellRequest{}) {
		t.Fatal("shell: got refused, want accepted")
	}
	if b, err := io.ReadAll(ch); err != nil || string(b) != "out" {
		t.Fatalf("stdout: got %q, %v, want %q", b, err, "out")
	}
	var r *ssh.Request
	select {
	case r = <-reqs:
	default:
		t.Fatal("EOF arrived before exit-status")
	}
	if r == nil {
		t.Fatal("requests closed before exit-status arrived")
	}
	status, err := ParseExitStatus(r.Payload)
	if r.Type != "exit-status" || err != nil || status != 42 {
		t.Fatalf("got %s %d (%v), want exit-status 42", r.Type, status, err)
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

// TestRefusedProgramWithoutReplyCloses: a shell, exec or subsystem
// request sent without want-reply and refused closes the channel, so the
// client does not wait for a program that never starts; one refused while
// a program runs leaves it running.
func TestRefusedProgramWithoutReplyCloses(t *testing.T) {
	h := &testHandler{
		handle: func(s *Session, r Request) error {
			if e, ok := r.(*ExecRequest); ok && e.Command != "allowed" {
				return errors.New("refused")
			}
			return nil
		},
		serve: func(s *Session) { <-s.Context().Done() },
	}
	sv := startServer(t, context.Background(), nil, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	if _, err := ch.SendRequest("exec", false, (&ExecRequest{Command: "refused"}).Marshal()); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := ch.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if err != io.EOF {
			t.Fatalf("read after the refused exec: got %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the channel stayed open after an exec refused without want-reply")
	}

	ch2, _ := openSession(t, sv.client)
	defer ch2.Close()
	if !sendRequest(t, ch2, &ExecRequest{Command: "allowed"}) {
		t.Fatal("exec allowed: got refused")
	}
	if _, err := ch2.SendRequest("exec", false, (&ExecRequest{Command: "refused"}).Marshal()); err != nil {
		t.Fatal(err)
	}
	if !sendRequest(t, ch2, &BreakRequest{}) {
		t.Fatal("break after a refused second exec: got refused, want the channel still served")
	}
}

// TestExitStatusBeforeEOFOpenSSH checks the order with OpenSSH's client,
// which logs each channel message as it handles it, in wire order.
func TestExitStatusBeforeEOFOpenSSH(t *testing.T) {
	sshPath := sshtest.RequireTool(t, "ssh")
	h := &testHandler{serve: func(s *Session) {
		_, _ = s.Write([]byte("out"))
		s.Exit(3)
	}}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sc := &ssh.ServerConfig{NoClientAuth: true}
	sc.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		conn, chans, reqs, err := ssh.NewServerConn(nc, sc)
		if err != nil {
			return
		}
		_ = ServeConn(context.Background(), conn, chans, reqs, func(*ssh.ServerConn) Handler { return h }, nil)
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cmd := exec.Command(sshPath, "-vv", "-F", "/dev/null", "-p", port, "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "alice@127.0.0.1", "x")
	var out, log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &log
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || out.String() != "out" {
		t.Fatalf("ssh: got %v, stdout %q, want exit 3 and %q\n%s", err, out.String(), "out", log.String())
	}
	<-done
	l := log.String()
	status, eof := strings.Index(l, "rtype exit-status"), strings.Index(l, "rcvd eof")
	if status < 0 || eof < 0 || status > eof {
		t.Fatalf("got exit-status at %d, EOF at %d in the client's log, want exit-status first:\n%s", status, eof, l)
	}
}
