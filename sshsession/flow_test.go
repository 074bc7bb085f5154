package sshsession

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// windowSize is x/crypto's initial channel window (64 packets of 32 KiB),
// which its client grants the server.
const windowSize = 2 << 20

// TestStalledChannelIsolated: one channel's client stops reading; its
// writer blocks after one window while another channel on the same
// connection carries far more than a window.
func TestStalledChannelIsolated(t *testing.T) {
	const chunk = 32 << 10
	var stalled atomic.Int64
	h := &testHandler{serve: func(s *Session) {
		buf := make([]byte, chunk)
		switch s.Program().(*ExecRequest).Command {
		case "stall":
			for s.Context().Err() == nil {
				n, err := s.Write(buf)
				stalled.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "flow":
			for range 4 * windowSize / chunk {
				if _, err := s.Write(buf); err != nil {
					return
				}
			}
		}
	}}
	sv := startServer(t, context.Background(), nil, h)
	stall, _ := openSession(t, sv.client)
	defer stall.Close()
	if !sendRequest(t, stall, &ExecRequest{Command: "stall"}) {
		t.Fatal("exec stall: got refused, want accepted")
	}
	flow, _ := openSession(t, sv.client)
	defer flow.Close()
	if !sendRequest(t, flow, &ExecRequest{Command: "flow"}) {
		t.Fatal("exec flow: got refused, want accepted")
	}
	n, err := io.Copy(io.Discard, flow)
	if err != nil || n != 4*windowSize {
		t.Fatalf("flowing channel: got %d bytes, %v; want %d", n, err, 4*windowSize)
	}
	time.Sleep(100 * time.Millisecond)
	if got := stalled.Load(); got == 0 || got > windowSize {
		t.Errorf("stalled channel: writes completed for %d bytes, want 1..%d (the window)", got, windowSize)
	}
}

// TestPendingOverflowClosesChannel: a client floods requests at a handler
// that is stuck; past MaxPending the channel is closed, and another channel
// on the same connection still works.
func TestPendingOverflowClosesChannel(t *testing.T) {
	const maxPending = 4
	block := make(chan struct{})
	blocked := make(chan struct{}, 1)
	var handled atomic.Int64
	causes := make(chan error, 2)
	h := &testHandler{handle: func(s *Session, r Request) error {
		if sig, ok := r.(*SignalRequest); ok && sig.Name == "BLOCK" {
			blocked <- struct{}{}
			select {
			case <-block:
			case <-s.Context().Done():
				causes <- context.Cause(s.Context())
			}
		}
		handled.Add(1)
		return nil
	}}
	sv := startServer(t, context.Background(), &Config{Limits: Limits{MaxPending: maxPending}}, h)
	flood, floodReqs := openSession(t, sv.client)
	defer flood.Close()
	if _, err := flood.SendRequest("signal", false, (&SignalRequest{Name: "BLOCK"}).Marshal()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, blocked, "the handler to block")
	for _, name := range []string{"A", "B", "C", "D", "E", "F", "G"} {
		if _, err := flood.SendRequest("signal", false, (&SignalRequest{Name: name}).Marshal()); err != nil {
			break // the server may already have closed the channel
		}
	}
	if _, ok := <-floodReqs; ok {
		t.Fatal("flooded channel: got a request, want the channel closed")
	}
	if err := waitFor(t, causes, "the blocked handler to be released"); !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("cause: got %v, want ErrTooManyRequests", err)
	}

	other, _ := openSession(t, sv.client)
	defer other.Close()
	if !sendRequest(t, other, &SignalRequest{Name: "INT"}) {
		t.Error("other channel after overflow: got refused, want accepted")
	}
	// The handler saw BLOCK and nothing queued behind it ran on the dead
	// channel; the other channel's signal is the second.
	if got := handled.Load(); got != 2 {
		t.Errorf("handled requests: got %d, want 2", got)
	}
	close(block)
}

// TestPendingWithinLimit: requests queued behind a busy handler, up to
// MaxPending, are all handled once it is free.
func TestPendingWithinLimit(t *testing.T) {
	const maxPending = 4
	block := make(chan struct{})
	var handled atomic.Int64
	h := &testHandler{handle: func(s *Session, r Request) error {
		if r.(*SignalRequest).Name == "BLOCK" {
			<-block
		}
		handled.Add(1)
		return nil
	}}
	sv := startServer(t, context.Background(), &Config{Limits: Limits{MaxPending: maxPending}}, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	for _, name := range []string{"BLOCK", "A", "B", "C"} {
		if _, err := ch.SendRequest("signal", false, (&SignalRequest{Name: name}).Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(block)
	if !sendRequest(t, ch, &SignalRequest{Name: "D"}) {
		t.Fatal("signal after the queue drained: got refused, want accepted")
	}
	if got := handled.Load(); got != 5 {
		t.Errorf("handled: got %d, want 5", got)
	}
}

// TestContextCancelClosesChannel: cancelling Serve's context closes the
// channel, ends the running program and makes Serve return the cause.
func TestContextCancelClosesChannel(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	testContextCancel(t, ctx, cancel)
}

// TestContextCancelCustomParent: the same with a parent context that Go's
// context package does not recognise, whose cancellation reaches the
// session's context only through a goroutine: ServeConn closing the
// connection must not win with ErrChannelClosed.
func TestContextCancelCustomParent(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	testContextCancel(t, newOpaqueCtx(ctx), cancel)
}

func testContextCancel(t *testing.T, ctx context.Context, cancel context.CancelCauseFunc) {
	errShutdown := errors.New("shutdown")
	defer cancel(nil)
	causes := make(chan error, 1)
	h := &testHandler{serve: func(s *Session) {
		<-s.Context().Done()
		causes <- context.Cause(s.Context())
	}}
	sv := startServer(t, ctx, nil, h)
	ch, reqs := openSession(t, sv.client)
	defer ch.Close()
	if !sendRequest(t, ch, &ShellRequest{}) {
		t.Fatal("shell: got refused, want accepted")
	}
	cancel(errShutdown)
	if err := waitFor(t, causes, "Serve to see the cancellation"); !errors.Is(err, errShutdown) {
		t.Errorf("session cause: got %v, want %v", err, errShutdown)
	}
	for range reqs {
	}
	if err := waitFor(t, sv.done, "ServeConn"); !errors.Is(err, errShutdown) {
		t.Errorf("ServeConn: got %v, want %v", err, errShutdown)
	}
	sv.done <- nil // for the cleanup
}

// opaqueCtx wraps a context behind a Done channel of its own, so that
// contexts derived from it are cancelled by a goroutine, not synchronously.
// Value still reaches the wrapped context, so context.Cause reports its
// cause.
type opaqueCtx struct {
	context.Context
	done chan struct{}
}

func newOpaqueCtx(ctx context.Context) *opaqueCtx {
	c := &opaqueCtx{Context: ctx, done: make(chan struct{})}
	context.AfterFunc(ctx, func() { close(c.done) })
	return c
}

func (c *opaqueCtx) Done() <-chan struct{} { return c.done }

// TestServeReturnsCause drives Serve directly, without a connection.
func TestServeReturnsCause(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	result := make(chan error, 1)
	var nilConn atomic.Bool
	h := &testHandler{handle: func(s *Session, r Request) error {
		nilConn.Store(s.RemoteAddr() == nil && s.LocalAddr() == nil && s.User() == "" && s.Permissions() == nil)
		return nil
	}}
	client := startServerRaw(t, context.Background(), func(_ context.Context, _ *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) error {
		var wg sync.WaitGroup
		wg.Go(func() { ssh.DiscardRequests(reqs) })
		for nc := range chans {
			wg.Go(func() { result <- Serve(ctx, nil, nc, h, nil) })
		}
		wg.Wait()
		return nil
	}).client
	ch, _ := openSession(t, client)
	defer ch.Close()
	if !sendRequest(t, ch, &SignalRequest{Name: "INT"}) {
		t.Fatal("signal: got refused, want accepted")
	}
	if !nilConn.Load() {
		t.Error("Session without a connection: got addresses, user or permissions, want none")
	}
	errGone := errors.New("gone")
	cancel(errGone)
	if err := waitFor(t, result, "Serve"); !errors.Is(err, errGone) {
		t.Errorf("Serve: got %v, want %v", err, errGone)
	}
}

// TestServeConnRefusals: other channel types are rejected as unknown, a
// nil Handler refuses the session, global requests are answered false.
func TestServeConnRefusals(t *testing.T) {
	sv := startServerRaw(t, context.Background(), func(ctx context.Context, conn *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) error {
		return ServeConn(ctx, conn, chans, reqs, func(*ssh.ServerConn) Handler { return nil }, nil)
	}).client
	_, _, err := sv.OpenChannel("direct-tcpip", nil)
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != ssh.UnknownChannelType {
		t.Errorf("direct-tcpip: got %v, want UnknownChannelType", err)
	}
	_, _, err = sv.OpenChannel("session", nil)
	if !errors.As(err, &oe) || oe.Reason != ssh.Prohibited {
		t.Errorf("session with a nil Handler: got %v, want Prohibited", err)
	}
	ok, _, err := sv.SendRequest("tcpip-forward", true, nil)
	if ok || err != nil {
		t.Errorf("global request: got %v, %v; want false, nil", ok, err)
	}
}
