package sshsession

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testHandler adapts functions to Handler; nil functions accept every
// request and return at once.
type testHandler struct {
	handle func(s *Session, r Request) error
	serve  func(s *Session)
}

func (h *testHandler) HandleRequest(s *Session, r Request) error {
	if h.handle == nil {
		return nil
	}
	return h.handle(s, r)
}

func (h *testHandler) Serve(s *Session) {
	if h.serve != nil {
		h.serve(s)
	}
}

// served is what one ServeConn run reports.
type served struct {
	client *ssh.Client
	done   chan error // ServeConn's result
}

// startServer serves one loopback SSH connection with ServeConn and dials
// it with an x/crypto client as user "alice". Cleanup closes the client and
// waits for ServeConn.
func startServer(t testing.TB, ctx context.Context, cfg *Config, h Handler) *served {
	t.Helper()
	return startServerRaw(t, ctx, func(ctx context.Context, conn *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) error {
		return ServeConn(ctx, conn, chans, reqs, func(*ssh.ServerConn) Handler { return h }, cfg)
	})
}

// serveFunc serves an accepted server connection until it ends.
type serveFunc func(ctx context.Context, conn *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) error

// startServerRaw serves one loopback SSH connection with serve.
func startServerRaw(t testing.TB, ctx context.Context, serve serveFunc) *served {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sc := &ssh.ServerConfig{NoClientAuth: true}
	sc.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sv := &served{done: make(chan error, 1)}
	go func() {
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			sv.done <- err
			return
		}
		conn, chans, reqs, err := ssh.NewServerConn(nc, sc)
		if err != nil {
			nc.Close()
			sv.done <- err
			return
		}
		err = serve(ctx, conn, chans, reqs)
		conn.Close()
		sv.done <- err
	}()
	sv.client, err = ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{
		User:            "alice",
		HostKeyCallback: ssh.FixedHostKey(signer.PublicKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		ln.Close()
		<-sv.done
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sv.client.Close()
		select {
		case err := <-sv.done:
			if err != nil && ctx.Err() == nil {
				t.Errorf("ServeConn: got %v, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("ServeConn did not return after the client closed")
		}
	})
	return sv
}

// openSession opens a raw session channel and collects its requests.
func openSession(t *testing.T, c *ssh.Client) (ssh.Channel, <-chan *ssh.Request) {
	t.Helper()
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	return ch, reqs
}

func sendRequest(t *testing.T, ch ssh.Channel, r Request) bool {
	t.Helper()
	ok, err := ch.SendRequest(r.Type(), true, r.Marshal())
	if err != nil {
		t.Fatalf("send %s: %v", r.Type(), err)
	}
	return ok
}

// waitFor returns the next value of c, failing the test after 10s.
func waitFor[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
