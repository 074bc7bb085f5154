package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/sshsession"
)

// errRefused answers a request false; the audit event says why.
var errRefused = errors.New("sshproxy: request refused")

// session proxies one "session" channel: it opens the twin channel upstream
// first, so that a refusal there is mirrored to the client, then serves the
// client's channel with a relay as the sshsession Handler.
func (c *conn) session(ctx context.Context, nc ssh.NewChannel, st *session.Stacked) {
	upCh, upReqs, err := c.up.OpenChannel("session", nil)
	if err != nil {
		e := st.AuditEvent("channel")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "upstream", err.Error()
		c.audit(ctx, e)
		rejectLike(nc, err)
		return
	}
	e := st.AuditEvent("channel")
	e.Verdict, e.Rule = audit.Accept, "channel types"
	e.Detail = map[string]any{"channel": "session"}
	c.audit(ctx, e)

	r := &relay{c: c, st: st, ctx: ctx, up: c.act.channel(upCh), upDone: make(chan struct{})}
	c.wg.Go(func() { r.upstreamRequests(upReqs) })
	cfg := c.p.p.Session
	cfg.AcceptEnv = func(name, value string) bool {
		return c.decide(ctx, st, "env", c.grant.Policy.Env(name, value), map[string]any{"name": name})
	}
	_ = sshsession.Serve(ctx, c.sconn, nc, r, &cfg)
	upCh.Close()
	<-r.upDone
	if r.inDone != nil {
		// The client's channel is closed: its reads end.
		<-r.inDone
	}
	end := r.end()
	e = st.AuditEvent("channel.end")
	e.Detail = end.detail()
	if r.rec != nil {
		e.Detail["recording"] = r.rec.Path()
		e.Detail["streams"] = r.rec.Close()
	}
	c.audit(ctx, e)
	c.account(end)
}

// relay is the proxy's avatar for one session channel: Conch's ISession,
// relaying to the target instead of running a program.
type relay struct {
	c   *conn
	st  *session.Stacked
	ctx context.Context
	up  ssh.Channel

	// upDone is closed when the upstream channel's requests end, which is
	// when the target has closed the channel; exit is final by then.
	upDone chan struct{}

	// rec is the channel's recorder, or nil; set before the program starts.
	rec Recorder
	// inDone, when streams relays stdin, is closed when that copy ends.
	inDone chan struct{}
	// transfer is the stacked proxy of an exec command, or nil; set before
	// the program starts.
	transfer *Transfer
	// stack names the subsystem whose stacked proxy (Params.Stacked) the
	// program runs through, or ""; set before the program starts.
	stack string

	mu       sync.Mutex
	exit     *uint32
	signal   *sshsession.ExitSignal
	command  string
	in, out  int64
	errBytes int64
}

// forward sends an inspected request to the target and reports its answer.
func (r *relay) forward(req sshsession.Request, wantReply bool) error {
	ok, err := r.up.SendRequest(req.Type(), wantReply, req.Marshal())
	if err != nil {
		return fmt.Errorf("sshproxy: forwarding %s: %w", req.Type(), err)
	}
	if wantReply && !ok {
		return fmt.Errorf("%w: target refused %s", errRefused, req.Type())
	}
	return nil
}

// HandleRequest decides one request by policy and forwards what is allowed.
func (r *relay) HandleRequest(s *sshsession.Session, req sshsession.Request) error {
	c, pol := r.c, r.c.grant.Policy
	switch q := req.(type) {
	case *sshsession.PtyRequest:
		if !c.decide(r.ctx, r.st, "pty", c.stepUp.Decide(pol.Pty(c.restr), policy.KindPty), map[string]any{"term": q.Term, "columns": q.Columns, "rows": q.Rows}) {
			return errRefused
		}
		return r.forward(q, true)
	case *sshsession.EnvRequest:
		// AcceptEnv has decided and audited it already.
		return r.forward(q, true)
	case *sshsession.ShellRequest, *sshsession.ExecRequest, *sshsession.SubsystemRequest:
		return r.program(s, q)
	case *sshsession.WindowChange:
		// RFC 4254 §6.7: sent without want-reply.
		if r.rec != nil {
			r.rec.Resize(int(q.Columns), int(q.Rows))
		}
		return r.forward(q, false)
	case *sshsession.SignalRequest:
		// RFC 4254 §6.9: sent without want-reply.
		return r.forward(q, false)
	case *sshsession.BreakRequest:
		return r.forward(q, true)
	case *sshsession.OtherRequest:
		return r.other(q)
	}
	return fmt.Errorf("%w: %s", errRefused, req.Type())
}

// other decides the requests sshsession has no typed view of: agent and X11
// forwarding behind their switches; everything else is refused.
func (r *relay) other(q *sshsession.OtherRequest) error {
	c, pol := r.c, r.c.grant.Policy
	var v policy.Verdict
	var flag *atomic.Bool
	switch q.Name {
	case "auth-agent-req@openssh.com":
		v, flag = c.stepUp.Decide(pol.Agent(c.restr), policy.KindAgent), &c.agent
	case "x11-req":
		v, flag = c.stepUp.Decide(pol.X11(c.restr), policy.KindX11), &c.x11
	default:
		return fmt.Errorf("%w: %s", errRefused, q.Name)
	}
	if !c.decide(r.ctx, r.st, q.Name, v, nil) {
		return errRefused
	}
	if err := r.forward(q, true); err != nil {
		return err
	}
	flag.Store(true)
	return nil
}

// program decides shell, exec and subsystem requests, applying forced
// commands to all three as sshd(8) does. A request the policy denies is
// refused on the wire (answered false), so that every client reports a
// failure: one accepted and then ended with an error status is success to
// a client that looks only at the reply, as libssh2's scp does. The fixed
// reason goes on stderr first, where OpenSSH's ssh shows it next to its
// own "exec request failed".
func (r *relay) program(s *sshsession.Session, req sshsession.Request) error {
	c, pol := r.c, r.c.grant.Policy
	var typ, requested string
	switch q := req.(type) {
	case *sshsession.ShellRequest:
		typ = "shell"
	case *sshsession.ExecRequest:
		typ, requested = "exec", q.Command
	case *sshsession.SubsystemRequest:
		typ, requested = "subsystem", q.Name
	}
	detail := map[string]any{}
	if typ == "subsystem" {
		detail["subsystem"] = requested
	}
	cmd, rule, forced := pol.ForcedCommand(c.restr)
	var v policy.Verdict
	var transfer *Transfer
	var stack string   // the subsystem whose stacked proxy runs it
	upReq := req       // what the target is asked to run
	var kinds []string // what it is, for the step-up (policy.StepUp)
	isTransfer := false
	switch {
	case forced && isInternalSFTP(cmd):
		// sshd runs its in-process SFTP server for every request; the
		// target's counterpart is its sftp subsystem, under the sftp
		// policy and the stacked proxy. internal-sftp's options (-R, -d,
		// -P, ...) have no such counterpart: refused, never dropped.
		if cmd != internalSFTP {
			v = policy.Verdict{Rule: rule, Reason: "forced internal-sftp with options: the gateway cannot pass them to the target"}
		} else if v = pol.Subsystem("sftp"); v.Accept {
			v.Reason = "forced internal-sftp runs the sftp subsystem"
		}
		upReq = &sshsession.SubsystemRequest{Name: "sftp"}
		kinds = []string{policy.KindSubsystem + ":sftp"}
		if c.grant.Stacked["sftp"] != nil {
			stack = "sftp"
		}
		detail["command"], detail["forced_by"] = cmd, rule
	case forced:
		v = policy.Verdict{Accept: true, Rule: rule, Reason: "forced command"}
		upReq = &sshsession.ExecRequest{Command: cmd}
		detail["command"] = cmd
		transfer, v, isTransfer = r.execTransfer(cmd, v)
		defer r.releaseUnused(transfer)
		kinds = []string{policy.KindExec}
	case typ == "shell":
		v = pol.Shell()
		kinds = []string{policy.KindShell}
	case typ == "exec":
		v = pol.Exec(requested)
		detail["command"] = requested
		transfer, v, isTransfer = r.execTransfer(requested, v)
		defer r.releaseUnused(transfer)
		kinds = []string{policy.KindExec}
	default:
		v = pol.Subsystem(requested)
		kinds = []string{policy.KindSubsystem + ":" + requested}
		if c.grant.Stacked[requested] != nil {
			stack = requested
		}
	}
	if isTransfer {
		// scp and sftp-server run by exec move files as the sftp
		// subsystem does: a step-up on either holds them.
		kinds = append(kinds, policy.KindSubsystem+":sftp")
	}
	v = c.stepUp.Decide(v, kinds...)
	if forced && requested != "" {
		detail["original_command"] = requested
	}
	if transfer != nil && v.Accept {
		detail["stacked"] = transfer.Name
	}
	if forced && v.Accept && requested != "" && stack == "" {
		// As sshd sets SSH_ORIGINAL_COMMAND: an env request ahead of the
		// exec, which the target honours where its AcceptEnv lists the
		// name. The forced command runs either way; the audit says
		// whether the target took it.
		ok, err := r.up.SendRequest("env", true, (&sshsession.EnvRequest{Name: envOriginalCommand, Value: requested}).Marshal())
		detail["original_command_env"] = err == nil && ok
	}
	// command is what runs on the target, for the recording and the
	// channel's end event: "" for a shell or a subsystem.
	var command string
	switch {
	case forced:
		command = cmd
	case typ == "exec":
		command = requested
	}
	r.mu.Lock()
	r.command = command
	r.mu.Unlock()
	if !c.decide(r.ctx, r.st, typ, v, detail) {
		r.tell(s, msgDenied)
		return errRefused
	}
	if _, sub := upReq.(*sshsession.SubsystemRequest); !sub && transfer == nil {
		if err := r.startRecording(s, command); err != nil {
			return err
		}
	}
	if err := r.forward(upReq, true); err != nil {
		return err
	}
	// Only a program that starts is served through them: a refused
	// request leaves the channel open for another.
	r.transfer, r.stack = transfer, stack
	return nil
}

// envOriginalCommand carries the request a forced command replaced
// (sshd(8) ENVIRONMENT).
const envOriginalCommand = "SSH_ORIGINAL_COMMAND"

// internalSFTP is OpenSSH's in-process SFTP server, as a forced command
// (sshd_config(5) ForceCommand).
const internalSFTP = "internal-sftp"

// isInternalSFTP reports whether a forced command runs internal-sftp, with
// or without options.
func isInternalSFTP(cmd string) bool {
	first, _, _ := strings.Cut(strings.TrimLeft(cmd, " \t"), " ")
	return strings.TrimRight(first, "\t") == internalSFTP
}

// execTransfer asks Params.ExecTransfer about a command the policy
// accepted (v), so that scp and sftp-server run by exec, or forced, do not
// get around the sftp subsystem's policy. It returns the stacked proxy to
// run, if any, the verdict that now stands, and whether cmd is a file
// transfer.
func (r *relay) execTransfer(cmd string, v policy.Verdict) (*Transfer, policy.Verdict, bool) {
	xt := r.c.grant.ExecTransfer
	if !v.Accept || xt == nil {
		return nil, v, false
	}
	t, ok := xt(r.st, cmd)
	if !ok {
		return nil, v, false
	}
	if t.Proxy != nil {
		return &t, t.Verdict, true
	}
	if t.Release != nil {
		t.Release()
	}
	return nil, t.Verdict, true
}

// releaseUnused releases t, an exec command's transfer, unless its
// program started: Serve then releases it once the proxy returns.
func (r *relay) releaseUnused(t *Transfer) {
	if t != nil && r.transfer != t && t.Release != nil {
		t.Release()
	}
}

// Serve relays the program's streams and its exit status.
func (r *relay) Serve(s *sshsession.Session) {
	// A client that goes away takes the target's channel with it, and
	// the recorder lets go of a relay waiting for it.
	stop := context.AfterFunc(s.Context(), func() {
		r.up.Close()
		if r.rec != nil {
			r.rec.Close()
		}
	})
	defer stop()
	defer r.c.running(s)()

	switch {
	case r.stack != "":
		r.stacked(s, r.stack, r.c.grant.Stacked[r.stack], "subsystem.end")
	case r.transfer != nil:
		r.stackedExec(s)
	default:
		r.streams(s)
	}
	<-r.upDone
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.exit != nil:
		s.Exit(*r.exit)
	case r.signal != nil:
		s.ExitWithSignal(*r.signal)
	}
}

// streams relays stdin, stdout and stderr, copying them to the recorder
// when there is one.
func (r *relay) streams(s *sshsession.Session) {
	stdin, stdout, stderr := io.Reader(s), io.Writer(s), io.Writer(s.Stderr())
	if rec := r.rec; rec != nil {
		stdin = teeReader{s, rec.Input}
		stdout = teeWriter{s, rec.Output}
		stderr = teeWriter{s.Stderr(), rec.Stderr}
	}
	if t, ok := r.rec.(Terminal); ok {
		if _, pty := s.Pty(); pty {
			defer t.Attach(s, r.up)()
		}
	}
	// Client stdin to the target. Read ends when the client sends EOF or the
	// channel closes; the connection owns the goroutine, and session waits
	// for it before the channel's end is audited.
	r.inDone = make(chan struct{})
	r.c.wg.Go(func() {
		defer close(r.inDone)
		n, _ := copyStream(r.up, stdin)
		_ = r.up.CloseWrite()
		r.mu.Lock()
		r.in = n
		r.mu.Unlock()
	})
	// The client's stdout and stderr stay open at the target's EOF: Serve's
	// return sends the exit status, then EOF, as sshd does (see
	// sshsession.Handler).
	var wg sync.WaitGroup
	wg.Go(func() {
		n, _ := copyStream(stderr, r.up.Stderr())
		r.mu.Lock()
		r.errBytes = n
		r.mu.Unlock()
	})
	n, _ := copyStream(stdout, r.up)
	wg.Wait()
	r.mu.Lock()
	r.out = n
	r.mu.Unlock()
}

// stacked hands the channel's data to a stacked proxy (a subsystem's, or
// an exec command's Transfer) as a session stacked under this channel's
// (".../session:N/sftp"). An error that ended it is audited as endType.
func (r *relay) stacked(s *sshsession.Session, name string, sp StackedProxy, endType string) {
	in, out, err := sp(r.ctx, r.st.Stack(name, -1), s, r.up)
	if err != nil {
		e := r.st.AuditEvent(endType)
		e.Reason = err.Error()
		r.c.audit(r.ctx, e)
		r.up.Close()
	}
	r.mu.Lock()
	r.in, r.out = in, out
	r.mu.Unlock()
}

// stackedExec runs an exec command's stacked proxy, with the target's
// stderr relayed to the client unchanged alongside it. stderr stays open
// at the target's EOF, so that the client's EOF follows the exit status
// (see streams).
func (r *relay) stackedExec(s *sshsession.Session) {
	var wg sync.WaitGroup
	wg.Go(func() {
		n, _ := copyStream(s.Stderr(), r.up.Stderr())
		r.mu.Lock()
		r.errBytes = n
		r.mu.Unlock()
	})
	r.stacked(s, r.transfer.Name, r.transfer.Proxy, "exec.end")
	if r.transfer.Release != nil {
		r.transfer.Release()
	}
	wg.Wait()
}

// tell writes text to the client's stderr ahead of a refusal, and waits
// until the client has taken it in before the refusal is answered.
// OpenSSH's ssh ends at once on a failed exec, shell or subsystem request
// (fatal in clientloop.c client_status_confirm), so stderr data that
// arrives in the same read as the failure is never written out. A
// channel request with want-reply after the text is a barrier: every
// client answers one (RFC 4254 §5.4: false to a request it does not
// know), and ssh answers it only after the data before it is handled,
// written to its stderr in the same turn of its loop. The request is
// OpenSSH's own channel keepalive (serverloop.c client_alive_check).
//
// A client that grants no window or never answers holds this up: the
// work is the connection's (c.wg), ends when the channel closes, and is
// waited for at most farewellWait.
func (r *relay) tell(s *sshsession.Session, text string) {
	done := make(chan struct{})
	r.c.wg.Go(func() {
		defer close(done)
		if _, err := s.Stderr().Write([]byte(text)); err != nil {
			return
		}
		_, _ = s.Channel().SendRequest(keepaliveRequest, true, nil)
	})
	select {
	case <-done:
	case <-time.After(farewellWait):
	}
}

// keepaliveRequest is the request OpenSSH's sshd sends to see that a
// client is alive (serverloop.c client_alive_check); clients answer it.
const keepaliveRequest = "keepalive@openssh.com"

// farewellWait bounds how long the stderr line of a failed recording waits
// for a client that does not read before the channel is closed anyway.
const farewellWait = 5 * time.Second

// startRecording asks the connection's Recording whether to record the
// channel. A channel that must be recorded but cannot be is refused; one
// whose recording fails later is ended (fail_closed) or goes on with an
// audit event saying its recording is incomplete (best_effort).
func (r *relay) startRecording(s *sshsession.Session, command string) error {
	if r.c.recording == nil {
		return nil
	}
	failClosed := r.c.recording.FailClosed()
	rec, err := r.c.recording.Channel(r.st, s, command)
	if err != nil {
		e := r.st.AuditEvent("record")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "record.on_failure", err.Error()
		if !failClosed {
			e.Reason = "recording unavailable, the channel goes on unrecorded: " + err.Error()
			r.c.audit(r.ctx, e)
			return nil
		}
		r.c.audit(r.ctx, e)
		return fmt.Errorf("%w: recording unavailable", errRefused)
	}
	if rec == nil {
		return nil
	}
	r.rec = rec
	e := r.st.AuditEvent("record")
	e.Verdict, e.Rule = audit.Accept, "services["+r.c.p.p.Service+"].record"
	e.Detail = map[string]any{"recording": rec.Path()}
	r.c.audit(r.ctx, e)
	r.c.wg.Go(func() {
		select {
		case <-rec.Failed():
		case <-r.upDone:
			return
		}
		e := r.st.AuditEvent("record")
		e.Verdict, e.Rule = audit.Reject, "record.on_failure"
		e.Detail = map[string]any{"recording": rec.Path()}
		if !failClosed {
			e.Reason = fmt.Sprintf("recording incomplete, the channel goes on unrecorded: %v", rec.Err())
			r.c.audit(r.ctx, e)
			return
		}
		e.Reason = fmt.Sprintf("recording failed, channel ended: %v", rec.Err())
		r.c.audit(r.ctx, e)
		// The recorder holds the relay (fail closed): tell the client
		// why, as long as it reads, then end the channel.
		written := make(chan struct{})
		r.c.wg.Go(func() {
			_, _ = s.Stderr().Write([]byte(msgRecordFailed))
			close(written)
		})
		select {
		case <-written:
		case <-time.After(farewellWait):
		}
		r.up.Close()
		_ = s.Channel().Close()
		rec.Close() // lets the held relay go
	})
	return nil
}

// upstreamRequests services the target's requests on the channel: it keeps
// exit-status and exit-signal for Serve and refuses everything else.
func (r *relay) upstreamRequests(reqs <-chan *ssh.Request) {
	defer close(r.upDone)
	for req := range reqs {
		switch req.Type {
		case "exit-status":
			if st, err := sshsession.ParseExitStatus(req.Payload); err == nil {
				r.mu.Lock()
				r.exit = &st
				r.mu.Unlock()
			}
		case "exit-signal":
			if sig, err := sshsession.ParseExitSignal(req.Payload); err == nil {
				r.mu.Lock()
				r.signal = &sig
				r.mu.Unlock()
			}
		}
		if req.WantReply {
			_ = req.Reply(false, nil)
		}
	}
}

// channelEnd is what a session channel did, for its end event and its
// connection's totals.
type channelEnd struct {
	in, out, errBytes int64
	status            *uint32 // the exit status, nil when none came
	signal            string  // the exit signal's name, when one came instead
	command           string
}

// end returns what r's channel did.
func (r *relay) end() channelEnd {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := channelEnd{in: r.in, out: r.out, errBytes: r.errBytes, status: r.exit, command: r.command}
	if r.exit == nil && r.signal != nil {
		e.signal = r.signal.Signal
	}
	return e
}

// exit is how the program ended, as the audit records it: its exit
// status, its signal's name, or "missing".
func (e channelEnd) exit() (key string, value any) {
	switch {
	case e.status != nil:
		return "exit_status", *e.status
	case e.signal != "":
		return "exit_signal", e.signal
	}
	return "exit_status", "missing"
}

// detail is the detail of the channel's end event.
func (e channelEnd) detail() map[string]any {
	d := map[string]any{"bytes_in": e.in, "bytes_out": e.out, "bytes_err": e.errBytes}
	k, v := e.exit()
	d[k] = v
	if e.command != "" {
		d["command"] = e.command
	}
	return d
}
