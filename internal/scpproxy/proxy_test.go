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

func relayToOpenSSHSink(t *testing.T, noHash bool) {
	scp := sshtest.RequireTool(t, "scp")
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCommand("scp -p -d -t " + dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(scp, "-p", "-d", "-t", dir)
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
	client := pipeStream{pr, pw}
	s := &sshtest.AuditSink{}
	pol := policy.Files{AllowUpload: true, AllowDownload: true, DenyPaths: []string{dir + "/secret*"}, MaxUploadSize: 10, NoContentHash: noHash}
	p := New(Params{Service: "svc", Policy: pol, Audit: s, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "svc", Instance: 1})
	defer m.Destroy()
	st := m.Stack("ssh", -1).Stack("session", 0).Stack("scp", -1)
	done := make(chan error, 1)
	go func() {
		_, _, err := p.Relay(context.Background(), st, c, fsResolver{}, client, procStream{stdout, stdin})
		done <- err
	}()

	in := bufio.NewReader(cr)
	status := func(want string) {
		t.Helper()
		got, _, err := readStatus(in)
		if err != nil || string(got) != want {
			t.Fatalf("got status %q, %v; want %q", got, err, want)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(cw, s); err != nil {
			t.Fatal(err)
		}
	}
	status("\x00")
	send("T1700000000 0 1700000000 0\n")
	status("\x00")
	send("C0640 5 ok.txt\n")
	status("\x00")
	send("hello\x00")
	status("\x00")
	send("C0644 5 secret.txt\n")
	status("\x01sluice: secret.txt: denied by policy\n")
	send("C0644 11 big.txt\n")
	status("\x01sluice: big.txt: denied by policy\n")
	cw.Close()
	if err := <-done; err != nil {
		t.Fatalf("Relay: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("scp -t: %v", err)
	}
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
