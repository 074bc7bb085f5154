package hostkey

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// UnknownKeyError says the known_hosts file has no key for the host.
type UnknownKeyError struct {
	Host        string // as checked, "host:port"
	KeyType     string
	Fingerprint string // SHA256 of the key the server offered
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("hostkey: %s: unknown host key %s %s", e.Host, e.KeyType, e.Fingerprint)
}

// ChangedKeyError says the host is known by other keys than the one it
// offered: the key changed, or someone is in the middle.
type ChangedKeyError struct {
	Host        string
	KeyType     string
	Fingerprint string   // SHA256 of the key the server offered
	Known       []string // "FILE:LINE TYPE SHA256:..." for each key on record
}

func (e *ChangedKeyError) Error() string {
	return fmt.Sprintf("hostkey: %s: host key CHANGED: offered %s %s, known %s",
		e.Host, e.KeyType, e.Fingerprint, strings.Join(e.Known, "; "))
}

// RevokedKeyError says the key offered is marked @revoked.
type RevokedKeyError struct {
	Host        string
	KeyType     string
	Fingerprint string
	Where       string // "FILE:LINE" of the @revoked line
}

func (e *RevokedKeyError) Error() string {
	return fmt.Sprintf("hostkey: %s: host key %s %s is revoked at %s", e.Host, e.KeyType, e.Fingerprint, e.Where)
}

// Checker checks upstream host keys against a known_hosts file, which it
// reads again when its modification time or size changes. It is safe for
// concurrent use.
type Checker struct {
	path  string
	probe ssh.PublicKey // a key no known_hosts lists, to ask what is known

	mu      sync.Mutex // guards the fields below
	modTime time.Time
	size    int64
	check   ssh.HostKeyCallback
	cas     []ssh.PublicKey // keys of the @cert-authority lines
}

// NewChecker reads knownHostsPath, which must exist (it may be empty).
func NewChecker(knownHostsPath string) (*Checker, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	c := &Checker{path: knownHostsPath, probe: probe}
	if _, _, err := c.current(); err != nil {
		return nil, err
	}
	return c, nil
}

// current returns the callback and CA keys for the file as it is now.
func (c *Checker) current() (ssh.HostKeyCallback, []ssh.PublicKey, error) {
	st, err := os.Stat(c.path)
	if err != nil {
		return nil, nil, fmt.Errorf("hostkey: known_hosts: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.check != nil && st.ModTime().Equal(c.modTime) && st.Size() == c.size {
		return c.check, c.cas, nil
	}
	check, err := knownhosts.New(c.path)
	if err != nil {
		return nil, nil, fmt.Errorf("hostkey: %w", err)
	}
	data, err := os.ReadFile(c.path)
	if err != nil {
		return nil, nil, fmt.Errorf("hostkey: %w", err)
	}
	c.check, c.cas = check, certAuthorities(data)
	c.modTime, c.size = st.ModTime(), st.Size()
	return c.check, c.cas, nil
}

// certAuthorities returns the keys of the @cert-authority lines. The file
// has already been accepted by knownhosts.New.
func certAuthorities(data []byte) []ssh.PublicKey {
	var cas []ssh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "@cert-authority" {
			continue
		}
		blob, err := base64.StdEncoding.DecodeString(f[3])
		if err != nil {
			continue
		}
		if k, err := ssh.ParsePublicKey(blob); err == nil {
			cas = append(cas, k)
		}
	}
	return cas
}

// HostKeyCallback returns the strict check for ssh.ClientConfig. Pass the
// address dialled as "host:port"; the host key is checked against it.
func (c *Checker) HostKeyCallback() ssh.HostKeyCallback {
	return func(addr string, remote net.Addr, key ssh.PublicKey) error {
		check, cas, err := c.current()
		if err != nil {
			return err
		}
		if remote == nil {
			// knownhosts needs a remote address even when addr is given.
			remote = &net.TCPAddr{IP: net.IPv4zero}
		}
		// knownhosts matches @cert-authority keys like host keys; a server
		// offering a CA's own key as its host key is not what the line
		// means (OpenSSH accepts only certificates signed by it).
		if isCA(cas, key) {
			return fmt.Errorf("hostkey: %s: offered key %s is a certificate authority, not a host key", addr, ssh.FingerprintSHA256(key))
		}
		return c.explain(addr, key, check(addr, remote, key))
	}
}

// explain turns knownhosts' errors into this package's typed errors.
func (c *Checker) explain(addr string, key ssh.PublicKey, err error) error {
	if err == nil {
		return nil
	}
	plain := key
	if cert, ok := key.(*ssh.Certificate); ok {
		plain = cert.Key
	}
	fp := ssh.FingerprintSHA256(plain)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return &RevokedKeyError{Host: addr, KeyType: key.Type(), Fingerprint: fp,
			Where: fmt.Sprintf("%s:%d", re.Revoked.Filename, re.Revoked.Line)}
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return &UnknownKeyError{Host: addr, KeyType: key.Type(), Fingerprint: fp}
	case errors.As(err, &ke):
		e := &ChangedKeyError{Host: addr, KeyType: key.Type(), Fingerprint: fp}
		for _, w := range ke.Want {
			e.Known = append(e.Known, fmt.Sprintf("%s:%d %s %s", w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)))
		}
		return e
	}
	return fmt.Errorf("hostkey: %s: %s %s: %w", addr, key.Type(), fp, err)
}

// HostKeyAlgorithms returns the host key algorithms to ask addr for, most
// preferred first: those of the keys known for it and, when an
// @cert-authority line covers it, the certificate algorithms. It returns nil
// when nothing is known, leaving x/crypto/ssh's defaults (the check then
// fails with *UnknownKeyError).
func (c *Checker) HostKeyAlgorithms(addr string) []string {
	check, cas, err := c.current()
	if err != nil {
		return nil
	}
	remote := &net.TCPAddr{IP: net.IPv4zero}
	var algos []string
	add := func(as ...string) {
		for _, a := range as {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	for _, ca := range cas {
		// An unsigned certificate from this CA: the check says "no
		// authorities" unless the CA covers addr, and fails later on the
		// missing signature when it does.
		probe := &ssh.Certificate{Key: c.probe, CertType: ssh.HostCert, SignatureKey: ca,
			ValidBefore: ssh.CertTimeInfinity, Signature: &ssh.Signature{Format: "none"}}
		err := check(addr, remote, probe)
		if err != nil && !strings.Contains(err.Error(), "no authorities for hostname") {
			add(certAlgorithms()...)
			break
		}
	}
	var ke *knownhosts.KeyError
	if err := check(addr, remote, c.probe); errors.As(err, &ke) {
		for _, w := range ke.Want {
			if !isCA(cas, w.Key) {
				add(algorithmsFor(w.Key.Type())...)
			}
		}
	}
	return algos
}

// certAlgorithms are the host certificate algorithms x/crypto/ssh supports,
// in its order of preference.
func certAlgorithms() []string {
	return []string{
		ssh.CertAlgoED25519v01,
		ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
		ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
	}
}

// algorithmsFor maps a key type to the signature algorithms that use it. RSA
// keys are asked for with SHA-2 signatures only, as OpenSSH 8.8 does.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

func isCA(cas []ssh.PublicKey, key ssh.PublicKey) bool {
	blob := key.Marshal()
	return slices.ContainsFunc(cas, func(ca ssh.PublicKey) bool { return bytes.Equal(ca.Marshal(), blob) })
}
