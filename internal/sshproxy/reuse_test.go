package sshproxy

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// closingConn is an upstream connection whose Close ends it, as a real
// one's does; nothing else of ssh.Conn is used while it is pooled.
type closingConn struct {
	ssh.Conn
	once sync.Once
	done chan struct{}
}

func (c *closingConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func newTestUpstream() *upstream {
	c := &closingConn{done: make(chan struct{})}
	return &upstream{Conn: c, done: c.done, uses: 1}
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
	u.Close()
	if p.put(bob, u) {
		t.Fatal("a connection that had ended was kept")
	}
}
