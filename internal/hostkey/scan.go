package hostkey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// scanAlgorithms are the host key algorithms Scan asks for, one handshake
// each; RSA is asked for once, with SHA-2 signatures (RFC 8332).
func scanAlgorithms() []string {
	return []string{
		ssh.KeyAlgoED25519,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512,
	}
}

// errScanned stops a handshake once the host key has been seen.
var errScanned = errors.New("hostkey: key seen")

// Scan returns every host key addr ("host:port") offers, learnt by one
// handshake per key type with HostKeyAlgorithms pinned to it. Each handshake
// stops at the host key: nothing is authenticated and no credential is
// sent. timeout bounds each handshake.
func Scan(ctx context.Context, addr string, timeout time.Duration) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	var lastErr error
	for _, algo := range scanAlgorithms() {
		key, err := scanOne(ctx, addr, algo, timeout)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("hostkey: scan %s: %w", addr, ctx.Err())
			}
			lastErr = err
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("hostkey: scan %s: no host key: %w", addr, lastErr)
	}
	return keys, nil
}

func scanOne(ctx context.Context, addr, algo string, timeout time.Duration) (ssh.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:              "sluice-keyscan",
		HostKeyAlgorithms: []string{algo},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errScanned
		},
	}
	// The callback refuses every key, so the handshake always fails; what
	// matters is whether the key was seen first.
	_, _, _, err = ssh.NewClientConn(conn, addr, cfg)
	if key == nil {
		return nil, err
	}
	return key, nil
}

// AppendKnownHosts appends one line per key to the known_hosts file at path
// for addr ("host:port"), creating the file with mode 0600 when missing.
// Keys already listed for addr are left out; it returns the keys written.
func AppendKnownHosts(path, addr string, keys []ssh.PublicKey) ([]ssh.PublicKey, error) {
	var known func(ssh.PublicKey) bool
	if _, err := os.Stat(path); err == nil {
		c, err := NewChecker(path)
		if err != nil {
			return nil, err
		}
		check := c.HostKeyCallback()
		remote := &net.TCPAddr{IP: net.IPv4zero}
		known = func(k ssh.PublicKey) bool { return check(addr, remote, k) == nil }
	}
	var b strings.Builder
	var added []ssh.PublicKey
	for _, k := range keys {
		if known != nil && known(k) {
			continue
		}
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k))
		b.WriteByte('\n')
		added = append(added, k)
	}
	if len(added) == 0 {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	data := []byte(b.String())
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		// Start on a new line if the file does not end with one.
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && !bytes.Equal(last, []byte("\n")) {
			data = append([]byte("\n"), data...)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	return added, nil
}
