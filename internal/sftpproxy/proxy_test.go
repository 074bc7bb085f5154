package sftpproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// pipeStream is one end of two io.Pipes: a Stream that can be closed.
type pipeStream struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (s pipeStream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s pipeStream) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s pipeStream) CloseWrite() error           { return s.w.Close() }
func (s pipeStream) Close() error {
	s.r.CloseWithError(io.ErrClosedPipe)
	return s.w.Close()
}

// pair returns the two ends of a bidirectional pipe.
func pair() (a, b pipeStream) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return pipeStream{ar, aw}, pipeStream{br, bw}
}

type sink = sshtest.AuditSink

// rig is a pkg/sftp client talking through the proxy to pkg/sftp's server
// serving dir.
type rig struct {
	client *sftp.Client
	dir    string
	audit  *sink
	done   chan relayResult
}

type relayResult struct {
	in, out int64
	err     error
}

func permissive() policy.Files {
	return policy.Files{AllowUpload: true, AllowDownload: true, AllowRemove: true, AllowRename: true, AllowMkdir: true, AllowSymlink: true, AllowSetstat: true}
}

// newRig serves dir, or a new temporary folder when dir is "".
func newRig(t *testing.T, pol policy.Files, dir string) *rig {
	t.Helper()
	if dir == "" {
		var err error
		if dir, err = filepath.EvalSymlinks(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	clientEnd, proxyClient := pair()
	proxyUp, serverEnd := pair()
	srv, err := sftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{serverEnd.r, serverEnd.w}, sftp.WithServerWorkingDirectory(dir))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = srv.Serve()
		serverEnd.w.Close()
	})
	s := &sink{}
	p := New(Params{Service: "svc", Policy: pol, Audit: s, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "svc", Instance: 1})
	st := m.Stack("ssh", -1).Stack("session", 0).Stack("sftp", -1)
	r := &rig{dir: dir, audit: s, done: make(chan relayResult, 1)}
	wg.Go(func() {
		in, out, err := p.Relay(context.Background(), st, Peers{}, proxyClient, proxyUp)
		r.done <- relayResult{in, out, err}
	})
	r.client, err = sftp.NewClientPipe(clientEnd.r, clientEnd.w)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		r.client.Close()
		wg.Wait()
		m.Destroy()
	})
	return r
}

// end closes the client and returns what Relay returned.
func (r *rig) end(t *testing.T) relayResult {
	t.Helper()
	r.client.Close()
	res := <-r.done
	if res.err != nil {
		t.Fatalf("Relay: got error %v, want nil", res.err)
	}
	return res
}

func TestRelayTransferAndHashes(t *testing.T) {
	r := newRig(t, permissive(), "")
	data := make([]byte, 3<<20+12345)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	f, err := r.client.Create("up.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(r.dir, "up.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("upload: got %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	g, err := r.client.Open(filepath.Join(r.dir, "up.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	if _, err := io.Copy(&back, struct{ io.Reader }{g}); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if !bytes.Equal(back.Bytes(), data) {
		t.Fatalf("download: got %d bytes, want the %d uploaded", back.Len(), len(data))
	}
	res := r.end(t)
	if res.in < int64(len(data)) || res.out < int64(len(data)) {
		t.Fatalf("got in %d out %d, want both at least %d", res.in, res.out, len(data))
	}
	closes := r.audit.Events("sftp.close")
	if len(closes) != 2 {
		t.Fatalf("got %d close events, want 2: %+v", len(closes), closes)
	}
	for i, dir := range []string{"bytes_written", "bytes_read"} {
		e := closes[i]
		if e.Detail["sha256"] != want || e.Detail[dir] != int64(len(data)) || e.SessionID != "gw1/svc:1/ssh/session:0/sftp" {
			t.Fatalf("close %d: got %+v, want %s %d and sha256 %s in session gw1/svc:1/ssh/session:0/sftp", i, e, dir, len(data), want)
		}
	}
	opens := r.audit.Events("sftp.open")
	if len(opens) != 2 || opens[0].Detail["path"] != filepath.Join(r.dir, "up.bin") || opens[0].Detail["flags"] != "read,write,creat,trunc" {
		t.Fatalf("got open events %+v, want 2, the first for %s with read,write,creat,trunc", opens, filepath.Join(r.dir, "up.bin"))
	}
}

// TestRelayNoContentHash checks that content_hash: false leaves the
// SHA-256 out of the close event and nothing else.
func TestRelayNoContentHash(t *testing.T) {
	pol := permissive()
	pol.NoContentHash = true
	r := newRig(t, pol, "")
	data := []byte("no digest for this file")
	f, err := r.client.Create("up.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r.end(t)
	closes := r.audit.Events("sftp.close")
	if len(closes) != 1 {
		t.Fatalf("got %d close events, want 1: %+v", len(closes), closes)
	}
	if d := closes[0].Detail; d["sha256"] != nil || d["bytes_written"] != int64(len(data)) {
		t.Fatalf("close: got %+v, want bytes_written %d and no sha256", d, len(data))
	}
}

// TestRelayPolicy runs one operation per case through the proxy and checks
// the client's error, the audit rule, and that the server never saw a
// denied request.
func TestRelayPolicy(t *testing.T) {
	const rule = "services[svc].policy.subsystems.sftp"
	setup := func(t *testing.T, dir string) {
		for _, d := range []string{"pub", "secret", "sub"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"pub/a.txt", "secret/key", "sub/b.txt"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("content"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(c *sftp.Client, name string, n int) error {
		f, err := c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return err
		}
		_, err = f.Write(make([]byte, n))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	read := func(c *sftp.Client, name string) error {
		f, err := c.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.ReadAll(f)
		return err
	}
	tests := []struct {
		name   string
		pol    func(p *policy.Files, dir string)
		op     func(c *sftp.Client, dir string) error
		event  string // audit type of the denial; "" when permitted
		rule   string
		intact func(dir string) bool // the server did not act
	}{
		{"read only refuses upload", func(p *policy.Files, dir string) { p.ReadOnly = true },
			func(c *sftp.Client, _ string) error { return write(c, "new.txt", 10) },
			"sftp.open", rule + ".read_only", absent("new.txt")},
		{"read only permits download", func(p *policy.Files, dir string) { p.ReadOnly = true },
			func(c *sftp.Client, _ string) error { return read(c, "pub/a.txt") }, "", "", nil},
		{"download refused", func(p *policy.Files, dir string) { p.AllowDownload = false },
			func(c *sftp.Client, _ string) error { return read(c, "pub/a.txt") },
			"sftp.open", rule + ".allow_download", nil},
		{"deny_paths relative traversal", func(p *policy.Files, dir string) { p.DenyPaths = []string{dir + "/secret"} },
			func(c *sftp.Client, _ string) error { return read(c, "sub/../secret/key") },
			"sftp.open", rule + ".deny_paths[0]", nil},
		{"deny_paths wins over allow_paths", func(p *policy.Files, dir string) {
			p.AllowPaths = []string{dir}
			p.DenyPaths = []string{dir + "/secret"}
		},
			func(c *sftp.Client, dir string) error { _, err := c.Stat(dir + "//secret/./key"); return err },
			"sftp.stat", rule + ".deny_paths[0]", nil},
		{"allow_paths refuses outside", nil,
			func(c *sftp.Client, _ string) error { return read(c, "pub/../../../../../etc/passwd") },
			"sftp.open", rule + ".allow_paths", nil},
		{"allow_paths permits inside", nil,
			func(c *sftp.Client, _ string) error { return read(c, "pub/a.txt") }, "", "", nil},
		{"remove refused", func(p *policy.Files, dir string) { p.AllowRemove = false },
			func(c *sftp.Client, _ string) error { return c.Remove("sub/b.txt") },
			"sftp.remove", rule + ".allow_remove", present("sub/b.txt")},
		{"rename refused", func(p *policy.Files, dir string) { p.AllowRename = false },
			func(c *sftp.Client, _ string) error { return c.Rename("sub/b.txt", "sub/c.txt") },
			"sftp.rename", rule + ".allow_rename", present("sub/b.txt")},
		{"posix-rename into a denied path", func(p *policy.Files, dir string) { p.DenyPaths = []string{dir + "/secret"} },
			func(c *sftp.Client, _ string) error { return c.PosixRename("sub/b.txt", "secret/b.txt") },
			"sftp.rename", rule + ".deny_paths[0]", present("sub/b.txt")},
		{"mkdir refused", func(p *policy.Files, dir string) { p.AllowMkdir = false },
			func(c *sftp.Client, _ string) error { return c.Mkdir("newdir") },
			"sftp.mkdir", rule + ".allow_mkdir", absent("newdir")},
		{"symlink refused", func(p *policy.Files, dir string) { p.AllowSymlink = false },
			func(c *sftp.Client, _ string) error { return c.Symlink("pub/a.txt", "link") },
			"sftp.symlink", rule + ".allow_symlink", absent("link")},
		{"symlink to a denied target", func(p *policy.Files, dir string) { p.DenyPaths = []string{dir + "/secret"} },
			func(c *sftp.Client, _ string) error { return c.Symlink("../secret/key", "pub/link") },
			"sftp.symlink", rule + ".deny_paths[0]", absent("pub/link")},
		{"hardlink refused", func(p *policy.Files, dir string) { p.AllowSymlink = false },
			func(c *sftp.Client, _ string) error { return c.Link("pub/a.txt", "hard") },
			"sftp.link", rule + ".allow_symlink", absent("hard")},
		{"setstat refused", func(p *policy.Files, dir string) { p.AllowSetstat = false },
			func(c *sftp.Client, _ string) error { return c.Chmod("pub/a.txt", 0o600) },
			"sftp.setstat", rule + ".allow_setstat", nil},
		{"truncate past the limit", func(p *policy.Files, dir string) { p.MaxUploadSize = 100 },
			func(c *sftp.Client, _ string) error { return c.Truncate("pub/a.txt", 1000) },
			"sftp.setstat", rule + ".max_upload_size", nil},
		{"write within the limit", func(p *policy.Files, dir string) { p.MaxUploadSize = 100 },
			func(c *sftp.Client, _ string) error { return write(c, "small", 100) }, "", "", nil},
		{"write past the limit", func(p *policy.Files, dir string) { p.MaxUploadSize = 100 },
			func(c *sftp.Client, _ string) error { return write(c, "big", 101) },
			"sftp.write", rule + ".max_upload_size", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			pol := permissive()
			if tc.pol != nil {
				tc.pol(&pol, dir)
			} else {
				pol.AllowPaths = []string{dir + "/pub"}
			}
			r := newRig(t, pol, dir)
			setup(t, r.dir)
			err = tc.op(r.client, r.dir)
			if tc.event == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				r.end(t)
				return
			}
			// pkg/sftp turns SSH_FX_PERMISSION_DENIED into os.ErrPermission.
			if !errors.Is(err, os.ErrPermission) {
				t.Fatalf("got error %v, want SSH_FX_PERMISSION_DENIED", err)
			}
			r.end(t)
			if tc.intact != nil && !tc.intact(r.dir) {
				t.Fatal("the server acted on a denied request")
			}
			evs := slices.DeleteFunc(r.audit.Events(tc.event), func(e audit.Event) bool { return e.Verdict != audit.Reject })
			if len(evs) != 1 || evs[0].Rule != tc.rule {
				t.Fatalf("got %s rejections %+v, want one by %s", tc.event, evs, tc.rule)
			}
		})
	}
}

func absent(name string) func(string) bool {
	return func(dir string) bool {
		_, err := os.Lstat(filepath.Join(dir, name))
		return errors.Is(err, os.ErrNotExist)
	}
}

func present(name string) func(string) bool {
	return func(dir string) bool { _, err := os.Lstat(filepath.Join(dir, name)); return err == nil }
}

func TestRelaySymlinkCreatedThenOpened(t *testing.T) {
	r := newRig(t, permissive(), "")
	if err := os.WriteFile(filepath.Join(r.dir, "target.txt"), []byte("linked"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.client.Symlink("target.txt", "link.txt"); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	f, err := r.client.Open("link.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(got) != "linked" {
		t.Fatalf("got %q, %v; want %q", got, err, "linked")
	}
	r.end(t)
	evs := r.audit.Events("sftp.symlink")
	if len(evs) != 1 || evs[0].Verdict != audit.Accept || evs[0].Detail["target"] != filepath.Join(r.dir, "target.txt") {
		t.Fatalf("got %+v, want one accepted symlink to %s", evs, filepath.Join(r.dir, "target.txt"))
	}
}

// rawSession speaks SFTP by hand to the proxy, with pkg/sftp's server
// behind it.
func rawSession(t *testing.T, pol policy.Files) (c pipeStream, done chan relayResult) {
	t.Helper()
	return rawSessionWith(t, pol, Peers{}, t.TempDir())
}

// rawSessionWith is rawSession between peers, serving dir.
func rawSessionWith(t *testing.T, pol policy.Files, peers Peers, dir string) (c pipeStream, done chan relayResult) {
	t.Helper()
	return rawSessionAudited(t, pol, peers, dir, &sink{}, nil)
}

// rawSessionAudited is rawSessionWith auditing to s and, when own is not
// nil, counting in it the proxy's own requests to the server.
func rawSessionAudited(t *testing.T, pol policy.Files, peers Peers, dir string, s *sink, own *atomic.Int64) (c pipeStream, done chan relayResult) {
	t.Helper()
	clientEnd, proxyClient := pair()
	proxyUp, serverEnd := pair()
	srv, err := sftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{serverEnd.r, serverEnd.w}, sftp.WithServerWorkingDirectory(dir))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = srv.Serve()
		serverEnd.w.Close()
	})
	p := New(Params{Service: "svc", Policy: pol, Audit: s, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "svc"})
	done = make(chan relayResult, 1)
	wg.Go(func() {
		var up Stream = proxyUp
		if own != nil {
			up = &ownCounter{pipeStream: proxyUp, n: own}
		}
		in, out, err := p.Relay(context.Background(), m.Stack("sftp", -1), peers, proxyClient, up)
		done <- relayResult{in, out, err}
	})
	t.Cleanup(func() {
		clientEnd.Close()
		wg.Wait()
		m.Destroy()
	})
	if _, err := clientEnd.Write(version{version: 3}.marshal(fxpInit)); err != nil {
		t.Fatal(err)
	}
	pkt, _, err := readPacket(clientEnd, nil)
	if err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	v, err := parseVersion(pkt[4:], fxpVersion)
	if err != nil || v.version != 3 {
		t.Fatalf("got VERSION %+v, %v; want version 3", v, err)
	}
	for _, e := range v.exts {
		if !knownExtension(string(e[0])) {
			t.Errorf("the server's unknown extension %q was offered to the client", e[0])
		}
	}
	return clientEnd, done
}

func packet(typ byte, id uint32, fields ...[]byte) []byte {
	b := []byte{0, 0, 0, 0, typ}
	b = appendU32(b, id)
	for _, f := range fields {
		b = append(b, f...)
	}
	b[0], b[1], b[2], b[3] = byte((len(b)-4)>>24), byte((len(b)-4)>>16), byte((len(b)-4)>>8), byte(len(b)-4)
	return b
}

func str(s string) []byte { return appendBytes(nil, []byte(s)) }

func TestRelayRaw(t *testing.T) {
	tests := []struct {
		name string
		pol  policy.Files
		req  []byte
		want uint32 // STATUS code
	}{
		{"unknown extension refused", policy.Files{}, packet(fxpExtended, 7, str("evil@example.com"), str("x")), fxOpUnsupported},
		{"unknown extension allowed", policy.Files{AllowUnknownExtensions: true}, packet(fxpExtended, 7, str("evil@example.com")), fxOpUnsupported},
		{"unknown request type", policy.Files{}, packet(99, 7), fxOpUnsupported},
		{"trailing bytes ignored", policy.Files{}, packet(fxpStat, 7, str("/"), []byte{1}), 0},
		{"NUL in a path", policy.Files{DenyPaths: []string{"/etc"}}, packet(fxpStat, 7, str("/tmp\x00/../etc/passwd")), fxBadMessage},
		{"write on an unknown handle", permissive(), packet(fxpWrite, 7, str("\x00\x00\x00\x01"), appendU32(appendU32(nil, 0), 0), str("data")), fxPermissionDenied},
		{"permitted stat", permissive(), packet(fxpStat, 7, str(".")), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := rawSession(t, tc.pol)
			if _, err := c.Write(tc.req); err != nil {
				t.Fatal(err)
			}
			pkt, _, err := readPacket(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := parseResponse(pkt[4:])
			if err != nil || resp.id != 7 {
				t.Fatalf("got %+v, %v; want a response to id 7", resp, err)
			}
			if tc.want == 0 {
				if resp.typ != fxpAttrs {
					t.Fatalf("got response type %d, want ATTRS", resp.typ)
				}
				return
			}
			if resp.typ != fxpStatus || resp.status != tc.want {
				t.Fatalf("got type %d status %d, want STATUS %d", resp.typ, resp.status, tc.want)
			}
		})
	}
}

func TestRelayRefusesOversizedPacket(t *testing.T) {
	c, done := rawSession(t, permissive())
	hdr := appendU32(nil, maxPacket+1)
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if !errors.Is(res.err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", res.err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("got data after the oversized packet, want the session closed")
	}
}

func TestRelayKeepsPipelining(t *testing.T) {
	// 64 requests in flight, as OpenSSH's client keeps, answered in order,
	// with denied requests answered by the proxy in between.
	c, _ := rawSession(t, policy.Files{AllowDownload: true, DenyPaths: []string{"/denied"}})
	var reqs []byte
	for id := uint32(0); id < 64; id++ {
		p := "."
		if id%2 == 1 {
			p = "/denied/x"
		}
		reqs = append(reqs, packet(fxpStat, id, str(p))...)
	}
	go func() { _, _ = c.Write(reqs) }()
	seen := map[uint32]bool{}
	for range 64 {
		pkt, _, err := readPacket(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := parseResponse(pkt[4:])
		if err != nil {
			t.Fatal(err)
		}
		wantType := byte(fxpAttrs)
		if resp.id%2 == 1 {
			wantType = fxpStatus
		}
		if resp.typ != wantType || seen[resp.id] {
			t.Fatalf("id %d: got type %d (seen %v), want %d once", resp.id, resp.typ, seen[resp.id], wantType)
		}
		seen[resp.id] = true
	}
	if len(seen) != 64 {
		t.Fatalf("got %d answers, want 64", len(seen))
	}
}

// TestRelayBoundsOutstanding: past MaxOutstanding unanswered requests the
// proxy forwards nothing more until the server answers one.
func TestRelayBoundsOutstanding(t *testing.T) {
	const limit = 4
	clientEnd, proxyClient := pair()
	proxyUp, serverEnd := pair()
	p := New(Params{Service: "svc", Policy: permissive(), Audit: &sink{}, Logger: slog.New(slog.DiscardHandler), MaxOutstanding: limit})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "svc"})
	defer m.Destroy()
	done := make(chan error, 1)
	go func() {
		_, _, err := p.Relay(context.Background(), m.Stack("sftp", -1), Peers{}, proxyClient, proxyUp)
		done <- err
	}()
	// The server's side of the handshake, then requests counted as they
	// arrive.
	seen := make(chan uint32, 100)
	go func() {
		defer close(seen)
		for {
			pkt, _, err := readPacket(serverEnd, nil)
			if err != nil {
				return
			}
			switch q, _ := parseRequest(pkt[4:]); {
			case pkt[4] == fxpInit:
				_, _ = serverEnd.Write(version{version: 3}.marshal(fxpVersion))
			case q.typ == fxpRealpath && q.id == 0:
				_, _ = serverEnd.Write(packet(fxpName, 0, appendU32(nil, 1), str("/"), str("/"), appendU32(nil, 0)))
			default:
				seen <- q.id
			}
		}
	}()
	go func() {
		_, _ = clientEnd.Write(version{version: 3}.marshal(fxpInit))
		for id := uint32(1); id <= 3*limit; id++ {
			if _, err := clientEnd.Write(packet(fxpStat, id, str("/"))); err != nil {
				return
			}
		}
	}()
	if _, _, err := readPacket(clientEnd, nil); err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	for i := 1; i <= limit; i++ {
		if id := <-seen; id != uint32(i) {
			t.Fatalf("got request %d, want %d", id, i)
		}
	}
	select {
	case id := <-seen:
		t.Fatalf("got request %d with %d unanswered, want none past MaxOutstanding", id, limit)
	case <-time.After(300 * time.Millisecond):
	}
	// One answer frees one slot.
	if _, err := serverEnd.Write(statusPacket(1, fxOK, "")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readPacket(clientEnd, nil); err != nil {
		t.Fatal(err)
	}
	if id := <-seen; id != limit+1 {
		t.Fatalf("after one answer: got request %d, want %d", id, limit+1)
	}
	select {
	case id := <-seen:
		t.Fatalf("got request %d, want none", id)
	case <-time.After(300 * time.Millisecond):
	}
	// The server ends: the proxy stops waiting for a slot.
	serverEnd.Close()
	clientEnd.Close()
	if err := <-done; err == nil {
		t.Fatal("Relay: got nil, want the error of a server that ended with requests unanswered")
	}
}

// TestRelaySymlinkOrder: each client's SYMLINK is read in the order that
// client sends and forwarded in the order the server reads. pkg/sftp's
// server reads OpenSSH's order (target first).
func TestRelaySymlinkOrder(t *testing.T) {
	const openssh, asyncssh = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "SSH-2.0-AsyncSSH_2.10.1"
	tests := []struct {
		name   string
		peers  Peers
		first  string // what the client sends first: "link" or "target"
		onDisk string // where the link lands, pointing at the other name
	}{
		{"OpenSSH client", Peers{ClientVersion: openssh, ServerVersion: openssh}, "target", "link"},
		{"pkg/sftp client", Peers{ClientVersion: "SSH-2.0-Go", ServerVersion: openssh}, "target", "link"},
		{"paramiko client", Peers{ClientVersion: "SSH-2.0-paramiko_2.12.0", ServerVersion: openssh}, "target", "link"},
		{"libssh2 client", Peers{ClientVersion: "SSH-2.0-libssh2_1.10.0", ServerVersion: openssh}, "target", "link"},
		{"asyncssh client", Peers{ClientVersion: asyncssh, ServerVersion: openssh}, "link", "link"},
		{"libssh client", Peers{ClientVersion: "SSH-2.0-libssh_0.10.4", ServerVersion: openssh}, "link", "link"},
		// An asyncssh server reads the draft's order: pkg/sftp, reading
		// OpenSSH's, then makes the link at the target's name.
		{"asyncssh server", Peers{ClientVersion: openssh, ServerVersion: asyncssh}, "target", "target"},
		{"asyncssh both", Peers{ClientVersion: asyncssh, ServerVersion: asyncssh}, "link", "target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			c, _ := rawSessionWith(t, permissive(), tc.peers, dir)
			names := map[string]string{"link": dir + "/link", "target": dir + "/target"}
			other := map[string]string{"link": "target", "target": "link"}
			if _, err := c.Write(packet(fxpSymlink, 7, str(names[tc.first]), str(names[other[tc.first]]))); err != nil {
				t.Fatal(err)
			}
			pkt, _, err := readPacket(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := parseResponse(pkt[4:]); err != nil || resp.typ != fxpStatus || resp.status != fxOK {
				t.Fatalf("got %+v, %v; want STATUS OK", resp, err)
			}
			got, err := os.Readlink(names[tc.onDisk])
			if want := names[other[tc.onDisk]]; err != nil || got != want {
				t.Fatalf("%s: got link to %q, %v; want %q", tc.onDisk, got, err, want)
			}
		})
	}
}

// openSSHRig is a pkg/sftp client talking through the proxy to OpenSSH's
// own sftp-server, started in dir: the server that resolves links.
func openSSHRig(t *testing.T, pol policy.Files, dir string) *rig {
	t.Helper()
	bin := sshtest.RequireTool(t, "sftp-server")
	cmd := exec.Command(bin, "-d", dir, "-e", "-l", "ERROR")
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
	clientEnd, proxyClient := pair()
	s := &sink{}
	p := New(Params{Service: "svc", Policy: pol, Audit: s, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "svc", Instance: 1})
	st := m.Stack("ssh", -1).Stack("session", 0).Stack("sftp", -1)
	r := &rig{dir: dir, audit: s, done: make(chan relayResult, 1)}
	var wg sync.WaitGroup
	wg.Go(func() {
		in, out, err := p.Relay(context.Background(), st, Peers{ServerVersion: "SSH-2.0-OpenSSH_9.2p1"}, proxyClient, procStream{stdout, stdin})
		r.done <- relayResult{in, out, err}
	})
	r.client, err = sftp.NewClientPipe(clientEnd.r, clientEnd.w)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		r.client.Close()
		wg.Wait()
		_ = cmd.Wait()
		m.Destroy()
	})
	return r
}

// procStream is a process's stdout and stdin as a Stream.
type procStream struct {
	io.Reader
	io.WriteCloser
}

func (p procStream) CloseWrite() error { return p.WriteCloser.Close() }

// TestRelayCanonicalPaths: decisions follow links on the server, whoever
// made them, and answers that would show what the rules hide are refused.
func TestRelayCanonicalPaths(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ex := dir + "/export"
	for _, d := range []string{ex + "/alice/.ssh", ex + "/pub"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(ex+"/alice/.ssh/authorized_keys", []byte("key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ex+"/pub/a.txt", []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"pre": "../alice", "out": dir, "keys": "../alice/.ssh/authorized_keys"} {
		if err := os.Symlink(target, ex+"/pub/"+link); err != nil {
			t.Fatal(err)
		}
	}
	pol := permissive()
	pol.AllowPaths, pol.DenyPaths = []string{ex}, []string{ex + "/*/.ssh"}
	r := openSSHRig(t, pol, ex+"/pub")
	c := r.client
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, os.ErrPermission) {
			t.Errorf("%s: got %v, want permission denied", what, err)
		}
	}
	// Allowed: the file, and the link itself (READLINK of a link in pub
	// to a file in pub).
	if _, err := c.Stat("a.txt"); err != nil {
		t.Fatalf("stat a.txt: %v", err)
	}
	if err := c.Symlink("a.txt", "a-link"); err != nil {
		t.Fatalf("symlink a.txt: %v", err)
	}
	if got, err := c.ReadLink("a-link"); err != nil || got != "a.txt" {
		t.Fatalf("readlink a-link: got %q, %v; want a.txt", got, err)
	}
	// Through links that were there.
	_, err = c.Open("pre/.ssh/authorized_keys")
	denied("open through pre", err)
	_, err = c.Open("keys")
	denied("open keys", err)
	_, err = c.Stat("out")
	denied("stat out", err)
	// Answers.
	_, err = c.ReadLink("out")
	denied("readlink out", err)
	_, err = c.RealPath("out")
	denied("realpath out", err)
	_, err = c.RealPath("pre/.ssh")
	denied("realpath pre/.ssh", err)
	// Making links and names that reach the denied folder.
	denied("symlink to alice", c.Symlink(ex+"/alice", "al"))
	denied("symlink to ..", c.Symlink("..", "up"))
	denied("hard link to the keys", c.Link(ex+"/alice/.ssh/authorized_keys", "k2"))
	denied("hard link to the link to the keys", c.Link("keys", "k3"))
	denied("rename alice", c.PosixRename(ex+"/alice", "x"))
	denied("rename alice (RENAME)", c.Rename(ex+"/alice", "x"))
	if err := c.Mkdir("d"); err != nil {
		t.Fatal(err)
	}
	denied("rename a folder to where .ssh is denied", c.Rename("d", ex+"/bob"))
	for _, p := range []string{"al", "up", "k2", "k3", "x", ex + "/bob"} {
		if _, err := os.Lstat(filepath.Join(ex+"/pub", p)); err == nil {
			t.Errorf("%s was made", p)
		}
	}
	r.end(t)
	var hidden int
	for _, e := range r.audit.Events("") {
		if e.Verdict == audit.Reject && strings.HasPrefix(e.Reason, "answer hidden") {
			hidden++
		}
	}
	if hidden != 3 {
		t.Errorf("got %d answers hidden in the audit, want 3 (readlink out, realpath out, realpath pre/.ssh)", hidden)
	}
}
