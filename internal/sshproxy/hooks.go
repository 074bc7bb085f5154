package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/sshsession"
)

// Stream is one side of a session channel's data: read what the peer sends,
// write what it receives, and CloseWrite to send EOF. Both the client's
// *sshsession.Session and the target's ssh.Channel are Streams.
type Stream interface {
	io.ReadWriter
	CloseWrite() error
}

// StackedProxy inspects a subsystem's byte stream as a stacked session (the
// SFTP proxy is one). It relays client to upstream and back until both
// directions have ended, passing EOF along with CloseWrite, and returns the
// bytes it moved from and to the client. It decides and audits each
// operation itself, under st.
type StackedProxy func(ctx context.Context, st *session.Stacked, client, upstream Stream) (in, out int64, err error)

// Transfer is ExecTransfer's decision on an exec command that runs a
// file-transfer server.
type Transfer struct {
	Verdict policy.Verdict
	// Name and Proxy, when Proxy is set and the verdict accepts, relay the
	// channel's stdin and stdout through Proxy as a session stacked under
	// the channel's (".../session:N/" + Name), as a subsystem's stacked
	// proxy; stderr is relayed unchanged. Such a channel is not recorded:
	// the stacked proxy audits what moves.
	Name  string
	Proxy StackedProxy
	// Release, when set, lets go of what ExecTransfer readied for Proxy
	// (the scp proxy's channel to the target's sftp subsystem). It is
	// called once: after Proxy returns, or when the program does not
	// start (the request refused after ExecTransfer, or by the target).
	Release func()
}

// Recorder receives a copy of a session channel's streams. Input, Output
// and Stderr are called on the data path, each stream from its own
// goroutine; they may wait for the recorder (backpressure), which holds
// that stream's relay up.
type Recorder interface {
	Input(p []byte)
	Output(p []byte)
	Stderr(p []byte)
	Resize(columns, rows int)
	// Path is where the recording is kept, for the audit.
	Path() string
	// Failed is closed when the recording stops working mid-channel; Err
	// then says why.
	Failed() <-chan struct{}
	Err() error
	// Close ends the channel's recording and returns what the channel.end
	// audit event says of it (each stream's size and digest).
	Close() map[string]any
}

// Terminal is implemented by a Recorder of a pty channel that operators
// may watch and join (the console): the relay hands it the channel's two
// ends while it relays the streams.
type Terminal interface {
	// Attach is called as the relay starts: toClient writes to the
	// client's terminal (unrecorded), toTarget to the target's stdin
	// (both safe for use beside the relay's own copies). detach is called
	// when the streams end; the writers fail after it.
	Attach(toClient, toTarget io.Writer) (detach func())
}

// Recording records one master session's channels. Its methods are called
// from the channels' goroutines.
type Recording interface {
	// Channel is asked, when a session channel's program starts, whether
	// and how to record it; command is what runs ("" for a shell, the
	// forced command when one applies). It returns a nil Recorder when the
	// channel is not recorded, and an error when it cannot be recorded:
	// the channel is then refused, or goes on unrecorded (see
	// FailClosed).
	Channel(st *session.Stacked, s *sshsession.Session, command string) (Recorder, error)
	// FailClosed reports whether a channel that cannot be recorded, or
	// whose recording fails, is refused or ended (record.on_failure
	// fail_closed) rather than let go on unrecorded (best_effort).
	FailClosed() bool
	// Close is called once every channel has ended, before the master's
	// session.end event; it returns the files written, for that event.
	Close() []RecordedFile
}

// RecordedFile is one recording file of a master session, with the
// SHA-256 (hex) of its bytes as stored once closed.
type RecordedFile struct {
	Path   string
	SHA256 string
}

// RecordStart returns the recording of master session m, or nil when the
// service does not record. It must be cheap: files are made only when a
// channel is recorded.
type RecordStart func(m *session.Master) Recording

// teeWriter copies what is written to w into a recorder function.
type teeWriter struct {
	w   io.Writer
	rec func([]byte)
}

func (t teeWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if n > 0 {
		t.rec(p[:n])
	}
	return n, err
}

// teeReader copies what is read from r into a recorder function.
type teeReader struct {
	r   io.Reader
	rec func([]byte)
}

func (t teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.rec(p[:n])
	}
	return n, err
}

// WriteTo keeps the source's io.WriterTo (see copyStream): what reaches
// w is recorded.
func (t teeReader) WriteTo(w io.Writer) (int64, error) {
	return copyStream(teeWriter{w, t.rec}, t.r)
}

// ErrNoUpstream reports that a session has no upstream connection to open
// a channel on: its master is not one the proxy serves, or it is not
// connected to a target (a connection that only serves jumps).
var ErrNoUpstream = errors.New("sshproxy: no upstream connection")

// OpenSubsystem opens a session channel to the target of s's connection
// and starts subsystem name in it, for the gateway's own use beside a
// client's channel (the scp proxy asks the target's sftp subsystem where
// paths lead). The channel is not the client's: it is not counted
// against max_channels, audited, recorded or watched for idleness, and
// the target's requests and stderr on it are discarded. It counts
// against the target's own limit (OpenSSH's MaxSessions). The caller
// closes it; the connection's end closes it at the latest. The error
// says why it could not be opened: ErrNoUpstream, the target's refusal
// of the channel (an *ssh.OpenChannelError) or of the subsystem.
func OpenSubsystem(s session.Session, name string) (ssh.Channel, error) {
	c, ok := session.Lookup(s, connKey)
	if !ok || c.up == nil {
		return nil, ErrNoUpstream
	}
	ch, reqs, err := c.up.OpenChannel("session", nil)
	if err != nil {
		return nil, fmt.Errorf("sshproxy: opening a channel for the %s subsystem: %w", name, err)
	}
	// Both end when the channel closes.
	c.wg.Go(func() { ssh.DiscardRequests(reqs) })
	c.wg.Go(func() { _, _ = io.Copy(io.Discard, ch.Stderr()) })
	ok, err = ch.SendRequest("subsystem", true, (&sshsession.SubsystemRequest{Name: name}).Marshal())
	if err == nil && !ok {
		err = fmt.Errorf("sshproxy: the target refused the %s subsystem", name)
	}
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	return ch, nil
}
