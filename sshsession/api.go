package sshsession

import "time"

// Request is the typed view of one RFC 4254 §6 channel request. Its dynamic
// type is one of *PtyRequest, *EnvRequest, *ShellRequest, *ExecRequest,
// *SubsystemRequest, *WindowChange, *SignalRequest or *BreakRequest, or
// *OtherRequest for a request type the library has no typed view of.
type Request interface {
	// Type returns the request name on the wire, e.g. "pty-req".
	Type() string
	// Marshal returns the request-specific payload in wire format, so that a
	// proxy can forward a request it has inspected.
	Marshal() []byte
}

// Mode is one decoded terminal mode (RFC 4254 §8): an opcode and its value.
type Mode struct {
	Opcode uint8
	Value  uint32
}

// PtyRequest is "pty-req" (RFC 4254 §6.2).
type PtyRequest struct {
	Term                      string
	Columns, Rows             uint32 // characters
	WidthPixels, HeightPixels uint32
	Modes                     []Mode // in wire order, TTY_OP_END excluded
}

// EnvRequest is "env" (RFC 4254 §6.4).
type EnvRequest struct{ Name, Value string }

// ShellRequest is "shell" (RFC 4254 §6.5).
type ShellRequest struct{}

// ExecRequest is "exec" (RFC 4254 §6.5).
type ExecRequest struct{ Command string }

// SubsystemRequest is "subsystem" (RFC 4254 §6.5).
type SubsystemRequest struct{ Name string }

// WindowChange is "window-change" (RFC 4254 §6.7).
type WindowChange struct {
	Columns, Rows             uint32
	WidthPixels, HeightPixels uint32
}

// SignalRequest is "signal" (RFC 4254 §6.9); Name has no "SIG" prefix.
type SignalRequest struct{ Name string }

// BreakRequest is "break" (RFC 4335).
type BreakRequest struct{ Millis uint32 }

// OtherRequest is a request of a type ParseRequest does not know, such as
// "x11-req" (RFC 4254 §6.3.1) or "auth-agent-req@openssh.com". The library
// checks nothing about it and hands it to the Handler as it came; a Handler
// that does not know the type must refuse it, which is the safe default.
type OtherRequest struct {
	Name    string
	Payload []byte
}

// Type returns the request name.
func (r *OtherRequest) Type() string { return r.Name }

// Marshal returns the payload as received.
func (r *OtherRequest) Marshal() []byte { return r.Payload }

// ExitSignal is what "exit-signal" reports (RFC 4254 §6.10).
type ExitSignal struct {
	Signal     string // without "SIG", e.g. "TERM"
	CoreDumped bool
	Message    string
	Language   string
}

// Limits bound what a request payload may hold. Zero fields take the
// defaults documented on DefaultLimits.
type Limits struct {
	MaxTermLen    int // terminal name bytes
	MaxModes      int // terminal modes in one pty-req
	MaxEnvName    int
	MaxEnvValue   int
	MaxCommandLen int // exec command bytes
	MaxSubsystem  int // subsystem name bytes
	MaxPending    int // requests queued while the handler is busy; more ends the channel
}

// Handler is the avatar behind one session channel (Conch's ISession).
//
// HandleRequest is called for every request the library has parsed and that
// passed the library's own checks, one at a time and in arrival order.
// Returning nil accepts the request (answered true when the client wants a
// reply); an error refuses it (answered false) and leaves the channel usable,
// except for a shell, exec or subsystem request sent without want-reply
// while no program runs: the channel is then closed, since the client
// would otherwise wait for a program that never starts.
// When a *ShellRequest, *ExecRequest or *SubsystemRequest is accepted the
// program has started: Serve is called in a new goroutine. Requests that
// arrive while Serve runs (window-change, signal, break) still go to
// HandleRequest, concurrently with Serve.
//
// Serve runs the program. Returning means done: the library waits for
// output written so far to be sent (bounded by Config.CloseTimeout), sends
// exit-status or exit-signal if Serve set one, then EOF, then closes, as
// sshd does. A Serve that ends stdout and stderr itself (CloseWrite,
// Stderr().Close()) sends EOF then, before the exit status.
type Handler interface {
	HandleRequest(s *Session, r Request) error
	Serve(s *Session)
}

// Config configures how a session channel is served. The zero value is
// usable: it refuses every env variable and uses the default limits.
type Config struct {
	// AcceptEnv decides each "env" request before the handler sees it (Conch's
	// ISessionSetEnv). A refused variable is answered false and never reaches
	// the Handler. Nil refuses all.
	AcceptEnv func(name, value string) bool
	Limits    Limits
	// CloseTimeout bounds how long closing waits for buffered output to be
	// sent to a peer that does not read. Zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
}
