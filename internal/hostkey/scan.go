package hostkey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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

// StaleKey is a key known_hosts lists for an address where the server now
// offers another key of the same type: what OpenSSH reports as "REMOTE
// HOST IDENTIFICATION HAS CHANGED".
type StaleKey struct {
	Key  ssh.PublicKey
	Line int // 1-based line in the file
	// Shared is set when the line names other hosts too (several names, a
	// wildcard or a negation): it cannot be removed for addr alone.
	Shared bool
}

// StaleKnownHosts returns the keys the known_hosts file at path lists for
// addr whose type the server offers (in offered) with another key. A
// missing file has none.
func StaleKnownHosts(path, addr string, offered []ssh.PublicKey) ([]StaleKey, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	check, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	offeredTypes := map[string]bool{}
	for _, k := range offered {
		offeredTypes[k.Type()] = true
	}
	var stale []StaleKey
	seen := map[int]bool{}
	remote := &net.TCPAddr{IP: net.IPv4zero}
	for _, k := range offered {
		var ke *knownhosts.KeyError
		if !errors.As(check(addr, remote, k), &ke) {
			continue
		}
		for _, w := range ke.Want {
			if seen[w.Line] || !offeredTypes[w.Key.Type()] || offers(offered, w.Key) {
				continue
			}
			seen[w.Line] = true
			stale = append(stale, StaleKey{Key: w.Key, Line: w.Line, Shared: sharedLine(lines, w.Line)})
		}
	}
	return stale, nil
}

func offers(keys []ssh.PublicKey, k ssh.PublicKey) bool {
	for _, o := range keys {
		if bytes.Equal(o.Marshal(), k.Marshal()) {
			return true
		}
	}
	return false
}

// sharedLine reports whether known_hosts line n (1-based) names more than
// one host: several patterns, a wildcard or a negation.
func sharedLine(lines [][]byte, n int) bool {
	if n < 1 || n > len(lines) {
		return true
	}
	_, hosts, _, _, _, err := ssh.ParseKnownHosts(lines[n-1])
	if err != nil || len(hosts) != 1 {
		return true
	}
	return strings.ContainsAny(hosts[0], "*?!")
}

func readLines(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	return bytes.SplitAfter(data, []byte("\n")), nil
}

// RemoveKnownHostsLines rewrites the known_hosts file at path without the
// given lines (1-based), through a temporary file renamed over it so that a
// crash leaves either the old file or the new one. The file keeps its mode.
func RemoveKnownHostsLines(path string, remove []int) error {
	lines, err := readLines(path)
	if err != nil {
		return err
	}
	drop := map[int]bool{}
	for _, n := range remove {
		drop[n] = true
	}
	var b bytes.Buffer
	for i, l := range lines {
		if !drop[i+1] {
			b.Write(l)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("hostkey: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".known_hosts-*")
	if err != nil {
		return fmt.Errorf("hostkey: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("hostkey: %w", err)
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("hostkey: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("hostkey: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("hostkey: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("hostkey: %w", err)
	}
	return nil
}
