package auth

import (
	"crypto/rand"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

// failures collects the refusals Callbacks reports.
type failures struct {
	mu   sync.Mutex
	list []Refusal
}

func (f *failures) record(r Refusal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, r)
}

func (f *failures) rules() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r []string
	for _, x := range f.list {
		r = append(r, x.Rule)
	}
	return r
}

func authorizedLine(opts string, k ssh.PublicKey) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if opts != "" {
		line = opts + " " + line
	}
	return line + "\n"
}

func TestPublicKeyOptions(t *testing.T) {
	key := newSigner(t)
	all := Restrictions{NoPty: true, NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}
	tests := []struct {
		name     string
		file     string
		want     Restrictions
		wantRule string // "" = accepted
	}{
		{name: "plain", file: authorizedLine("", key.PublicKey())},
		{name: "no-pty", file: authorizedLine("no-pty", key.PublicKey()), want: Restrictions{NoPty: true}},
		{name: "no-port-forwarding", file: authorizedLine("no-port-forwarding", key.PublicKey()), want: Restrictions{NoPortForwarding: true}},
		{name: "no-agent-forwarding", file: authorizedLine("no-agent-forwarding", key.PublicKey()), want: Restrictions{NoAgentForwarding: true}},
		{name: "no-X11-forwarding", file: authorizedLine("no-X11-forwarding", key.PublicKey()), want: Restrictions{NoX11Forwarding: true}},
		{name: "restrict", file: authorizedLine("restrict", key.PublicKey()), want: all},
		{name: "restrict,pty", file: authorizedLine("restrict,pty", key.PublicKey()),
			want: Restrictions{NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}},
		{name: "command", file: authorizedLine(`command="uptime"`, key.PublicKey()), want: Restrictions{ForcedCommand: "uptime", ForcedCommandRule: "users[alice].authorized_keys:1 command"}},
		{name: "permitopen", file: authorizedLine(`permitopen="db:5432",permitopen="web:80"`, key.PublicKey()),
			want: Restrictions{PermitOpen: []string{"db:5432", "web:80"}}},
		{name: "environment ignored", file: authorizedLine(`environment="X=1"`, key.PublicKey())},
		{name: "from loopback", file: authorizedLine(`from="127.0.0.0/8"`, key.PublicKey())},
		{name: "from wildcard", file: authorizedLine(`from="127.0.0.*"`, key.PublicKey())},
		{name: "from other network", file: authorizedLine(`from="10.0.0.0/8"`, key.PublicKey()),
			wantRule: "users[alice].authorized_keys:1 from="},
		{name: "from negated", file: authorizedLine(`from="*,!127.0.0.1"`, key.PublicKey()),
			wantRule: "users[alice].authorized_keys:1 from="},
		{name: "from fails then later line", file: "# comment\n" + authorizedLine(`from="10.0.0.0/8"`, key.PublicKey()) +
			authorizedLine(`no-pty`, key.PublicKey()), want: Restrictions{NoPty: true}},
		{name: "unknown option skips line", file: authorizedLine(`tunnel="0"`, key.PublicKey()),
			wantRule: "users[alice].authorized_keys"},
		{name: "unknown option line skipped, next used", file: authorizedLine(`no-pty,principals="x"`, key.PublicKey()) +
			authorizedLine("no-port-forwarding", key.PublicKey()), want: Restrictions{NoPortForwarding: true}},
		{name: "other key", file: authorizedLine("", newSigner(t).PublicKey()), wantRule: "users[alice].authorized_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f failures
			a, err := New(Params{
				Users: []User{{Name: "alice", AuthorizedKeysFile: writeFile(t, t.TempDir(), "ak", tt.file), Groups: []string{"ops"}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			r := startServer(t, a, f.record).login(t, "alice", ssh.PublicKeys(key))
			if tt.wantRule != "" {
				if r.err == nil {
					t.Fatalf("got login accepted, want refused by %s", tt.wantRule)
				}
				if got := f.rules(); len(got) == 0 || got[len(got)-1] != tt.wantRule {
					t.Fatalf("got rules %q, want last %q", got, tt.wantRule)
				}
				return
			}
			id := r.identity(t)
			want := Identity{User: "alice", Groups: []string{"ops"}, Method: MethodPublicKey,
				KeyFingerprint: ssh.FingerprintSHA256(key.PublicKey()), Restrictions: tt.want}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("got %+v, want %+v", id, want)
			}
		})
	}
}

// queryOnlySigner offers a key but cannot sign with it: the client sends the
// signature-less query (RFC 4252 §7) and then gives the key up.
type queryOnlySigner struct {
	pub    ssh.PublicKey
	signed chan struct{}
}

func (s *queryOnlySigner) PublicKey() ssh.PublicKey { return s.pub }

func (s *queryOnlySigner) Sign(io.Reader, []byte) (*ssh.Signature, error) {
	close(s.signed)
	return nil, errors.New("test: no private key")
}

// TestOfferKeyBSignWithKeyA is the CVE-2024-45337 scenario: the client
// offers key B (which the server accepts) without signing, then signs with
// key A. The identity must be A's, with A's restrictions.
func TestOfferKeyBSignWithKeyA(t *testing.T) {
	keyA, keyB := newSigner(t), newSigner(t)
	file := authorizedLine(`restrict,command="b-only"`, keyB.PublicKey()) + authorizedLine("no-pty", keyA.PublicKey())
	a, err := New(Params{Users: []User{{Name: "alice", AuthorizedKeysFile: writeFile(t, t.TempDir(), "ak", file)}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, a, nil)
	b := &queryOnlySigner{pub: keyB.PublicKey(), signed: make(chan struct{})}
	calls := 0
	c, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{
		User:            "alice",
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		AuthCallback: func(*ssh.ClientAuthContext) (ssh.AuthMethod, error) {
			calls++
			switch calls {
			case 1:
				return ssh.PublicKeys(b), nil
			case 2:
				return ssh.PublicKeys(keyA), nil
			}
			return nil, errors.New("test: out of methods")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-b.signed:
	default:
		t.Fatal("key B was never accepted by the query, so the scenario did not happen")
	}
	id := s.next(t).identity(t)
	if got, want := id.KeyFingerprint, ssh.FingerprintSHA256(keyA.PublicKey()); got != want {
		t.Errorf("got fingerprint %s, want key A %s", got, want)
	}
	if want := (Restrictions{NoPty: true}); !reflect.DeepEqual(id.Restrictions, want) {
		t.Errorf("got restrictions %+v, want key A's %+v", id.Restrictions, want)
	}
}

func TestAuthorizedKeysReloaded(t *testing.T) {
	k1, k2 := newSigner(t), newSigner(t)
	path := writeFile(t, t.TempDir(), "ak", authorizedLine("", k1.PublicKey()))
	a, err := New(Params{Users: []User{{Name: "alice", AuthorizedKeysFile: path}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, a, nil)
	s.login(t, "alice", ssh.PublicKeys(k1)).identity(t)
	if r := s.login(t, "alice", ssh.PublicKeys(k2)); r.err == nil {
		t.Fatal("got k2 accepted before it was added, want refused")
	}
	if err := os.WriteFile(path, []byte(authorizedLine("", k2.PublicKey())), 0o600); err != nil {
		t.Fatal(err)
	}
	// The size is unchanged; move the mtime so the change is seen even on
	// file systems with coarse timestamps.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if id := s.login(t, "alice", ssh.PublicKeys(k2)).identity(t); id.KeyFingerprint != ssh.FingerprintSHA256(k2.PublicKey()) {
		t.Errorf("got %s, want k2", id.KeyFingerprint)
	}
	if r := s.login(t, "alice", ssh.PublicKeys(k1)); r.err == nil {
		t.Error("got removed key k1 accepted, want refused")
	}
}

func TestPassword(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var f failures
	a, err := New(Params{
		Users: []User{{Name: "alice", PasswordHash: string(hash)}, {Name: "bob"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, a, f.record)
	id := s.login(t, "alice", ssh.Password("s3cret")).identity(t)
	if want := (Identity{User: "alice", Method: MethodPassword}); !reflect.DeepEqual(id, want) {
		t.Errorf("got %+v, want %+v", id, want)
	}
	tests := []struct{ user, pw, rule string }{
		{"alice", "wrong", "users[alice].password_hash"},
		{"bob", "s3cret", "users[bob].password_hash"},
		{"mallory", "s3cret", "users"},
	}
	for _, tt := range tests {
		before := len(f.rules())
		if r := s.login(t, tt.user, ssh.Password(tt.pw)); r.err == nil {
			t.Errorf("%s/%s: got accepted, want refused", tt.user, tt.pw)
		}
		if got := f.rules(); len(got) <= before || got[before] != tt.rule {
			t.Errorf("%s/%s: got rules %q, want %q", tt.user, tt.pw, got[before:], tt.rule)
		}
	}
}

func TestNewRejects(t *testing.T) {
	ca := newSigner(t)
	cert := &ssh.Certificate{Key: ca.PublicKey(), CertType: ssh.UserCert, ValidPrincipals: []string{"alice"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    Params
	}{
		{"empty name", Params{Users: []User{{}}}},
		{"duplicate", Params{Users: []User{{Name: "a"}, {Name: "a"}}}},
		{"bad hash", Params{Users: []User{{Name: "a", PasswordHash: "plain"}}}},
		{"cert as CA", Params{TrustedCAKeys: []ssh.PublicKey{cert}}},
	}
	for _, tt := range tests {
		if _, err := New(tt.p); err == nil {
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
}

func TestCallbacksMaxAuthTries(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{0, 6}, {3, 3}, {-1, -1}} {
		a, err := New(Params{MaxAuthTries: tt.in})
		if err != nil {
			t.Fatal(err)
		}
		var cfg ssh.ServerConfig
		a.Callbacks(&cfg, Login{})
		if cfg.MaxAuthTries != tt.want {
			t.Errorf("MaxAuthTries %d: got %d, want %d", tt.in, cfg.MaxAuthTries, tt.want)
		}
		if cfg.PasswordCallback != nil {
			t.Error("got a PasswordCallback without any password hash, want none")
		}
	}
}

func TestUserNameMapping(t *testing.T) {
	key := newSigner(t)
	var f failures
	a, err := New(Params{
		Users: []User{{Name: "alice", AuthorizedKeysFile: writeFile(t, t.TempDir(), "ak", authorizedLine("", key.PublicKey()))}},
		UserName: func(s string) string {
			u, _, ok := strings.Cut(s, "+")
			if !ok {
				return ""
			}
			return u
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, a, f.record)
	if id := s.login(t, "alice+db1:22", ssh.PublicKeys(key)).identity(t); id.User != "alice" {
		t.Errorf("got user %q, want alice", id.User)
	}
	if r := s.login(t, "alice", ssh.PublicKeys(key)); r.err == nil {
		t.Error("got login name the mapping refuses accepted, want refused")
	}
	if got := f.rules(); len(got) == 0 || got[0] != "users" {
		t.Errorf("got rules %q, want [users]", got)
	}
}

func TestIdentityOfRejectsForeignPermissions(t *testing.T) {
	for _, p := range []*ssh.Permissions{nil, {}, {Extensions: map[string]string{"permit-pty": ""}}} {
		if _, err := IdentityOf(p); err == nil {
			t.Errorf("IdentityOf(%v): got nil error, want one", p)
		}
	}
}

// TestAs checks that As authenticates any SSH user name as the one user,
// by her credential only: bob's key does not pass as alice, whatever the
// name.
func TestAs(t *testing.T) {
	alice, bob := newSigner(t), newSigner(t)
	dir := t.TempDir()
	a, err := New(Params{Users: []User{
		{Name: "alice", AuthorizedKeysFile: writeFile(t, dir, "a", authorizedLine("", alice.PublicKey()))},
		{Name: "bob", AuthorizedKeysFile: writeFile(t, dir, "b", authorizedLine("", bob.PublicKey()))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	as := a.As("alice")
	for _, name := range []string{"root", "alice", "bob"} {
		var f failures
		if id := startServer(t, as, f.record).login(t, name, ssh.PublicKeys(alice)).identity(t); id.User != "alice" {
			t.Errorf("alice's key as %q: got user %q, want alice", name, id.User)
		}
		if r := startServer(t, as, f.record).login(t, name, ssh.PublicKeys(bob)); r.err == nil {
			t.Errorf("bob's key as %q: accepted, want refused", name)
		}
	}
	var f failures
	if id := startServer(t, a, f.record).login(t, "bob", ssh.PublicKeys(bob)).identity(t); id.User != "bob" {
		t.Errorf("the original authenticator: got user %q, want bob", id.User)
	}
}

// TestByKey: where the SSH user name is the login, the key alone names
// the user; a key two users share names nobody, and passwords are off.
func TestByKey(t *testing.T) {
	alice, bob, shared := newSigner(t), newSigner(t), newSigner(t)
	dir := t.TempDir()
	users := []User{
		{Name: "alice", AuthorizedKeysFile: writeFile(t, dir, "a", authorizedLine("", alice.PublicKey())+authorizedLine("", shared.PublicKey())), PasswordHash: hashOf(t, "pw")},
		{Name: "bob", AuthorizedKeysFile: writeFile(t, dir, "b", authorizedLine("", bob.PublicKey())+authorizedLine("", shared.PublicKey()))},
	}
	a, err := New(Params{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	k := a.ByKey()
	for _, c := range []struct {
		key  ssh.Signer
		want string
	}{{alice, "alice"}, {bob, "bob"}} {
		for _, login := range []string{"root", "bob", "alice"} {
			var f failures
			if id := startServer(t, k, f.record).login(t, login, ssh.PublicKeys(c.key)).identity(t); id.User != c.want {
				t.Errorf("%s's key as %q: got %q", c.want, login, id.User)
			}
		}
	}
	var f failures
	if r := startServer(t, k, f.record).login(t, "root", ssh.PublicKeys(shared)); r.err == nil {
		t.Error("a key of two users: accepted, want refused")
	}
	if r := startServer(t, k, f.record).login(t, "alice", ssh.Password("pw")); r.err == nil {
		t.Error("a password: accepted, want refused")
	}
	got, err := SharedKeys(users)
	want := "key " + ssh.FingerprintSHA256(shared.PublicKey()) + " is listed for users alice, bob"
	if err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("SharedKeys: got %q, %v, want [%q]", got, err, want)
	}
}

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}
