package hostcert

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/hostkey"
)

// FileName is the host CA's private key file in the state directory; its
// public key is FileName + ".pub" beside it.
const FileName = "host_ca_ed25519"

// Skew is how long before its signing a certificate is already valid: the
// clock difference tolerated between the gateway and its clients.
const Skew = 5 * time.Minute

// Lifetime is how long after its signing a certificate stays valid. A
// certificate is signed for each connection and checked only while the
// client connects, so it need not outlive the handshake by much.
const Lifetime = time.Hour

// Authority signs host certificates with the host CA.
type Authority struct {
	ca   ssh.Signer
	rand io.Reader
}

// New returns an Authority signing with ca.
func New(ca ssh.Signer) *Authority { return &Authority{ca: ca, rand: rand.Reader} }

// Load returns the Authority whose ed25519 key is FileName in stateDir,
// generating it there (mode 0600, with its .pub) when missing. An existing
// key readable or writable by group or others is refused.
func Load(stateDir string) (*Authority, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("hostcert: %w", err)
	}
	ca, err := hostkey.LoadOrGenerateFile(filepath.Join(stateDir, FileName), "ed25519")
	if err != nil {
		return nil, fmt.Errorf("hostcert: %w", err)
	}
	return New(ca), nil
}

// ReadPublicKey returns the public key of the host CA in stateDir, read
// from FileName + ".pub". It never creates the key; a missing one is an
// error wrapping fs.ErrNotExist.
func ReadPublicKey(stateDir string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, FileName+".pub"))
	if err != nil {
		return nil, fmt.Errorf("hostcert: %w", err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, fmt.Errorf("hostcert: %s.pub: %w", FileName, err)
	}
	return k, nil
}

// PublicKey returns the CA's public key.
func (a *Authority) PublicKey() ssh.PublicKey { return a.ca.PublicKey() }

// Certify returns a signer presenting hostKey under a fresh host
// certificate for principals (the names and addresses clients reach the
// target by), valid from Skew before now to Lifetime after it, and the
// certificate. keyID names what it stands for in the clients' logs.
func (a *Authority) Certify(hostKey ssh.Signer, principals []string, keyID string, now time.Time) (ssh.Signer, *ssh.Certificate, error) {
	if len(principals) == 0 {
		return nil, nil, errors.New("hostcert: no principals")
	}
	var serial [8]byte
	if _, err := io.ReadFull(a.rand, serial[:]); err != nil {
		return nil, nil, fmt.Errorf("hostcert: %w", err)
	}
	cert := &ssh.Certificate{
		Key:             hostKey.PublicKey(),
		Serial:          binary.BigEndian.Uint64(serial[:]),
		CertType:        ssh.HostCert,
		KeyId:           keyID,
		ValidPrincipals: slices.Clone(principals),
		ValidAfter:      uint64(now.Add(-Skew).Unix()),
		ValidBefore:     uint64(now.Add(Lifetime).Unix()),
	}
	if err := cert.SignCert(a.rand, a.ca); err != nil {
		return nil, nil, fmt.Errorf("hostcert: sign: %w", err)
	}
	s, err := ssh.NewCertSigner(cert, hostKey)
	if err != nil {
		return nil, nil, fmt.Errorf("hostcert: %w", err)
	}
	return s, cert, nil
}

// Principals returns the principals of a host certificate for the
// inventory host name whose address is hostport: the name and the
// address's host, each lowercase. A client checks the name it typed (not
// its port) against them (ssh(1), sshconnect.c check_host_cert).
func Principals(name, hostport string) []string {
	ps := []string{strings.ToLower(name)}
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			h = a.Unmap().String()
		}
		if h = strings.ToLower(h); h != ps[0] {
			ps = append(ps, h)
		}
	}
	return ps
}

// Patterns returns the known_hosts host patterns matching the inventory
// hosts (lowercase name -> "host:port"): each name and address, as
// "[HOST]:PORT" when the port is not 22 (sshd(8) SSH_KNOWN_HOSTS FILE
// FORMAT), sorted and without repeats.
func Patterns(hosts map[string]string) []string {
	var ps []string
	for name, addr := range hosts {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		for _, h := range Principals(name, addr) {
			if port != "22" {
				h = "[" + h + "]:" + port
			}
			ps = append(ps, h)
		}
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// KnownHostsLine is the "@cert-authority PATTERNS KEY COMMENT" line that
// makes a client trust certificates of ca for hosts matching patterns
// ("*" when empty).
func KnownHostsLine(patterns []string, ca ssh.PublicKey, comment string) string {
	p := "*"
	if len(patterns) > 0 {
		p = strings.Join(patterns, ",")
	}
	key := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(ca)), "\n")
	line := "@cert-authority " + p + " " + key
	if comment != "" {
		line += " " + comment
	}
	return line
}
