package scpproxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// procStream is a child process's stdout and stdin as a Stream.
type procStream struct {
	io.Reader
	io.WriteCloser
}

func (p procStream) CloseWrite() error { return p.WriteCloser.Close() }

// pipeStream is one end of two io.Pipes.
type pipeStream struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (s pipeStream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s pipeStream) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s pipeStream) CloseWrite() error           { return s.w.Close() }

// TestRelayToOpenSSHSink relays a scripted client's upload to OpenSSH's
// own "scp -t": a permitted file arrives and is audited with its sha256
// (none under content_hash: false), a denied name and an oversized file
// are answered by the proxy and never reach scp, and so is a T record
// (times) under allow_setstat false.
func TestRelayToOpenSSHSink(t *testing.T) {
	for _, noHash := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoContentHash=%v", noHash), func(t *testing.T) { relayToOpenSSHSink(t, noHash) })
	}
}

// sinkSession is a Proxy relaying a scripted client to OpenSSH's own
// "scp -t", in a session stacked as ".../ssh/session:0/scp".
type sinkSession struct {
	t     *testing.T
	in    *bufio.Reader
	cw    *io.PipeWriter
	cmd   *exec.Cmd
	done  chan error
	audit *sshtest.AuditSink
}

// startSink runs command (scp's server command line) behind a Proxy with
// pol and res.
func startSink(t *testing.T, command string, pol policy.Files, res Resolver) *sinkSession {
	t.Helper()
	scp := sshtest.RequireTool(t, "scp")
	c, err := ParseCommand(command)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(scp, strings.Fields(command)[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cr, pw := io.Pipe()
	pr, cw := io.Pipe()
	s := &sinkSession{t: t, in: bufio.NewReader(cr), cw: cw, cmd: cmd, done: make(chan error, 1), audit: &sshtest.AuditSink{}}
	p := New(Params{Service: "svc", Policy: pol, Audit: s.audit, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "svc", Instance: 1})
	t.Cleanup(m.Destroy)
	st := m.Stack("ssh", -1).Stack("session", 0).Stack("scp", -1)
	go func() {
		_, _, err := p.Relay(context.Background(), st, c, res, pipeStream{pr, pw}, procStream{stdout, stdin})
		cr.Close()
		s.done <- err
	}()
	return s
}

// status reads the status the client is sent and wants it to be want.
func (s *sinkSession) status(want string) {
	s.t.Helper()
	got, _, err := readStatus(s.in)
	if err != nil || string(got) != want {
		s.t.Fatalf("got status %q, %v; want %q", got, err, want)
	}
}

// send sends b as the client.
func (s *sinkSession) send(b string) {
	s.t.Helper()
	if _, err := io.WriteString(s.cw, b); err != nil {
		s.t.Fatal(err)
	}
}

// end sends the client's EOF and returns Relay's error and then scp's.
func (s *sinkSession) end() (relay, scp error) {
	s.cw.Close()
	relay = <-s.done
	return relay, s.cmd.Wait()
}

func relayToOpenSSHSink(t *testing.T, noHash bool) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pol := policy.Files{AllowUpload: true, AllowDownload: true, DenyPaths: []string{dir + "/secret*"}, MaxUploadSize: 10, NoContentHash: noHash}
	ss := startSink(t, "scp -p -d -t "+dir, pol, fsResolver{})
	ss.status("\x00")
	ss.send("T1700000000 0 1700000000 0\n")
	ss.status("\x00")
	ss.send("C0640 5 ok.txt\n")
	ss.status("\x00")
	ss.send("hello\x00")
	ss.status("\x00")
	ss.send("C0644 5 secret.txt\n")
	ss.status("\x01sluice: secret.txt: denied by policy\n")
	ss.send("C0644 11 big.txt\n")
	ss.status("\x01sluice: big.txt: denied by policy\n")
	if err, scpErr := ss.end(); err != nil || scpErr != nil {
		t.Fatalf("Relay: %v; scp -t: %v", err, scpErr)
	}
	s := ss.audit
	if got, err := os.ReadFile(filepath.Join(dir, "ok.txt")); err != nil || string(got) != "hello" {
		t.Fatalf("ok.txt: got %q, %v; want hello", got, err)
	}
	// allow_setstat is false: the proxy answered the T record itself.
	if fi, err := os.Stat(filepath.Join(dir, "ok.txt")); err != nil || fi.ModTime().Unix() == 1700000000 {
		t.Fatalf("ok.txt: got %v, %v; want the T record's mtime not applied", fi, err)
	}
	for _, f := range []string{"secret.txt", "big.txt"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			t.Fatalf("%s reached the server", f)
		}
	}
	sum := sha256.Sum256([]byte("hello"))
	okSum := hex.EncodeToString(sum[:])
	if noHash {
		okSum = ""
	}
	want := []struct {
		verdict         audit.Verdict
		rule, path, sha string
	}{
		{audit.Reject, "services[svc].policy.subsystems.sftp.allow_setstat", "", ""},
		{audit.Accept, "services[svc].policy.subsystems.sftp", dir + "/ok.txt", okSum},
		{audit.Reject, "services[svc].policy.subsystems.sftp.deny_paths[0]", dir + "/secret.txt", ""},
		{audit.Reject, "services[svc].policy.subsystems.sftp.max_upload_size", dir + "/big.txt", ""},
	}
	events := s.Events("")
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(events), len(want), events)
	}
	for i, w := range want {
		e := events[i]
		sha, _ := e.Detail["sha256"].(string)
		p, _ := e.Detail["path"].(string)
		typ := "scp.upload"
		if i == 0 {
			typ = "scp.setstat"
		}
		if e.Type != typ || e.Verdict != w.verdict || e.Rule != w.rule || p != w.path || sha != w.sha || e.SessionID != "gw1/svc:1/ssh/session:0/scp" {
			t.Errorf("event %d: got %s %s %s %q %q in %s; want %s %s %s %q %q", i, e.Type, e.Verdict, e.Rule, p, sha, e.SessionID, typ, w.verdict, w.rule, w.path, w.sha)
		}
	}
}

// TestRelayBoundsDepth: a source that enters directories without end is
// stopped at maxDepth, so that what the relay holds stays bounded.
func TestRelayBoundsDepth(t *testing.T) {
	c, err := ParseCommand("scp -r -t /srv")
	if err != nil {
		t.Fatal(err)
	}
	cr, pw := io.Pipe()
	pr, cw := io.Pipe()
	sr, spw := io.Pipe()
	spr, sw := io.Pipe()
	// The sink answers every record with OK.
	go func() {
		defer sw.Close()
		if _, err := sw.Write([]byte{0}); err != nil {
			return
		}
		for in := bufio.NewReader(sr); ; {
			if _, err := readLine(in); err != nil {
				return
			}
			if _, err := sw.Write([]byte{0}); err != nil {
				return
			}
		}
	}()
	p := New(Params{Service: "svc", Policy: policy.Files{AllowUpload: true, AllowDownload: true, AllowMkdir: true}, Audit: &sshtest.AuditSink{}, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "svc", Instance: 1})
	defer m.Destroy()
	done := make(chan error, 1)
	go func() {
		_, _, err := p.Relay(context.Background(), m.Stack("scp", -1), c, nil, pipeStream{pr, pw}, pipeStream{spr, spw})
		done <- err
	}()
	go func() {
		in := bufio.NewReader(cr)
		for range maxDepth + 10 {
			if _, _, err := readStatus(in); err != nil {
				return
			}
			if _, err := io.WriteString(cw, "D0755 0 d\n"); err != nil {
				return
			}
		}
	}()
	if err := <-done; !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("got %v, want ErrProtocol for directories nested deeper than %d", err, maxDepth)
	}
	cw.Close()
	sr.Close()
}
