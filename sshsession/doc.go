// Package sshsession serves the server side of the SSH "session" channel
// of RFC 4254 §6, with the "break" request of RFC 4335, on top of
// golang.org/x/crypto/ssh. It is the Go shape of Twisted Conch's
// SSHSession: typed requests go to a Handler (Conch's avatar), and the
// library owns the channel's rules: request order, EOF, exit status and
// closing.
//
// # Requests
//
// ParseRequest turns a channel request into one of *PtyRequest,
// *EnvRequest, *ShellRequest, *ExecRequest, *SubsystemRequest,
// *WindowChange, *SignalRequest or *BreakRequest, strictly and within
// Limits; every type's Marshal gives back the wire payload, so a proxy can
// forward what it has inspected. ParseExitStatus and ParseExitSignal do
// the same for what an upstream server reports.
//
// Before the Handler sees a request the library refuses, answering false
// and leaving the channel usable: malformed or oversized payloads, unknown
// types, a second shell/exec/subsystem, pty-req or env once the program
// has started, a second pty-req, env that Config.AcceptEnv does not accept,
// and window-change without a pty or with zero columns or rows. Requests
// are handled one at a time and answered in arrival order. While the
// Handler is busy up to Limits.MaxPending further requests wait; more close
// the channel, because x/crypto's request channel must be serviced at all
// times or the whole connection hangs.
//
// # The Handler contract
//
// HandleRequest accepts a request by returning nil. Accepting a shell,
// exec or subsystem starts the program: Serve runs in its own goroutine,
// reading stdin from the Session and writing stdout and stderr to it,
// while window-change, signal and break keep arriving at HandleRequest.
// Returning from Serve means done: output still being written is given
// Config.CloseTimeout to reach the client, then the library sends the
// exit status recorded by Exit or ExitWithSignal, EOF, and closes the
// channel: sshd's order, which clients that close the channel on EOF
// (PuTTY, dropbear, an OpenSSH ControlMaster) need to see the status.
// Serve should return when s.Context() is done, because the channel is
// then closed and Serve (the function) waits for it.
//
// EOF is sent once both stdout (Session.CloseWrite) and stderr
// (Session.Stderr().Close()) are finished, or when Serve returns, so stderr
// may follow the end of stdout. A proxy that relays an upstream program
// should leave both open until it knows the exit status, and let Serve's
// return send it ahead of EOF. Writes go straight to the x/crypto channel
// and block while the client's window is full: a client that stops reading
// stalls only its own channel, and the library holds no more than the
// window.
//
// A minimal exec server:
//
//	type echo struct{}
//
//	func (echo) HandleRequest(s *sshsession.Session, r sshsession.Request) error {
//		if _, ok := r.(*sshsession.ExecRequest); !ok {
//			return errors.New("only exec")
//		}
//		return nil
//	}
//
//	func (echo) Serve(s *sshsession.Session) {
//		fmt.Fprintln(s, s.Program().(*sshsession.ExecRequest).Command)
//		s.Exit(0)
//	}
//
//	// for each accepted connection:
//	err := sshsession.ServeConn(ctx, conn, chans, reqs,
//		func(*ssh.ServerConn) sshsession.Handler { return echo{} }, nil)
//
// The library never logs; what ended a session is the cause of its
// context (ErrChannelClosed, ErrProgramExited, ErrTooManyRequests, or the
// cause of the context given to Serve).
package sshsession
