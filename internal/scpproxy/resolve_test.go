package scpproxy

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// fsResolver resolves paths on the local filesystem, where the tests'
// scp runs: a missing path is no answer, as a server's status is.
type fsResolver struct{}

func (fsResolver) Realpath(p string) (string, bool, error) {
	c, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", false, nil
	}
	return c, true, nil
}

// countingResolver is a fake Resolver: it answers from links, a map of a
// path to where it leads, and fails with err when set; it keeps what it
// was asked.
type countingResolver struct {
	links map[string]string
	err   error
	mu    sync.Mutex
	asked []string
}

func (c *countingResolver) Realpath(p string) (string, bool, error) {
	c.mu.Lock()
	c.asked = append(c.asked, p)
	c.mu.Unlock()
	if c.err != nil {
		return "", false, c.err
	}
	if to, ok := c.links[p]; ok {
		return to, true, nil
	}
	return "", false, nil
}

// TestRelayDecidesResolvedPaths: under deny_paths, an upload is decided on
// where the server will act as well as on the names: a folder that is a
// link to the denied folder is refused, a file written through a link to
// it too, and a folder entered through a harmless link keeps where it
// really is, so that what lands inside is decided there.
func TestRelayDecidesResolvedPaths(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"denied", "real"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(dir, "denied", "f")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"link": "denied", "alias": "real", "real/back": "../denied/f"} {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	pol := policy.Files{AllowUpload: true, AllowDownload: true, AllowMkdir: true, DenyPaths: []string{dir + "/denied"}}
	ss := startSink(t, "scp -r -d -t "+dir, pol, fsResolver{})
	status, send := ss.status, ss.send
	status("\x00")
	send("C0644 2 ok\n")
	status("\x00")
	send("hi\x00")
	status("\x00")
	// A link to the denied folder, entered as a folder of that name.
	send("D0755 0 link\n")
	status("\x01sluice: link: denied by policy\n")
	// A harmless link: entered, and its files land where it leads.
	send("D0755 0 alias\n")
	status("\x00")
	send("C0644 2 in\n")
	status("\x00")
	send("ho\x00")
	status("\x00")
	// A file written through a link to a denied file.
	send("C0644 2 back\n")
	status("\x01sluice: back: denied by policy\n")
	send("E\n")
	status("\x00")
	if err, scpErr := ss.end(); err != nil || scpErr != nil {
		t.Fatalf("Relay: %v; scp -t: %v", err, scpErr)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "real", "in")); err != nil || string(got) != "ho" {
		t.Fatalf("real/in: got %q, %v; want ho", got, err)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "denied")); err != nil || len(ents) != 1 {
		t.Fatalf("denied: got %v, %v; want f alone", ents, err)
	}
	if got, err := os.ReadFile(secret); err != nil || string(got) != "secret" {
		t.Fatalf("denied/f: got %q, %v; want it unchanged", got, err)
	}
	deny := "services[svc].policy.subsystems.sftp.deny_paths[0]"
	want := []struct {
		typ      string
		verdict  audit.Verdict
		rule     string
		path     string
		resolved string
	}{
		{"scp.upload", audit.Accept, "services[svc].policy.subsystems.sftp", dir + "/ok", ""},
		{"scp.mkdir", audit.Reject, deny, dir + "/link", dir + "/denied"},
		{"scp.mkdir", audit.Accept, "services[svc].policy.subsystems.sftp", dir + "/alias", dir + "/real"},
		{"scp.upload", audit.Accept, "services[svc].policy.subsystems.sftp", dir + "/alias/in", dir + "/real/in"},
		{"scp.upload", audit.Reject, deny, dir + "/alias/back", dir + "/denied/f"},
	}
	events := ss.audit.Events("")
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(events), len(want), events)
	}
	for i, w := range want {
		e := events[i]
		p, _ := e.Detail["path"].(string)
		r, _ := e.Detail["path_resolved"].(string)
		if e.Type != w.typ || e.Verdict != w.verdict || e.Rule != w.rule || p != w.path || r != w.resolved {
			t.Errorf("event %d: got %s %s %s %q resolved %q; want %s %s %s %q resolved %q", i, e.Type, e.Verdict, e.Rule, p, r, w.typ, w.verdict, w.rule, w.path, w.resolved)
		}
	}
}

// TestRelayResolverFallsBackAndFailsClosed: a path the server cannot
// resolve is decided on its folder's answer plus its name; a resolver
// that cannot be asked ends the session before the record passes; and
// a session under path rules without a resolver never starts.
func TestRelayResolverFallsBackAndFailsClosed(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pol := policy.Files{AllowUpload: true, AllowDownload: true, DenyPaths: []string{"/elsewhere"}}

	// The file is missing, its folder leads to the denied one.
	res := &countingResolver{links: map[string]string{dir: "/elsewhere"}}
	ss := startSink(t, "scp -r -d -t "+dir, pol, res)
	ss.status("\x00")
	ss.send("C0644 2 new\n")
	ss.status("\x01sluice: new: denied by policy\n")
	if err, scpErr := ss.end(); err != nil || scpErr != nil {
		t.Fatalf("Relay: %v; scp -t: %v", err, scpErr)
	}
	if want := []string{dir + "/new", dir}; len(res.asked) != 2 || res.asked[0] != want[0] || res.asked[1] != want[1] {
		t.Fatalf("asked %q, want %q", res.asked, want)
	}
	if e := ss.audit.Events("scp.upload"); len(e) != 1 || e[0].Detail["path_resolved"] != "/elsewhere/new" {
		t.Fatalf("got %+v, want one refusal with path_resolved /elsewhere/new", e)
	}

	gone := errors.New("channel closed")
	ss = startSink(t, "scp -r -d -t "+dir, pol, &countingResolver{err: gone})
	ss.status("\x00")
	ss.send("C0644 2 f\n")
	if err, _ := ss.end(); !errors.Is(err, gone) {
		t.Fatalf("got %v, want the resolver's error", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("f: got %v, want it never written", err)
	}
	if e := ss.audit.Events(""); len(e) != 0 {
		t.Fatalf("got %+v, want no event for a record never decided", e)
	}

	c, _ := ParseCommand("scp -t " + dir)
	p := New(Params{Service: "svc", Policy: pol, Audit: &sshtest.AuditSink{}, Logger: slog.New(slog.DiscardHandler)})
	if !p.NeedsResolver() {
		t.Fatal("NeedsResolver false under deny_paths")
	}
	if _, _, err := p.Relay(context.Background(), nil, c, nil, nil, nil); !errors.Is(err, ErrNoResolver) {
		t.Fatalf("got %v, want ErrNoResolver", err)
	}
	if New(Params{Service: "svc", Policy: policy.Files{AllowUpload: true}}).NeedsResolver() {
		t.Fatal("NeedsResolver true without path rules")
	}
}
