package sshproxy

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// closingConn is an upstream connection whose Close ends it, as a real
// one's does: x/crypto closes its channel opens and global requests, and
// Wait returns. Nothing else of ssh.Conn is used while it is pooled.
type closingConn struct {
	ssh.Conn
	once  sync.Once
	chans chan ssh.NewChannel
	reqs  chan *ssh.Request
}

func (c *closingConn) Close() error {
	c.once.Do(func() {
		close(c.chans)
		close(c.reqs)
	})
	return nil
}

func (c *closingConn) Wait() error { return nil }

func newTestUpstream() *upstream {
	c := &closingConn{chans: make(chan ssh.NewChannel), reqs: make(chan *ssh.Request)}
	return newUpstream(c, c.chans, c.reqs, "db1:22", netip.AddrPort{}, netip.AddrPort{}, nil)
}

// TestPoolPerKeyLimit checks that the pool keeps at most its per-key
// limit of idle connections for one user and route, and that another key
// has its own allowance.
func TestPoolPerKeyLimit(t *testing.T) {
	p := newUpstreamPool(time.Minute, 3)
	defer p.close()
	alice := reuseKey{user: "alice", upstreamUser: "alice", route: "db1:22"}
	bob := reuseKey{user: "bob", upstreamUser: "bob", route: "db1:22"}
	for i := range 3 {
		if !p.put(alice, newTestUpstream()) {
			t.Fatalf("put %d for alice refused, want kept (limit 3)", i+1)
		}
	}
	if p.put(alice, newTestUpstream()) {
		t.Fatal("a fourth idle connection for alice was kept, want refused (limit 3)")
	}
	if !p.put(bob, newTestUpstream()) {
		t.Fatal("bob's first idle connection was refused because of alice's")
	}
	u := newTestUpstream()
	u.shut()
	if p.put(bob, u) {
		t.Fatal("a connection that had ended was kept")
	}
}

// TestPoolGrants checks that a connection logged in with a certificate is
// not handed to a connection of the same user and route whose certificate
// would grant other extensions (another key's restrictions, a reloaded
// policy).
func TestPoolGrants(t *testing.T) {
	p := newUpstreamPool(time.Minute, 3)
	defer p.close()
	pty := reuseKey{user: "alice", upstreamUser: "alice", route: "db1:22", grants: "permit-pty"}
	none := pty
	none.grants = "none"
	if !p.put(pty, newTestUpstream()) {
		t.Fatal("put refused")
	}
	if u := p.get(none); u != nil {
		t.Fatal("a connection whose certificate permits a pty was handed to one that may not have one")
	}
}
