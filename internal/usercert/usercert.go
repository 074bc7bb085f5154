package usercert

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/hostkey"
)

// Skew is how long before the login a certificate is already valid, and
// how long past Request.Lifetime it stays valid: the clock difference
// tolerated between the gateway and its targets.
const Skew = time.Minute

// DefaultLifetime is Request.Lifetime when it is zero.
const DefaultLifetime = time.Minute

// Extensions granted by a certificate (PROTOCOL.certkeys "Extensions").
// permit-user-rc is never granted: a ~/.ssh/rc the user controls would
// run on every login, outside the policy.
const (
	ExtPTY             = "permit-pty"
	ExtPortForwarding  = "permit-port-forwarding"
	ExtAgentForwarding = "permit-agent-forwarding"
	ExtX11Forwarding   = "permit-X11-forwarding"
	// OptSourceAddress is the critical option restricting the addresses a
	// certificate is accepted from.
	OptSourceAddress = "source-address"
)

// Authority signs user certificates with the user CA.
type Authority struct {
	ca       ssh.Signer
	previous ssh.PublicKey // or nil
	rand     io.Reader
}

// New returns an Authority signing with ca; previous, when not nil, is the
// CA it replaced, listed by Keys but never used.
func New(ca ssh.Signer, previous ssh.PublicKey) *Authority {
	return &Authority{ca: ca, previous: previous, rand: rand.Reader}
}

// Load returns the Authority whose private key is the OpenSSH key at path,
// generating one of typ ("ed25519", "ecdsa" or "rsa") there when the file
// does not exist (mode 0600, path.pub beside it, its folder made with mode
// 0700 if missing). An existing key readable
// or writable by group or others is refused. previous, when not empty,
// names the CA being rotated out: its private key or its public key.
func Load(path, typ, previous string) (*Authority, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("usercert: %w", err)
	}
	ca, err := hostkey.LoadOrGenerateFile(path, typ)
	if err != nil {
		return nil, fmt.Errorf("usercert: %w", err)
	}
	var prev ssh.PublicKey
	if previous != "" {
		if prev, err = ReadPublicKey(previous); err != nil {
			return nil, err
		}
	}
	return New(ca, prev), nil
}

// ReadPublicKey returns the public key of the CA whose key is at path: an
// OpenSSH private key (unencrypted) or a public key in authorized_keys
// format. It never creates the file.
func ReadPublicKey(path string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("usercert: %w", err)
	}
	if s, err := ssh.ParsePrivateKey(data); err == nil {
		return s.PublicKey(), nil
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, fmt.Errorf("usercert: %s: neither an OpenSSH private key without passphrase nor a public key", path)
	}
	if _, ok := k.(*ssh.Certificate); ok {
		return nil, fmt.Errorf("usercert: %s: a certificate, not a CA key", path)
	}
	return k, nil
}

// Keys returns the public keys targets must trust: the signing CA first,
// then the previous one while a rotation lasts.
func (a *Authority) Keys() []ssh.PublicKey {
	keys := []ssh.PublicKey{a.ca.PublicKey()}
	if a.previous != nil {
		keys = append(keys, a.previous)
	}
	return keys
}

// Grants are what a certificate lets its holder ask the target for, beyond
// running a shell or a command.
type Grants struct {
	PTY             bool
	PortForwarding  bool // local and remote (sshd has one extension for both)
	AgentForwarding bool
	X11Forwarding   bool
}

// Extensions returns the certificate extensions of g.
func (g Grants) Extensions() map[string]string {
	ext := map[string]string{}
	for _, e := range []struct {
		on   bool
		name string
	}{{g.PTY, ExtPTY}, {g.PortForwarding, ExtPortForwarding}, {g.AgentForwarding, ExtAgentForwarding}, {g.X11Forwarding, ExtX11Forwarding}} {
		if e.on {
			ext[e.name] = ""
		}
	}
	return ext
}

// String lists the granted extensions, comma-separated in a fixed order,
// or "none".
func (g Grants) String() string {
	var names []string
	for _, n := range []string{ExtPTY, ExtPortForwarding, ExtAgentForwarding, ExtX11Forwarding} {
		if _, ok := g.Extensions()[n]; ok {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// KeyID is the certificate key id for a login of the gateway user user in
// session sessionID, e.g. "alice gw1/ssh-in:42": sshd logs it with every
// login ("ID alice gw1/ssh-in:42 (serial N)").
func KeyID(user, sessionID string) string { return user + " " + sessionID }

// Request describes one upstream login.
type Request struct {
	Login  string     // the login name on the target: the only principal
	KeyID  string     // see KeyID
	Source netip.Addr // the gateway's address on the dialled connection
	Grants Grants
	// Now is the time of the login; the certificate is valid from Skew
	// before it to Lifetime plus Skew after it.
	Now time.Time
	// Lifetime bounds how long the login may take (the upstream
	// handshake's timeout); zero means DefaultLifetime.
	Lifetime time.Duration
}

// Credential is an issued certificate with its private key, held in memory
// only.
type Credential struct {
	Cert *ssh.Certificate
	// Signer authenticates with Cert; hand it to ssh.PublicKeys.
	Signer ssh.Signer
	used   *atomic.Bool
}

// Used reports whether Signer has signed: the target accepted the
// certificate's key and asked for the signature of the login.
func (c Credential) Used() bool { return c.used.Load() }

// Issue makes a key pair and signs a certificate for r.
func (a *Authority) Issue(r Request) (Credential, error) {
	if r.Login == "" {
		return Credential{}, errors.New("usercert: empty login")
	}
	if !r.Source.IsValid() {
		return Credential{}, errors.New("usercert: no source address")
	}
	if r.Lifetime <= 0 {
		r.Lifetime = DefaultLifetime
	}
	pub, priv, err := ed25519.GenerateKey(a.rand)
	if err != nil {
		return Credential{}, fmt.Errorf("usercert: %w", err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		return Credential{}, fmt.Errorf("usercert: %w", err)
	}
	var serial [8]byte
	if _, err := io.ReadFull(a.rand, serial[:]); err != nil {
		return Credential{}, fmt.Errorf("usercert: %w", err)
	}
	src := r.Source.Unmap()
	cert := &ssh.Certificate{
		Key:             key,
		Serial:          binary.BigEndian.Uint64(serial[:]),
		CertType:        ssh.UserCert,
		KeyId:           r.KeyID,
		ValidPrincipals: []string{r.Login},
		ValidAfter:      uint64(r.Now.Add(-Skew).Unix()),
		ValidBefore:     uint64(r.Now.Add(r.Lifetime + Skew).Unix()),
		Permissions: ssh.Permissions{
			CriticalOptions: map[string]string{OptSourceAddress: netip.PrefixFrom(src, src.BitLen()).String()},
			Extensions:      r.Grants.Extensions(),
		},
	}
	if err := cert.SignCert(a.rand, a.ca); err != nil {
		return Credential{}, fmt.Errorf("usercert: sign: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return Credential{}, fmt.Errorf("usercert: %w", err)
	}
	cs, err := ssh.NewCertSigner(cert, s)
	if err != nil {
		return Credential{}, fmt.Errorf("usercert: %w", err)
	}
	ms, ok := cs.(ssh.MultiAlgorithmSigner)
	if !ok {
		return Credential{}, errors.New("usercert: certificate signer without algorithms")
	}
	used := new(atomic.Bool)
	return Credential{Cert: cert, Signer: usedSigner{ms, used}, used: used}, nil
}

// usedSigner notes that it has signed.
type usedSigner struct {
	ssh.MultiAlgorithmSigner
	used *atomic.Bool
}

func (s usedSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s.used.Store(true)
	return s.MultiAlgorithmSigner.Sign(rand, data)
}

func (s usedSigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	s.used.Store(true)
	return s.MultiAlgorithmSigner.SignWithAlgorithm(rand, data, algorithm)
}
