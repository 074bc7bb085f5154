package scpproxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"strings"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
)

// bufSize is the read buffer of each side and the data copy's chunk: one
// SSH channel packet (OpenSSH's CHAN_SES_PACKET_DEFAULT, 32 KiB).
const bufSize = 32 << 10

// maxDepth bounds the directories a session may have entered at once
// (scp -r), and pathMax the length of a path, Linux's PATH_MAX
// (limits.h), which the server could not open anyway: what the relay
// holds per session, up to two paths a level, each as named and as
// resolved, stays within 4 MiB
// whatever the source sends. scp is lock step, so this is the scp
// proxy's bound on a session's memory (sftp's is max_outstanding).
const (
	maxDepth = 256
	pathMax  = 4096
)

// Stream is one side of the channel's byte stream: read what the peer
// sends, write what it receives, CloseWrite to send EOF. A Stream that is
// also an io.Closer is closed when the session must end early.
type Stream interface {
	io.ReadWriter
	CloseWrite() error
}

// Params configures a Proxy. Every field is required.
type Params struct {
	// Service names the service, for rule names, or is "roles[NAME]"
	// for a role's policy (see policy.FilesPrefix).
	Service string
	// Policy is the service's sftp subsystem policy: scp follows it.
	Policy policy.Files
	Audit  audit.Sink
	Logger *slog.Logger
}

// Resolver says where the server will act on a path: REALPATH through
// the target's sftp subsystem, which resolves every symbolic link and
// answers for a missing final component too (OpenSSH's sftp_realpath).
type Resolver interface {
	// Realpath returns where path leads; ok is false when the server
	// answered that it cannot say (a status), and err is set when it
	// could not be asked (the channel failed), which ends the session.
	Realpath(path string) (resolved string, ok bool, err error)
}

// Proxy is the scp proxy of one service. It is safe for concurrent use:
// each Relay call is one session.
type Proxy struct {
	p     Params
	rules policy.FileRules
}

// New returns a Proxy for p.
func New(p Params) *Proxy {
	return &Proxy{p: p, rules: policy.NewFileRules(p.Service, p.Policy)}
}

// Decide decides the command itself, before it runs: a relative path is
// refused when allow_paths or deny_paths apply, since the login directory
// it is relative to is not known. Everything else is decided per file.
func (p *Proxy) Decide(c Command) policy.Verdict {
	if relative(c.Path) && p.rules.HasPathRules() {
		return p.rules.Reject("", "scp with a relative path under path rules: the login directory is unknown")
	}
	return p.rules.Accept()
}

// NeedsResolver reports whether a session needs a Resolver: when the
// policy has allow_paths or deny_paths, every path is decided on where
// the server will act too.
func (p *Proxy) NeedsResolver() bool { return p.rules.HasPathRules() }

// Unresolved is the verdict on a command under path rules for which no
// Resolver could be had (the target has no sftp subsystem, or refused
// the channel), cause saying why: refused, by the path rule that needs
// it, before the server's scp starts.
func (p *Proxy) Unresolved(cause error) policy.Verdict {
	key := "deny_paths"
	if len(p.p.Policy.AllowPaths) > 0 {
		key = "allow_paths"
	}
	return p.rules.Reject(key, "scp under path rules needs the target's sftp subsystem to resolve links: "+cause.Error())
}

// ErrNoResolver ends a session under path rules that was given no
// Resolver before a byte passes.
var ErrNoResolver = errors.New("scpproxy: a session under path rules needs a resolver")

// Relay runs one scp session of command c, stacked as st, between client
// and upstream (the target's scp), resolving paths through res, which
// must not be nil when NeedsResolver. It returns when both directions
// have ended, with the bytes read from and written to the client, and the
// error that ended the session early (a protocol error from either side,
// ctx done).
func (p *Proxy) Relay(ctx context.Context, st *session.Stacked, c Command, res Resolver, client, upstream Stream) (in, out int64, err error) {
	if !p.NeedsResolver() {
		res = nil // nothing is decided on a path: no round trip
	} else if res == nil {
		return 0, 0, ErrNoResolver
	}
	cr := &counter{r: client, w: client}
	ends := [2]side{
		{name: "client", s: client, r: bufio.NewReaderSize(cr, bufSize), w: cr},
		{name: "server", s: upstream, r: bufio.NewReaderSize(upstream, bufSize), w: upstream},
	}
	r := &relay{p: p, ctx: ctx, st: st, cmd: c, res: res, src: &ends[0], sink: &ends[1], buf: make([]byte, bufSize)}
	if !c.Sink {
		r.src, r.sink = r.sink, r.src
	}
	stop := context.AfterFunc(ctx, r.abort)
	defer stop()
	if err := r.run(); err != nil {
		r.abort()
		return cr.in, cr.out, err
	}
	return cr.in, cr.out, nil
}

// side is one peer: the source of records or the sink that answers them.
type side struct {
	name string
	s    Stream
	r    *bufio.Reader
	w    io.Writer
}

func (s *side) write(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("scpproxy: writing to the %s: %w", s.name, err)
	}
	return nil
}

// counter counts the bytes read from and written to the client.
type counter struct {
	r       io.Reader
	w       io.Writer
	in, out int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.in += int64(n)
	return n, err
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.out += int64(n)
	return n, err
}

// relay is one scp session. Its one goroutine follows the protocol's lock
// step: a record from the source, the sink's status, and so on.
type relay struct {
	p   *Proxy
	ctx context.Context
	st  *session.Stacked
	cmd Command
	// res resolves paths through the server; nil without path rules.
	res Resolver
	src *side
	// sink answers the source's records.
	sink *side
	// dirs holds, for each directory entered, the paths it may be at (see
	// paths).
	dirs [][]loc
	// times says that a T record was forwarded for the next C or D.
	times bool
	buf   []byte
}

// errSinkGone ends a session whose sink closed its stream where a status
// was due: the server's scp exited (or the client's did), which is not
// the proxy's error.
var errSinkGone = errors.New("scpproxy: sink closed")

// abort ends the session early: it closes both streams where they can be
// closed and sends EOF where they cannot.
func (r *relay) abort() {
	for _, s := range []Stream{r.src.s, r.sink.s} {
		if c, ok := s.(io.Closer); ok {
			_ = c.Close()
		} else {
			_ = s.CloseWrite()
		}
	}
}

// run relays records and statuses until the source's EOF.
func (r *relay) run() error {
	// The sink speaks first (scp.c, sink and main's "if (fflag) response()").
	if _, err := r.status(); err != nil {
		return r.ended(err)
	}
	for {
		line, err := readLine(r.src.r)
		if err == io.EOF {
			return r.finish()
		}
		if err != nil {
			return fmt.Errorf("scpproxy: reading the %s: %w", r.src.name, err)
		}
		rec, err := parseRecord(line)
		if err != nil {
			return err
		}
		switch rec.typ {
		case recError, recFatal:
			// No status follows an error line; the sink prints it.
			err = r.sink.write(line)
		case recTimes:
			err = r.timesRecord(rec)
		case recFile:
			err = r.file(rec)
		case recDir:
			err = r.dir(rec)
		case recEnd:
			err = r.end(rec)
		}
		if err != nil {
			return r.ended(err)
		}
	}
}

// ended turns a sink that went away where a status was due into the end
// of the session: the source is sent EOF and gives up as scp does when it
// loses its peer.
func (r *relay) ended(err error) error {
	if !errors.Is(err, errSinkGone) {
		return err
	}
	_ = r.src.s.CloseWrite()
	return nil
}

// finish ends a session whose source has sent EOF after a whole record:
// the sink gets EOF too. Nothing is due from the sink any more, and the
// relay does not wait for its EOF: OpenSSH's scp client waits for ssh to
// exit before it closes its end, and ssh waits for the channel to close.
func (r *relay) finish() error {
	if len(r.dirs) > 0 {
		return fmt.Errorf("%w: EOF inside a directory", ErrProtocol)
	}
	_ = r.sink.s.CloseWrite()
	return nil
}

// status relays one status from the sink to the source.
func (r *relay) status() (ok bool, err error) {
	s, ok, err := readStatus(r.sink.r)
	if err == io.EOF {
		return false, errSinkGone
	}
	if err != nil {
		return false, fmt.Errorf("scpproxy: reading the %s: %w", r.sink.name, err)
	}
	return ok, r.src.write(s)
}

// forward sends a record to the sink and relays its status.
func (r *relay) forward(rec record) (ok bool, err error) {
	if err := r.sink.write(rec.marshal()); err != nil {
		return false, err
	}
	return r.status()
}

// timesRecord relays T. An upload's times are a setstat: when the policy
// refuses it, the proxy answers the record itself and the server keeps its
// own times.
func (r *relay) timesRecord(rec record) error {
	if r.cmd.Sink {
		if v := r.p.rules.Setstat(); !v.Accept {
			r.times = false
			r.audit("scp.setstat", v, map[string]any{"mtime": rec.mtime}, "")
			return r.src.write([]byte{0})
		}
	}
	ok, err := r.forward(rec)
	r.times = ok
	return err
}

// file relays C, its data and the statuses after it.
func (r *relay) file(rec record) error {
	op := "scp.download"
	if r.cmd.Sink {
		op = "scp.upload"
	}
	paths, err := r.paths(rec.name)
	if err != nil {
		return err
	}
	vs := []policy.Verdict{r.p.rules.Download()}
	if r.cmd.Sink {
		vs = []policy.Verdict{r.p.rules.Upload(), r.p.rules.Size(uint64(rec.size))}
	}
	v, err := r.decide(paths, vs...)
	if err != nil {
		return err
	}
	detail := r.detail(paths, rec)
	detail["size"] = rec.size
	times := r.times
	r.times = false
	if !v.Accept {
		r.audit(op, v, detail, "")
		return r.refuse(rec.name)
	}
	if times {
		detail["times"] = true
	}
	ok, err := r.forward(rec)
	if err != nil || !ok {
		detail["bytes"] = 0
		r.audit(op, v, detail, "refused by the sink")
		return err
	}
	sum, n, err := r.data(rec.size)
	if err != nil {
		return err
	}
	detail["bytes"] = n
	// The source's status after the data, then the sink's.
	srcOK, err := r.sourceStatus()
	if err != nil {
		return err
	}
	sinkOK, err := r.status()
	result := ""
	switch {
	case !srcOK:
		result = "the source failed"
	case !sinkOK || err != nil:
		result = "the sink failed"
	case sum != nil:
		detail["sha256"] = hex.EncodeToString(sum.Sum(nil))
	}
	r.audit(op, v, detail, result)
	return err
}

// sourceStatus relays the status a source sends after a file's data.
func (r *relay) sourceStatus() (ok bool, err error) {
	s, ok, err := readStatus(r.src.r)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return false, fmt.Errorf("scpproxy: reading the %s: %w", r.src.name, err)
	}
	return ok, r.sink.write(s)
}

// data copies a file's size bytes from the source to the sink, hashing
// them unless the policy says not to (the hash is then nil). The protocol
// delimits the data by the C record's size, so no more than it is ever
// sent as the file.
func (r *relay) data(size int64) (hash.Hash, int64, error) {
	var sum hash.Hash
	if !r.p.p.Policy.NoContentHash {
		sum = sha256.New()
	}
	var n int64
	for n < size {
		m, err := r.src.r.Read(r.buf[:min(int64(len(r.buf)), size-n)])
		if m > 0 {
			if sum != nil {
				sum.Write(r.buf[:m])
			}
			if err := r.sink.write(r.buf[:m]); err != nil {
				return nil, n, err
			}
			n += int64(m)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && n < size {
			return nil, n, fmt.Errorf("scpproxy: reading file data from the %s: %w", r.src.name, err)
		}
	}
	return sum, n, nil
}

// dir relays D and enters the directory when the sink does.
func (r *relay) dir(rec record) error {
	op := "scp.opendir"
	v := r.p.rules.Download()
	if r.cmd.Sink {
		op, v = "scp.mkdir", r.p.rules.Mkdir()
	}
	if len(r.dirs) >= maxDepth {
		return fmt.Errorf("%w: directories nested deeper than %d", ErrProtocol, maxDepth)
	}
	paths, err := r.paths(rec.name)
	if err != nil {
		return err
	}
	v, err = r.decide(paths, v)
	if err != nil {
		return err
	}
	detail := r.detail(paths, rec)
	r.times = false
	if !v.Accept {
		r.audit(op, v, detail, "")
		return r.refuse(rec.name)
	}
	ok, err := r.forward(rec)
	result := ""
	if !ok {
		result = "refused by the sink"
	}
	r.audit(op, v, detail, result)
	if ok {
		r.dirs = append(r.dirs, paths)
	}
	return err
}

// end relays E and leaves the directory.
func (r *relay) end(rec record) error {
	if len(r.dirs) == 0 {
		return fmt.Errorf("%w: E record outside a directory", ErrProtocol)
	}
	r.dirs = r.dirs[:len(r.dirs)-1]
	r.times = false
	_, err := r.forward(rec)
	return err
}

// refuse answers a denied C or D: the source skips it. On a download the
// source is the server and the client, which never sees the record, gets
// the message as an error line.
func (r *relay) refuse(name string) error {
	msg := errorStatus("sluice: " + name + ": denied by policy")
	if !r.cmd.Sink {
		if err := r.sink.write(msg); err != nil {
			return err
		}
	}
	return r.src.write(msg)
}

// loc is a path a record may be written to or read from, as the command
// and the records name it and as the server will act on it.
type loc struct {
	// lex is the command's path, or the record's name joined to the
	// folder it arrives in, made clean.
	lex string
	// raw is the path as the server is given it, uncleaned: the kernel
	// resolves ".." after a link from the link's target, not lexically.
	// Below a folder entered, it starts where the folder really lies.
	raw string
	// canon is where the server will act: under path rules, raw resolved
	// through the server (see decide); lex otherwise.
	canon string
}

// paths returns the paths a record named name may be written to or read
// from. Below a directory entered, they follow it: the name joined to
// where the directory lies, lexically and as resolved. At the top, an
// upload's target may be a new name (the file is the target) or an
// existing directory (the file lands inside it) unless
// Command.targetIsDir; both are checked, in that order. A download's
// first record must carry its source's name.
func (r *relay) paths(name string) ([]loc, error) {
	if n := len(r.dirs); n > 0 {
		var ls []loc
		for _, d := range r.dirs[n-1] {
			l := loc{lex: path.Join(d.lex, name), raw: path.Join(d.canon, name)}
			l.canon = l.lex
			if len(l.lex) > pathMax || len(l.raw) > pathMax {
				return nil, fmt.Errorf("%w: path longer than %d bytes", ErrProtocol, pathMax)
			}
			ls = append(ls, l)
		}
		return ls, nil
	}
	target := loc{lex: clean(r.cmd.Path), raw: r.cmd.Path}
	target.canon = target.lex
	if !r.cmd.Sink {
		if name != r.cmd.sourceName() {
			return nil, fmt.Errorf("%w: the server sent %q for %q", ErrProtocol, name, r.cmd.Path)
		}
		return []loc{target}, nil
	}
	// scp's sink joins the target and the name with a slash (scp.c, sink).
	in := loc{lex: path.Join(target.lex, name), raw: target.raw + "/" + name}
	in.canon = in.lex
	if r.cmd.targetIsDir() {
		return []loc{in}, nil
	}
	return []loc{target, in}, nil
}

// decide decides a record on ls after vs, the operation's own verdicts:
// every lexical path must pass; then, under path rules, each is resolved
// through the server, in place, and must pass where it leads. Nothing is
// resolved for a record refused already. The error is the resolver's,
// which ends the session: the proxy cannot tell where the server acts.
func (r *relay) decide(ls []loc, vs ...policy.Verdict) (policy.Verdict, error) {
	rl := &r.p.rules
	for _, l := range ls {
		vs = append(vs, rl.Path(l.lex))
	}
	if v := policy.First(vs...); !v.Accept || r.res == nil {
		return v, nil
	}
	for i := range ls {
		c, err := r.resolve(ls[i])
		if err != nil {
			return policy.Verdict{}, err
		}
		ls[i].canon = c
		vs = append(vs, rl.Path(c))
	}
	return policy.First(vs...), nil
}

// resolve asks the server where l leads. The server's scp follows a
// final link (an upload's open with O_CREAT, a download's stat(2)), and
// so does REALPATH, asked of the path as the server is given it. Where
// the server cannot resolve it, its folder is resolved and the last name
// joined to it, and where it cannot resolve that either, the lexical
// path stands (a missing folder: the server fails there too), as the
// SFTP proxy does.
func (r *relay) resolve(l loc) (string, error) {
	if c, ok, err := r.realpath(l.raw); err != nil || ok {
		return c, err
	}
	i := strings.LastIndexByte(l.raw, '/')
	if i < 0 {
		return l.lex, nil
	}
	dir, base := l.raw[:i], l.raw[i+1:]
	if dir == "" {
		dir = "/"
	}
	if base == "" || base == "." || base == ".." {
		return l.lex, nil
	}
	c, ok, err := r.realpath(dir)
	if err != nil || !ok {
		return l.lex, err
	}
	return path.Join(c, base), nil
}

// realpath asks the resolver where p leads; an answer that is not an
// absolute path is no answer.
func (r *relay) realpath(p string) (string, bool, error) {
	c, ok, err := r.res.Realpath(p)
	if err != nil {
		return "", false, fmt.Errorf("scpproxy: resolving %s: %w", p, err)
	}
	if !ok || !strings.HasPrefix(c, "/") {
		return "", false, nil
	}
	return path.Clean(c), true, nil
}

// detail is the audit detail of a C or D record on ls: "path" and, when
// it differs, "path_resolved"; "alt_path" and "alt_path_resolved" for the
// second.
func (r *relay) detail(ls []loc, rec record) map[string]any {
	d := map[string]any{"name": rec.name, "mode": fmt.Sprintf("%04o", rec.mode)}
	for i, key := range []string{"path", "alt_path"}[:len(ls)] {
		d[key] = ls[i].lex
		if ls[i].canon != ls[i].lex {
			d[key+"_resolved"] = ls[i].canon
		}
	}
	return d
}

// audit writes one event; result, when not "", says why an accepted
// operation did not complete.
func (r *relay) audit(typ string, v policy.Verdict, detail map[string]any, result string) {
	e := r.st.AuditEvent(typ)
	e.Rule, e.Detail = v.Rule, detail
	if v.Accept {
		e.Verdict = audit.Accept
		if result == "" {
			result = "ok"
		}
		detail["result"] = result
	} else {
		e.Verdict, e.Reason = audit.Reject, v.Reason
	}
	if err := r.p.p.Audit.Write(r.ctx, e); err != nil {
		r.p.p.Logger.ErrorContext(r.ctx, "audit write failed", "session_id", e.SessionID, "err", err)
	}
}
