package sshproxy

import (
	"context"

	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/sshsession"
)

// connKey holds, on each master the proxy serves, its connection. The key
// is made once and never changes.
var connKey = session.NewKey[*conn]("sshproxy")

// ClientVersion and ServerVersion hold, on each master the proxy serves,
// the SSH identification strings (RFC 4253 §4.2) of the client and of the
// upstream server, for stacked proxies that must adapt to what a peer is
// known to do (the SFTP proxy's SYMLINK argument order). The keys are made
// once and never change.
var (
	ClientVersion = session.NewKey[string]("client_version")
	ServerVersion = session.NewKey[string]("server_version")
)

// Farewell writes text to the stderr of every session channel of m's
// connection whose program runs, so that the client learns why it is about
// to be cut off; the caller then ends the session. It returns once every
// line is written or ctx is done, so a client that does not read cannot
// hold the caller up. For a master the proxy does not serve it does
// nothing.
//
// x/crypto/ssh has no way to send a disconnect message with a reason, so
// the stderr line is all the client is told.
func Farewell(ctx context.Context, m *session.Master, text string) {
	if c, ok := session.Lookup(m, connKey); ok {
		c.farewell(ctx, text)
	}
}

// farewell is Farewell for c. The writes belong to the connection (c.wg):
// one that a client's full window holds up ends when the connection
// closes.
func (c *conn) farewell(ctx context.Context, text string) {
	c.mu.Lock()
	written := make(chan struct{}, len(c.programs))
	for s := range c.programs {
		// s's program runs, so the channel goroutine c.wg owns has not
		// returned: the count is above zero and may grow.
		c.wg.Go(func() {
			_, _ = s.Stderr().Write([]byte(text))
			written <- struct{}{}
		})
	}
	n := len(c.programs)
	c.mu.Unlock()
	for range n {
		select {
		case <-written:
		case <-ctx.Done():
			return
		}
	}
}

// running registers s, whose program has started, for farewell until the
// returned func is called.
func (c *conn) running(s *sshsession.Session) (done func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.programs == nil {
		c.programs = make(map[*sshsession.Session]struct{})
	}
	c.programs[s] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.programs, s)
	}
}
