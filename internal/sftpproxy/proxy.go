package sftpproxy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/thin"
)

// Texts the client is told in a denying STATUS. They are fixed; the audit
// event holds the cause.
const (
	msgDenied      = "sluice: denied by policy"
	msgUnsupported = "sluice: operation not supported"
	msgMalformed   = "sluice: malformed request"
)

// Stream is one side of the subsystem's byte stream: read what the peer
// sends, write what it receives, CloseWrite to send EOF. A Stream that is
// also an io.Closer is closed when the session must end early (a protocol
// error, ctx done); one that is not relies on its peer to end it after
// EOF.
type Stream interface {
	io.ReadWriter
	CloseWrite() error
}

// Params configures a Proxy. Every field but MaxOutstanding is required.
type Params struct {
	// Service names the service, for rule names, or is "roles[NAME]"
	// for a role's policy (see policy.Prefix).
	Service string
	Policy  policy.Files
	Audit   audit.Sink
	Logger  *slog.Logger
	// MaxOutstanding bounds the requests of one session forwarded to the
	// server and not yet answered: past it the proxy stops reading the
	// client's requests until the server answers one, and SSH flow control
	// stops the client. 0 means config.DefaultMaxOutstanding.
	MaxOutstanding int
}

// Proxy is the SFTP proxy of one service. It is safe for concurrent use:
// each Relay call is one session.
type Proxy struct {
	p     Params
	rules policy.FileRules
	bufs  bufferPool
}

// New returns a Proxy for p.
func New(p Params) *Proxy {
	if p.MaxOutstanding <= 0 {
		p.MaxOutstanding = config.DefaultMaxOutstanding
	}
	return &Proxy{p: p, rules: policy.NewFileRules(p.Service, p.Policy)}
}

// Peers says what the two ends of a session are: the SSH identification
// strings (RFC 4253 §4.2) of the client and of the target server, ""
// where unknown. The proxy adapts to what each is known to do (see
// symlinkLinkFirst).
type Peers struct {
	ClientVersion string
	ServerVersion string
}

// Relay runs one SFTP session, stacked as st, between client and upstream
// (the target's sftp-server), whose ends are peers. It returns when both directions have ended,
// with the bytes read from and written to the client, and the first error
// that ended the session early. On the client's EOF it sends EOF upstream;
// on the server's EOF it sends EOF to the client.
func (p *Proxy) Relay(ctx context.Context, st *session.Stacked, peers Peers, client, upstream Stream) (in, out int64, err error) {
	r := &relay{
		p: p, ctx: ctx, st: st, client: client, upstream: upstream,
		clientLinkFirst: clientSymlinkLinkFirst(peers.ClientVersion),
		serverLinkFirst: serverSymlinkLinkFirst(peers.ServerVersion),
		pending:         make(map[uint32]*pending),
		handles:         make(map[string]*handle),
		slots:           make(chan struct{}, p.p.MaxOutstanding),
		serverDone:      make(chan struct{}),
		nextOwn:         ownID,
		refused:         thin.Counter[refusalKey, audit.Event]{Burst: refusalsAudited},
	}
	// Requests: read from the client, batched to the server, flushed
	// before the relay waits for the client.
	cb := p.bufs.get(flushFirst{client, r.flushServer})
	defer p.bufs.put(cb)
	r.fromC, r.toS = packetReader{br: cb.br}, batcher{w: upstream, buf: cb.out}
	// Responses: read from the server, batched to the client, flushed
	// before the relay waits for the server.
	sb := p.bufs.get(flushFirst{upstream, r.flushClient})
	defer p.bufs.put(sb)
	r.fromS, r.toC = packetReader{br: sb.br}, batcher{w: client, buf: sb.out}
	stop := context.AfterFunc(ctx, r.abort)
	defer stop()
	defer r.closeAll()
	if err := r.handshake(); err != nil {
		r.abort()
		return r.in, r.sent(), err
	}
	var wg sync.WaitGroup
	var upErr error
	wg.Go(func() {
		defer close(r.serverDone)
		upErr = r.fromServer()
		if upErr != nil {
			r.abort()
			return
		}
		_ = client.CloseWrite()
	})
	inErr := r.fromClient()
	if inErr != nil {
		r.abort()
	} else {
		_ = upstream.CloseWrite()
	}
	wg.Wait()
	return r.in, r.sent(), errors.Join(inErr, upErr)
}

// relay is one SFTP session.
type relay struct {
	p        *Proxy
	ctx      context.Context
	st       *session.Stacked
	client   Stream
	upstream Stream
	// cwd is the server's answer to REALPATH "." at the start, or "" when
	// it gave none; relative paths are anchored at it.
	cwd string
	// clientLinkFirst and serverLinkFirst say in which order the client
	// sends SYMLINK's paths and the server reads them: the link first
	// (draft-ietf-secsh-filexfer-02 §6.10) or the target first (OpenSSH).
	clientLinkFirst, serverLinkFirst bool
	// in counts bytes read from the client; only fromClient (and the
	// handshake before it) touches it.
	in int64
	// fromC and toS are the requests' way: only fromClient (and the
	// handshake before it) uses them.
	fromC packetReader
	toS   batcher
	// fromS is the responses' way in; only fromServer (and the handshake)
	// uses it.
	fromS packetReader

	// clientMu serialises writes to the client through toC: responses
	// from the server and the proxy's own answers to denied requests.
	clientMu sync.Mutex
	toC      batcher

	// mu guards the tables. It is never held during I/O; a handle's own mu
	// is taken after it, never before.
	mu      sync.Mutex
	pending map[uint32]*pending
	handles map[string]*handle
	// slots holds a token for each request in pending: fromClient puts
	// one in before it forwards a request, and blocks (reading nothing
	// more from the client) while all Params.MaxOutstanding are taken;
	// fromServer takes one out with each answer.
	slots chan struct{}
	// serverDone is closed when fromServer has returned, so that
	// fromClient does not wait for a slot or an answer that will never
	// come.
	serverDone chan struct{}
	// nextOwn is the id the proxy's next own request tries (see ownID);
	// ownErr is the I/O error one of them met. Only fromClient uses them.
	nextOwn uint32
	ownErr  error

	// refused counts the channel's refusals (see refusalsAudited).
	refused thin.Counter[refusalKey, audit.Event]
}

// pending is a request forwarded to the server and not yet answered.
type pending struct {
	typ byte
	ext string
	// h is the handle the request works on (READ, WRITE, CLOSE, copy-data's
	// destination).
	h *handle
	// key is the handle string of a CLOSE.
	key    string
	offset uint64
	// opened is the handle an OPEN or OPENDIR will register.
	opened *handle
	// audited says whether success is audited; event is then the event,
	// completed and written when the response arrives.
	audited bool
	event   *audit.Event
	// rewritten, when not nil, is forwarded in place of the client's
	// packet (a SYMLINK put in the server's order).
	rewritten []byte
	// own, when not nil, receives the answer to the proxy's own request,
	// which the client never sees.
	own chan ownAnswer
	// answerDir, when not "", asks for the path in a NAME answer
	// (REALPATH, READLINK, expand-path, home-directory) to be checked
	// against the path rules before the client sees it; a relative one
	// (READLINK) is taken from this folder.
	answerDir string
}

// handle is an open file or directory of the server.
type handle struct {
	path  string
	dir   bool
	flags uint32

	mu      sync.Mutex
	read    int64
	written int64
	// rnext and wnext are where the next sequential read or write starts.
	rnext, wnext uint64
	// sum hashes the content while it is transferred in order from offset
	// 0 in one direction only; nil once that no longer holds.
	sum hash.Hash
}

func (h *handle) writable() bool {
	return h.flags&(fxfWrite|fxfAppend|fxfCreat|fxfTrunc) != 0
}

// readData accounts n bytes read at off.
func (h *handle) readData(off uint64, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.read += int64(len(data))
	if h.sum != nil && (off != h.rnext || h.written > 0) {
		h.sum = nil
	}
	if h.sum != nil {
		h.sum.Write(data)
	}
	h.rnext = off + uint64(len(data))
}

// writeData accounts data written at off.
func (h *handle) writeData(off uint64, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.written += int64(len(data))
	if h.sum != nil && (off != h.wnext || h.read > 0) {
		h.sum = nil
	}
	if h.sum != nil {
		h.sum.Write(data)
	}
	h.wnext = off + uint64(len(data))
}

// spoil marks the content hash unknown (a failed write, copy-data).
func (h *handle) spoil() {
	h.mu.Lock()
	h.sum = nil
	h.mu.Unlock()
}

// closeDetail is the detail of the handle's close event.
func (h *handle) closeDetail() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := map[string]any{"path": h.path, "bytes_read": h.read, "bytes_written": h.written}
	if h.dir {
		d["dir"] = true
	} else if h.sum != nil {
		d["sha256"] = hex.EncodeToString(h.sum.Sum(nil))
	}
	return d
}

// abort ends the session early: it closes both streams where they can be
// closed and sends EOF where they cannot.
func (r *relay) abort() {
	for _, s := range []Stream{r.client, r.upstream} {
		if c, ok := s.(io.Closer); ok {
			_ = c.Close()
		} else {
			_ = s.CloseWrite()
		}
	}
}

// handshake relays INIT and VERSION (draft-ietf-secsh-filexfer-02 §4)
// and, in between, asks the server for REALPATH "." to anchor relative
// paths. The client sends nothing else before VERSION, so the proxy's
// request cannot collide with one of the client's.
func (r *relay) handshake() error {
	pkt, err := r.fromC.next()
	if err != nil {
		return fmt.Errorf("sftpproxy: reading INIT: %w", err)
	}
	r.in += int64(len(pkt))
	if _, err := parseVersion(pkt[4:], fxpInit); err != nil {
		return fmt.Errorf("sftpproxy: INIT: %w", err)
	}
	if err := r.toServer(pkt); err != nil {
		return fmt.Errorf("sftpproxy: forwarding INIT: %w", err)
	}
	if pkt, err = r.fromS.next(); err != nil {
		return fmt.Errorf("sftpproxy: reading VERSION: %w", err)
	}
	v, err := parseVersion(pkt[4:], fxpVersion)
	if err != nil {
		return fmt.Errorf("sftpproxy: VERSION: %w", err)
	}
	if v.version != protocolVersion {
		return fmt.Errorf("sftpproxy: server speaks SFTP version %d, want %d", v.version, protocolVersion)
	}
	if !r.p.p.Policy.AllowUnknownExtensions {
		kept := v.exts[:0]
		for _, e := range v.exts {
			if knownExtension(string(e[0])) {
				kept = append(kept, e)
			}
		}
		v.exts = kept
	}
	reply := v.marshal(fxpVersion)

	if err := r.toServer(realpathPacket(0, ".")); err != nil {
		return fmt.Errorf("sftpproxy: asking REALPATH: %w", err)
	}
	if pkt, err = r.fromS.next(); err != nil {
		return fmt.Errorf("sftpproxy: reading REALPATH: %w", err)
	}
	resp, err := parseResponse(pkt[4:])
	if err != nil {
		return fmt.Errorf("sftpproxy: REALPATH: %w", err)
	}
	if resp.typ == fxpName && len(resp.name) > 0 && resp.name[0] == '/' {
		r.cwd, _ = absPath("/", resp.name)
	} else {
		r.p.p.Logger.WarnContext(r.ctx, "sftp server gave no working directory; relative paths will be refused", "session_id", r.st.ID())
	}
	return r.toClient(reply)
}

func knownExtension(name string) bool {
	switch name {
	case extPosixRename, extStatvfs, extFstatvfs, extHardlink, extFsync, extLsetstat,
		extLimits, extExpandPath, extCopyData, extHomeDir, extUsersGroups:
		return true
	}
	return false
}

// toServer writes one packet of the proxy's own to the server at once.
func (r *relay) toServer(pkt []byte) error {
	if err := r.toS.write(pkt); err != nil {
		return err
	}
	return r.toS.flush()
}

// flushServer writes what toS holds.
func (r *relay) flushServer() error {
	if err := r.toS.flush(); err != nil {
		return fmt.Errorf("sftpproxy: writing to the server: %w", err)
	}
	return nil
}

// toClient writes one packet of the proxy's own to the client at once: an
// answer to a denied request is not held back until the server speaks.
func (r *relay) toClient(pkt []byte) error {
	r.clientMu.Lock()
	defer r.clientMu.Unlock()
	err := r.toC.write(pkt)
	if err == nil {
		err = r.toC.flush()
	}
	if err != nil {
		return fmt.Errorf("sftpproxy: writing to the client: %w", err)
	}
	return nil
}

// forwardToClient queues a server's response for the client; flushClient
// sends it before fromServer next waits.
func (r *relay) forwardToClient(pkt []byte) error {
	r.clientMu.Lock()
	defer r.clientMu.Unlock()
	if err := r.toC.write(pkt); err != nil {
		return fmt.Errorf("sftpproxy: writing to the client: %w", err)
	}
	return nil
}

// flushClient writes what toC holds.
func (r *relay) flushClient() error {
	r.clientMu.Lock()
	defer r.clientMu.Unlock()
	if err := r.toC.flush(); err != nil {
		return fmt.Errorf("sftpproxy: writing to the client: %w", err)
	}
	return nil
}

// sent returns the bytes written to the client.
func (r *relay) sent() int64 {
	r.clientMu.Lock()
	defer r.clientMu.Unlock()
	return r.toC.n
}

// fromClient relays the client's requests until its EOF, answering the
// denied ones itself.
func (r *relay) fromClient() error {
	for {
		pkt, err := r.fromC.next()
		if err == io.EOF {
			return r.flushServer()
		}
		if err != nil {
			return err
		}
		r.in += int64(len(pkt))
		if len(pkt) < 9 {
			return fmt.Errorf("%w: request of %d bytes", ErrMalformed, len(pkt)-4)
		}
		out, err := r.request(pkt)
		if err != nil {
			return err
		}
		if out == nil {
			continue
		}
		if err := r.toS.write(out); err != nil {
			return fmt.Errorf("sftpproxy: writing to the server: %w", err)
		}
	}
}

// request decides one request (length field included, type and id
// present). It returns what to forward to the server, pkt or a
// rewritten packet, and registers it as pending before the caller writes
// it; it answers what is not forwarded (nil) itself.
func (r *relay) request(pkt []byte) (out []byte, err error) {
	q, perr := parseRequest(pkt[4:])
	if perr != nil {
		code, msg := uint32(fxBadMessage), msgMalformed
		if !isRequestType(q.typ) {
			code, msg = fxOpUnsupported, msgUnsupported
		}
		e := r.st.AuditEvent("sftp.request")
		e.Verdict, e.Rule, e.Reason = audit.Reject, r.p.rules.Rule(), perr.Error()
		e.Detail = map[string]any{"type": int(q.typ)}
		r.auditRefusal(e)
		return nil, r.toClient(statusPacket(q.id, code, msg))
	}
	// Only this goroutine adds to pending: checking first is safe.
	r.mu.Lock()
	_, dup := r.pending[q.id]
	r.mu.Unlock()
	var (
		op     = "sftp.request"
		v      policy.Verdict
		pend   *pending
		detail map[string]any
	)
	if dup {
		v = r.p.rules.Reject("", fmt.Sprintf("request id %d already in flight", q.id))
	} else {
		op, v, pend, detail = r.decide(&q)
		if r.ownErr != nil {
			return nil, r.ownErr
		}
	}
	if v.Accept {
		if pend.audited {
			e := r.st.AuditEvent(op)
			e.Verdict, e.Rule, e.Detail = audit.Accept, v.Rule, detail
			pend.event = &e
		}
		if err := r.takeSlot(); err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.pending[q.id] = pend
		r.mu.Unlock()
		if pend.rewritten != nil {
			return pend.rewritten, nil
		}
		return pkt, nil
	}
	e := r.st.AuditEvent(op)
	e.Verdict, e.Rule, e.Reason, e.Detail = audit.Reject, v.Rule, v.Reason, detail
	r.auditRefusal(e)
	code, msg := uint32(fxPermissionDenied), msgDenied
	if v.Rule == r.p.rules.Rule() && q.typ == fxpExtended && !knownExtension(q.ext) {
		code, msg = fxOpUnsupported, msgUnsupported
	}
	return nil, r.toClient(statusPacket(q.id, code, msg))
}

// takeSlot waits until fewer than Params.MaxOutstanding requests are
// unanswered and takes a slot for one more. Before it waits it sends the
// server what is batched, which the server must see to answer.
func (r *relay) takeSlot() error {
	select {
	case r.slots <- struct{}{}:
		return nil
	default:
	}
	if err := r.flushServer(); err != nil {
		return err
	}
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-r.serverDone:
		return errors.New("sftpproxy: the server ended with requests unanswered")
	}
}

func isRequestType(t byte) bool {
	return t >= fxpOpen && t <= fxpSymlink || t == fxpExtended
}

// decide returns the audit type of q's operation, the verdict, what to
// remember while it is pending and the audit detail. The pending value is
// used only when the verdict accepts.
func (r *relay) decide(q *request) (op string, v policy.Verdict, pend *pending, detail map[string]any) {
	rl := &r.p.rules
	pend = &pending{typ: q.typ, ext: q.ext, offset: q.offset}
	switch q.typ {
	case fxpOpen:
		p, pv := r.resolve(q.path, true)
		detail = p.detail(map[string]any{"flags": openFlags(q.pflags)}, "path")
		h := &handle{path: p.canon, flags: q.pflags}
		if !rl.Files().NoContentHash {
			h.sum = sha256.New()
		}
		write := h.writable()
		vs := []policy.Verdict{pv}
		if q.pflags&fxfRead != 0 || !write {
			vs = append(vs, rl.Download())
		}
		if write {
			vs = append(vs, rl.Upload())
			if rl.Files().MaxUploadSize > 0 && q.pflags&fxfAppend != 0 && q.pflags&fxfTrunc == 0 {
				vs = append(vs, rl.Reject("max_upload_size", "append to a file of unknown size"))
			}
		}
		pend.opened, pend.audited = h, true
		return "sftp.open", policy.First(append(vs, rl.Accept())...), pend, detail
	case fxpOpendir:
		p, pv := r.resolve(q.path, true)
		pend.opened, pend.audited = &handle{path: p.canon, dir: true}, true
		return "sftp.opendir", pv, pend, p.detail(nil, "path")
	case fxpClose:
		pend.h, v = r.byHandle(q.handle, nil)
		pend.key = q.handle
		return "sftp.close", v, pend, nil
	case fxpRead:
		pend.h, v = r.byHandle(q.handle, func(h *handle) bool { return !h.dir })
		return "sftp.read", v, pend, nil
	case fxpWrite:
		h, hv := r.byHandle(q.handle, func(h *handle) bool { return !h.dir && h.writable() })
		if !hv.Accept {
			return "sftp.write", hv, pend, nil
		}
		h.mu.Lock()
		total := uint64(h.written) + q.length
		h.mu.Unlock()
		end := q.offset + q.length
		if v = policy.First(rl.Size(end), rl.Size(total)); end < q.offset {
			v = rl.Reject("", "offset overflows")
		}
		if !v.Accept {
			// Accepted writes are audited in their handle's close event.
			return "sftp.write", v, pend, map[string]any{"path": h.path, "offset": q.offset, "length": q.length}
		}
		h.writeData(q.offset, q.data)
		pend.h = h
		return "sftp.write", v, pend, nil
	case fxpFstat, fxpReaddir:
		pend.h, v = r.byHandle(q.handle, nil)
		return "sftp.stat", v, pend, nil
	case fxpLstat, fxpStat:
		p, pv := r.resolve(q.path, q.typ == fxpStat)
		return "sftp.stat", pv, pend, p.detail(nil, "path")
	case fxpSetstat, fxpFsetstat:
		var p string
		var pv policy.Verdict
		if q.typ == fxpSetstat {
			var res resolved
			res, pv = r.resolve(q.path, true)
			p = res.canon
		} else {
			var h *handle
			if h, pv = r.byHandle(q.handle, nil); h != nil {
				p, pv = h.path, rl.Path(h.path)
			}
		}
		return r.setstat(q, pend, p, pv)
	case fxpRemove, fxpRmdir:
		p, pv := r.resolve(q.path, false)
		op = "sftp.remove"
		if q.typ == fxpRmdir {
			op = "sftp.rmdir"
		}
		pend.audited = true
		return op, policy.First(pv, rl.Remove()), pend, p.detail(nil, "path")
	case fxpMkdir:
		p, pv := r.resolve(q.path, false)
		pend.audited = true
		return "sftp.mkdir", policy.First(pv, rl.Mkdir()), pend, p.detail(nil, "path")
	case fxpRealpath:
		p, ok := absPath(r.cwd, q.path)
		pv := rl.Accept()
		if !ok {
			pv = rl.Reject("", "relative path without a working directory: "+q.path)
		} else if p != r.cwd {
			// The client asks for its working directory at the start; it
			// may lie outside allow_paths. Other paths must be inside
			// them, and so must the answer.
			pv = rl.Path(p)
		}
		pend.audited = true
		if rl.HasPathRules() {
			pend.answerDir = "/"
		}
		return "sftp.realpath", pv, pend, map[string]any{"path": p}
	case fxpReadlink:
		p, pv := r.resolve(q.path, false)
		pend.audited = true
		if rl.HasPathRules() {
			pend.answerDir = path.Dir(p.canon)
		}
		return "sftp.readlink", pv, pend, p.detail(nil, "path")
	case fxpRename:
		return r.rename(q, pend)
	case fxpSymlink:
		linkArg, target := q.path2, q.path
		if r.clientLinkFirst {
			linkArg, target = q.path, q.path2
		}
		if r.clientLinkFirst != r.serverLinkFirst {
			first, second := target, linkArg
			if r.serverLinkFirst {
				first, second = linkArg, target
			}
			pend.rewritten = twoPathPacket(fxpSymlink, q.id, first, second)
		}
		// The rule on links first: with links off, the server is not
		// asked where they would lead.
		allowed := rl.Link()
		detail := map[string]any{"path": linkArg, "target": target}
		pend.audited = true
		if !allowed.Accept {
			return "sftp.symlink", allowed, pend, detail
		}
		link, lv := r.resolve(linkArg, false)
		detail = link.detail(detail, "path")
		if !lv.Accept {
			return "sftp.symlink", lv, pend, detail
		}
		t, tv := r.linkTarget(link, target)
		return "sftp.symlink", policy.First(tv, allowed), pend, t.detail(detail, "target")
	case fxpExtended:
		return r.extended(q, pend)
	}
	return "sftp.request", rl.Reject("", "unsupported request"), pend, nil
}

// rename decides RENAME and posix-rename: refused when the tree moved,
// at its old place or its new one, contains or could contain a denied
// path (Rules.Contains), since it would then be reached by a name no
// glob matches.
func (r *relay) rename(q *request, pend *pending) (string, policy.Verdict, *pending, map[string]any) {
	rl := &r.p.rules
	pend.audited = true
	detail := map[string]any{"path": q.path, "new_path": q.path2}
	if v := rl.Rename(); !v.Accept {
		return "sftp.rename", v, pend, detail
	}
	from, fv := r.resolve(q.path, false)
	to, tv := r.resolve(q.path2, false)
	detail = to.detail(from.detail(detail, "path"), "new_path")
	return "sftp.rename", policy.First(fv, tv, rl.Contains(from.canon), rl.Contains(to.canon), rl.Accept()), pend, detail
}

// hardlink decides hardlink@openssh.com (old path, new path): a new name
// for the file the old one names, which must be reachable, like a
// symbolic link's target.
func (r *relay) hardlink(q *request, pend *pending) (string, policy.Verdict, *pending, map[string]any) {
	rl := &r.p.rules
	pend.audited = true
	detail := map[string]any{"path": q.path, "new_path": q.path2}
	if v := rl.Link(); !v.Accept {
		return "sftp.link", v, pend, detail
	}
	from, fv := r.resolve(q.path, false)
	to, tv := r.resolve(q.path2, false)
	detail = to.detail(from.detail(detail, "path"), "new_path")
	vs := []policy.Verdict{fv, tv, rl.Contains(from.canon)}
	if rl.HasPathRules() && fv.Accept {
		// link(2) does not follow a final link: the new name is then a
		// link itself, reaching what the old one reaches.
		t, v := r.resolve(q.path, true)
		vs = append(vs, v, rl.Contains(t.canon))
	}
	return "sftp.link", policy.First(append(vs, rl.Accept())...), pend, detail
}

// byHandle finds an open handle that want accepts (nil accepts any).
func (r *relay) byHandle(key string, want func(*handle) bool) (*handle, policy.Verdict) {
	r.mu.Lock()
	h := r.handles[key]
	r.mu.Unlock()
	if h == nil || (want != nil && !want(h)) {
		return nil, r.p.rules.Reject("", "unknown or unsuitable handle")
	}
	return h, r.p.rules.Accept()
}

// setstat decides SETSTAT, FSETSTAT and lsetstat on path p.
func (r *relay) setstat(q *request, pend *pending, p string, pv policy.Verdict) (string, policy.Verdict, *pending, map[string]any) {
	rl := &r.p.rules
	vs := []policy.Verdict{pv, rl.Setstat()}
	if q.attrs.flags&attrSize != 0 {
		vs = append(vs, rl.Size(q.attrs.size))
	}
	pend.audited = true
	return "sftp.setstat", policy.First(vs...), pend, map[string]any{"path": p, "attrs": int64(q.attrs.flags)}
}

// extended decides EXTENDED requests (PROTOCOL.sftp §4).
func (r *relay) extended(q *request, pend *pending) (string, policy.Verdict, *pending, map[string]any) {
	rl := &r.p.rules
	switch q.ext {
	case extPosixRename:
		return r.rename(q, pend)
	case extHardlink:
		return r.hardlink(q, pend)
	case extStatvfs:
		p, pv := r.resolve(q.path, true)
		return "sftp.stat", pv, pend, p.detail(nil, "path")
	case extFstatvfs, extFsync:
		h, hv := r.byHandle(q.handle, nil)
		pend.h = h
		return "sftp.stat", hv, pend, nil
	case extLsetstat:
		p, pv := r.resolve(q.path, false)
		return r.setstat(q, pend, p.canon, pv)
	case extExpandPath, extHomeDir:
		pend.audited = true
		if rl.HasPathRules() {
			// "~user" and home folders: only the answer tells where.
			pend.answerDir = "/"
		}
		if q.ext == extHomeDir {
			return "sftp.realpath", rl.Accept(), pend, map[string]any{"user": q.path}
		}
		return "sftp.realpath", rl.Accept(), pend, map[string]any{"path": q.path}
	case extLimits, extUsersGroups:
		return "sftp.extended", rl.Accept(), pend, nil
	case extCopyData:
		src, sv := r.byHandle(q.handle, func(h *handle) bool { return !h.dir })
		dst, dv := r.byHandle(q.handle2, func(h *handle) bool { return !h.dir && h.writable() })
		detail := map[string]any{"length": q.length}
		if src != nil && dst != nil {
			detail["path"], detail["new_path"] = src.path, dst.path
		}
		v := policy.First(sv, dv, rl.Accept())
		if v.Accept && rl.Files().MaxUploadSize > 0 {
			// Length 0 copies to the end of the source: of unknown size.
			end := q.offset2 + q.length
			if q.length == 0 || end < q.offset2 {
				v = rl.Reject("max_upload_size", "copy of unknown size")
			} else {
				v = rl.Size(end)
			}
		}
		if v.Accept {
			dst.spoil()
		}
		pend.audited = true
		return "sftp.copy", v, pend, detail
	}
	detail := map[string]any{"extension": q.ext}
	if rl.Files().AllowUnknownExtensions {
		pend.audited = true
		return "sftp.extended", rl.Accept(), pend, detail
	}
	return "sftp.extended", rl.Reject("", "unknown extension "+q.ext), pend, detail
}

// openFlags spells OPEN's pflags for the audit, e.g. "write,creat,trunc".
func openFlags(f uint32) string {
	names := []struct {
		bit  uint32
		name string
	}{{fxfRead, "read"}, {fxfWrite, "write"}, {fxfAppend, "append"}, {fxfCreat, "creat"}, {fxfTrunc, "trunc"}, {fxfExcl, "excl"}}
	var s []byte
	for _, n := range names {
		if f&n.bit != 0 {
			if len(s) > 0 {
				s = append(s, ',')
			}
			s = append(s, n.name...)
		}
	}
	return string(s)
}

// fromServer relays the server's responses until its EOF, pairing each
// with its request.
func (r *relay) fromServer() error {
	for {
		pkt, err := r.fromS.next()
		if err == io.EOF {
			return r.flushClient()
		}
		if err != nil {
			return fmt.Errorf("sftpproxy: server: %w", err)
		}
		resp, err := parseResponse(pkt[4:])
		if err != nil {
			return fmt.Errorf("sftpproxy: server: %w", err)
		}
		r.mu.Lock()
		pend := r.pending[resp.id]
		delete(r.pending, resp.id)
		r.mu.Unlock()
		if pend == nil {
			return fmt.Errorf("sftpproxy: server answered request id %d, which is not pending", resp.id)
		}
		if pend.own != nil {
			pend.own <- ownAnswer{typ: resp.typ, name: resp.name}
			continue
		}
		<-r.slots
		pkt = r.response(pend, &resp, pkt)
		if err := r.forwardToClient(pkt); err != nil {
			return err
		}
	}
}

// response updates the session's state from a response before it is
// forwarded, and audits the operation. It returns what to forward: pkt,
// or a refusal in place of an answer that would reveal a path the rules
// hide.
func (r *relay) response(pend *pending, resp *response, pkt []byte) []byte {
	e := pend.event
	result := "ok"
	if resp.typ == fxpStatus && resp.status != fxOK {
		result = statusName(resp.status)
	}
	if pend.answerDir != "" && resp.typ == fxpName {
		if v := r.answerVerdict(pend.answerDir, resp.name); !v.Accept {
			if e == nil {
				ev := r.st.AuditEvent("sftp.extended")
				e = &ev
			}
			e.Verdict, e.Rule, e.Reason = audit.Reject, v.Rule, "answer hidden: "+v.Reason
			if e.Detail == nil {
				e.Detail = map[string]any{}
			}
			e.Detail["result"] = "refused"
			r.auditRefusal(*e)
			return statusPacket(resp.id, fxPermissionDenied, msgDenied)
		}
	}
	switch {
	case pend.typ == fxpRead && resp.typ == fxpData:
		pend.h.readData(pend.offset, resp.data)
	case pend.typ == fxpWrite && result != "ok":
		pend.h.spoil()
	case pend.opened != nil && resp.typ == fxpHandle:
		r.mu.Lock()
		r.handles[resp.handle] = pend.opened
		r.mu.Unlock()
		e.Detail["handle"] = hex.EncodeToString([]byte(resp.handle))
	case pend.typ == fxpClose:
		r.mu.Lock()
		if r.handles[pend.key] == pend.h {
			delete(r.handles, pend.key)
		}
		r.mu.Unlock()
		ev := r.st.AuditEvent("sftp.close")
		ev.Verdict, ev.Rule = audit.Accept, r.p.rules.Rule()
		ev.Detail = pend.h.closeDetail()
		ev.Detail["result"] = result
		r.audit(ev)
	case (pend.typ == fxpRealpath || pend.ext == extExpandPath) && resp.typ == fxpName:
		e.Detail["result"] = resp.name
	case pend.ext == extLimits && resp.typ == fxpExtendedReply:
		clampLimits(pkt[9:])
	}
	if e != nil {
		if _, ok := e.Detail["result"]; !ok {
			e.Detail["result"] = result
		}
		r.audit(*e)
	}
	return pkt
}

// answerVerdict decides whether a path the server answered (name, from
// the folder dir when relative) may be shown to the client: the login
// folder may, which clients need, and what the path rules permit.
func (r *relay) answerVerdict(dir, name string) policy.Verdict {
	p := name
	if !strings.HasPrefix(p, "/") {
		p = dir + "/" + p
	}
	p = path.Clean(p)
	if p == r.cwd {
		return r.p.rules.Accept()
	}
	return r.p.rules.Path(p)
}

// clampLimits lowers the server's limits@openssh.com answer (PROTOCOL.sftp
// §4.8: packet, read, write lengths and open handles as uint64) to what the
// proxy accepts, in place, so that the client never sends a packet the
// proxy must refuse. OpenSSH's sftp-server already answers with these.
func clampLimits(b []byte) {
	if len(b) < 24 {
		return
	}
	for i, limit := range []uint64{maxPacket, maxPacket - 1024, maxPacket - 1024} {
		f := b[8*i : 8*i+8]
		if v := binary.BigEndian.Uint64(f); v == 0 || v > limit {
			binary.BigEndian.PutUint64(f, limit)
		}
	}
}

// statusName names a STATUS code for the audit.
func statusName(code uint32) string {
	names := [...]string{"ok", "eof", "no_such_file", "permission_denied", "failure", "bad_message", "no_connection", "connection_lost", "op_unsupported"}
	if int(code) < len(names) {
		return names[code]
	}
	return fmt.Sprintf("status_%d", code)
}

// closeAll audits the handles still open when the session ends, and the
// count of refusals thinned out.
func (r *relay) closeAll() {
	r.mu.Lock()
	hs := r.handles
	r.handles = nil
	r.mu.Unlock()
	for _, h := range hs {
		e := r.st.AuditEvent("sftp.close")
		e.Verdict, e.Rule, e.Reason = audit.Accept, r.p.rules.Rule(), "session ended with the handle open"
		e.Detail = h.closeDetail()
		r.audit(e)
	}
	for _, e := range r.refusalSummary() {
		r.audit(e)
	}
}

func (r *relay) audit(e audit.Event) {
	if err := r.p.p.Audit.Write(r.ctx, e); err != nil {
		r.p.p.Logger.ErrorContext(r.ctx, "audit write failed", "session_id", e.SessionID, "err", err)
	}
}
