package sshsession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Causes of a session's end, as reported by context.Cause(s.Context()).
// A cancelled parent context reports its own cause instead.
var (
	// ErrChannelClosed: the client closed the channel or the connection ended.
	ErrChannelClosed = errors.New("sshsession: channel closed")
	// ErrProgramExited: the Handler's Serve returned and the library closed
	// the channel.
	ErrProgramExited = errors.New("sshsession: program exited")
	// ErrTooManyRequests: the client queued more than Limits.MaxPending
	// requests while the Handler was busy, and the channel was closed.
	ErrTooManyRequests = errors.New("sshsession: too many pending requests")
)

// ErrClosedWrite is returned by writes to stdout after CloseWrite, to
// stderr after Stderr().Close(), and to either once the session is closing.
var ErrClosedWrite = errors.New("sshsession: write after close")

// Session is the server side of one accepted "session" channel. It is
// created by Serve and handed to the Handler.
//
// Read, Write and Stderr().Write go straight to the x/crypto channel: Write
// blocks while the client's window is full, so the library never holds
// more output than the window allows. Stdout and stderr may be written from
// different goroutines, but each of them from one goroutine at a time.
type Session struct {
	ch     ssh.Channel
	stderr io.Writer // ch.Stderr(), fetched once
	conn   *ssh.ServerConn
	parent context.Context // the context given to Serve
	ctx    context.Context
	cancel context.CancelCauseFunc // only through end

	// out guards the output state below. It is never held while writing
	// to the channel, only around the bookkeeping of each write.
	out        sync.Mutex
	stdoutDone bool
	stderrDone bool
	finishing  bool          // Serve returned; finish owns EOF from now on
	eofSent    bool          // EOF sent, or deliberately never to be sent
	inflight   int           // writes inside the x/crypto channel
	drained    chan struct{} // closed when inflight drops to zero while finishing

	// mu guards the request state below.
	mu      sync.Mutex
	pty     *PtyRequest
	env     []EnvRequest
	program Request
	window  WindowChange
	// exitType and exitPayload record Exit or ExitWithSignal.
	exitType    string
	exitPayload []byte
}

func newSession(ctx context.Context, conn *ssh.ServerConn, ch ssh.Channel) *Session {
	s := &Session{ch: ch, stderr: ch.Stderr(), conn: conn, parent: ctx}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	return s
}

// end cancels the session's context with cause, unless the parent context
// is done: its cause wins then. The parent's cancellation does not reach
// s.ctx atomically: a cancelCtx closes its Done channel before it cancels
// its children (and a parent of another kind is only watched by a
// goroutine), so whatever reacts to the parent's Done in between (ServeConn
// closing the connection, which ends the channel, or a Handler's Serve
// returning) could otherwise cancel s.ctx first with ErrChannelClosed or
// ErrProgramExited. The parent's Err is set before its Done is closed, so
// anything caused by the parent's cancellation sees it here.
func (s *Session) end(cause error) {
	if s.parent.Err() != nil {
		cause = context.Cause(s.parent)
	}
	s.cancel(cause)
}

// Context is cancelled when the channel closes; context.Cause tells why
// (ErrChannelClosed, ErrProgramExited, ErrTooManyRequests, or the cause of
// the context given to Serve).
func (s *Session) Context() context.Context { return s.ctx }

// Read reads the client's stdin. It returns io.EOF after the client's EOF.
func (s *Session) Read(p []byte) (int, error) { return s.ch.Read(p) }

// WriteTo writes the client's stdin to w until the client's EOF; it
// implements io.WriterTo. When the channel implements io.WriterTo itself,
// as Sluice's x/crypto fork does, w gets each packet's data without an
// intermediate buffer.
func (s *Session) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := s.ch.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{s.ch})
}

// Write writes to the client's stdout.
func (s *Session) Write(p []byte) (int, error) {
	return s.write(s.ch, &s.stdoutDone, p)
}

// CloseWrite says stdout is finished. The channel's EOF is sent once
// stderr is finished too (Stderr().Close() or Serve returning), so stderr
// may still be written after CloseWrite.
func (s *Session) CloseWrite() error { return s.closeStream(&s.stdoutDone) }

// Stderr returns the writer for the client's stderr (extended data type 1,
// RFC 4254 §5.2). Closing it says stderr is finished.
func (s *Session) Stderr() io.WriteCloser { return stderrWriter{s} }

type stderrWriter struct{ s *Session }

func (w stderrWriter) Write(p []byte) (int, error) {
	return w.s.write(w.s.stderr, &w.s.stderrDone, p)
}

func (w stderrWriter) Close() error { return w.s.closeStream(&w.s.stderrDone) }

func (s *Session) write(w io.Writer, done *bool, p []byte) (int, error) {
	s.out.Lock()
	if *done {
		s.out.Unlock()
		return 0, ErrClosedWrite
	}
	s.inflight++
	s.out.Unlock()

	n, err := w.Write(p)

	s.out.Lock()
	s.inflight--
	if s.inflight == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
	eof := s.takeEOFLocked()
	s.out.Unlock()
	if eof {
		s.ch.CloseWrite() // an error means the channel is gone; nothing to send
	}
	return n, err
}

func (s *Session) closeStream(done *bool) error {
	s.out.Lock()
	*done = true
	eof := s.takeEOFLocked()
	s.out.Unlock()
	if eof {
		if err := s.ch.CloseWrite(); err != nil {
			return fmt.Errorf("sshsession: send eof: %w", err)
		}
	}
	return nil
}

// takeEOFLocked reports whether the caller must send EOF now: both streams
// are finished and no write is inside the x/crypto channel, whose
// CloseWrite must not run concurrently with a write. s.out must be held.
func (s *Session) takeEOFLocked() bool {
	if s.eofSent || s.finishing || !s.stdoutDone || !s.stderrDone || s.inflight > 0 {
		return false
	}
	s.eofSent = true
	return true
}

// Pty returns the accepted pty-req, if any.
func (s *Session) Pty() (PtyRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pty == nil {
		return PtyRequest{}, false
	}
	return *s.pty, true
}

// Environ returns the accepted env requests in arrival order.
func (s *Session) Environ() []EnvRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]EnvRequest(nil), s.env...)
}

// Program returns the accepted *ShellRequest, *ExecRequest or
// *SubsystemRequest, or nil before one was accepted.
func (s *Session) Program() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.program
}

// Window returns the current terminal size: the pty-req's, updated by each
// accepted window-change.
func (s *Session) Window() WindowChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.window
}

// Exit records the exit status that is sent ("exit-status", RFC 4254
// §6.10) after Serve returns, before the channel closes. The last call of
// Exit or ExitWithSignal wins.
func (s *Session) Exit(status uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exitType, s.exitPayload = typeExitStatus, MarshalExitStatus(status)
}

// ExitWithSignal records that the program was killed by a signal
// ("exit-signal", RFC 4254 §6.10); it is sent like Exit's status.
func (s *Session) ExitWithSignal(sig ExitSignal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exitType, s.exitPayload = typeExitSignal, sig.Marshal()
}

// RemoteAddr returns the client's address, or nil without a connection.
func (s *Session) RemoteAddr() net.Addr {
	if s.conn == nil {
		return nil
	}
	return s.conn.RemoteAddr()
}

// LocalAddr returns the server's address, or nil without a connection.
func (s *Session) LocalAddr() net.Addr {
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// User returns the authenticated user name, or "" without a connection.
func (s *Session) User() string {
	if s.conn == nil {
		return ""
	}
	return s.conn.User()
}

// Permissions returns what authentication granted, or nil without a
// connection.
func (s *Session) Permissions() *ssh.Permissions {
	if s.conn == nil {
		return nil
	}
	return s.conn.Permissions
}

// Channel returns the underlying x/crypto channel, for proxies that must
// reach it (for example to send requests of their own).
//
// It is dangerous: writing or sending EOF through it bypasses the
// library's bookkeeping, so EOF may be sent twice or while a write is in
// flight (a data race inside x/crypto), and Close through it cuts output
// short. Prefer the Session's methods; never call CloseWrite on it.
func (s *Session) Channel() ssh.Channel { return s.ch }

// finish ends the channel after the Handler's Serve returned: it refuses
// new writes, waits (at most timeout) for writes in flight, sends the
// recorded exit-status or exit-signal, then EOF (unless the Handler ended
// both streams before), then closes. That is sshd's order (serverloop.c
// reaps the child, which sends exit-status, before it reads the end of
// the child's output): clients such as PuTTY's plink, dropbear's dbclient
// and an OpenSSH ControlMaster close the channel on EOF and would lose an
// exit status sent after it.
func (s *Session) finish(timeout time.Duration) {
	s.out.Lock()
	s.stdoutDone, s.stderrDone, s.finishing = true, true, true
	var drained chan struct{}
	if s.inflight > 0 {
		drained = make(chan struct{})
		s.drained = drained
	}
	s.out.Unlock()

	sendEOF := true
	if drained != nil {
		t := time.NewTimer(timeout)
		select {
		case <-drained:
		case <-t.C:
			// A write is still blocked on the client's window. x/crypto's
			// CloseWrite must not race with it, and Close ends it anyway.
			sendEOF = false
		}
		t.Stop()
	}
	s.out.Lock()
	if s.eofSent {
		sendEOF = false
	}
	s.eofSent = true
	s.out.Unlock()

	// Errors below mean the channel is already closed: nothing to tell.
	s.mu.Lock()
	exitType, exitPayload := s.exitType, s.exitPayload
	s.mu.Unlock()
	if exitType != "" {
		s.ch.SendRequest(exitType, false, exitPayload)
	}
	if sendEOF {
		s.ch.CloseWrite()
	}
	s.ch.Close()
	s.end(ErrProgramExited)
}
