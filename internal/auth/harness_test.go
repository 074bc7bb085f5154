package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// result is what the server side of one connection saw.
type result struct {
	perms *ssh.Permissions
	err   error
}

// server is an x/crypto/ssh server on loopback using an Authenticator. It
// answers exec requests with exit status 0 so OpenSSH's ssh can log in.
type server struct {
	addr    string
	cfg     *ssh.ServerConfig
	results chan result
}

func startServer(t *testing.T, a *Authenticator, refused func(Refusal)) *server {
	t.Helper()
	return startServerLogin(t, a, Login{Refused: refused})
}

// startServerLogin is startServer with every field of Login.
func startServerLogin(t *testing.T, a *Authenticator, login Login) *server {
	t.Helper()
	cfg := &ssh.ServerConfig{}
	a.Callbacks(cfg, login)
	cfg.AddHostKey(newSigner(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: l.Addr().String(), cfg: cfg, results: make(chan result, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.handle(c) })
		}
	})
	return s
}

func (s *server) handle(c net.Conn) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		s.results <- result{err: err}
		return
	}
	s.results <- result{perms: conn.Permissions}
	go ssh.DiscardRequests(reqs) // ends when conn closes
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		for r := range creqs {
			if r.Type == "exec" || r.Type == "shell" {
				r.Reply(true, nil)
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
				ch.Close()
				break
			}
			r.Reply(false, nil)
		}
	}
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// login dials s as user with the given auth methods and returns what the
// server saw. A client-side failure is returned in result.err when the
// server saw nothing else.
func (s *server) login(t *testing.T, user string, methods ...ssh.AuthMethod) result {
	t.Helper()
	c, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{
		User:            user,
		Auth:            methods,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the client leg is under test, not host keys
		Timeout:         10 * time.Second,
	})
	if err == nil {
		c.Close()
	}
	return s.next(t)
}

func (s *server) next(t *testing.T) result {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no connection")
		return result{}
	}
}

// identity returns the identity of a successful login or fails the test.
func (r result) identity(t *testing.T) Identity {
	t.Helper()
	if r.err != nil {
		t.Fatalf("login refused: %v", r.err)
	}
	id, err := IdentityOf(r.perms)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
