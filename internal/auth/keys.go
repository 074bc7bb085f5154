package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// keyFile is one user's authorized_keys file, parsed once and parsed again
// when its modification time or size changes.
type keyFile struct {
	path string

	mu      sync.Mutex // guards the fields below
	modTime time.Time
	size    int64
	loaded  bool
	lines   []keyLine
	skipped []skippedLine
}

// skippedLine is a line that was refused, kept so that a failure can name it.
type skippedLine struct {
	line int
	err  error
}

// current returns the parsed lines, reloading the file when it changed.
func (f *keyFile) current() ([]keyLine, []skippedLine, error) {
	st, err := os.Stat(f.path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loaded && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.lines, f.skipped, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	lines, skipped := parseKeyFile(data)
	f.lines, f.skipped = lines, skipped
	f.modTime, f.size, f.loaded = st.ModTime(), st.Size(), true
	return lines, skipped, nil
}

// parseKeyFile parses every line of an authorized_keys file. Refused lines
// are returned apart and grant nothing.
func parseKeyFile(data []byte) ([]keyLine, []skippedLine) {
	var lines []keyLine
	var skipped []skippedLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64*1024) // sshd reads lines of up to SSH_MAX_PUBKEY_BYTES (16 KiB)
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		kl, err := parseKeyLine(b)
		if err != nil {
			skipped = append(skipped, skippedLine{line: n, err: err})
			continue
		}
		kl.line = n
		lines = append(lines, kl)
	}
	if err := sc.Err(); err != nil {
		skipped = append(skipped, skippedLine{line: n + 1, err: fmt.Errorf("auth: %w", err)})
	}
	return lines, skipped
}

// ReadPublicKeys returns the keys of a file in OpenSSH authorized_keys
// format, such as a list of user certificate authorities. Options on a line
// are ignored. Every line must parse: a bad line is an error naming it,
// never a key silently dropped; a file with no key is an error too.
func ReadPublicKeys(path string) ([]ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	var keys []ssh.PublicKey
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("auth: %s:%d: %w", path, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: %s: no keys", path)
	}
	return keys, nil
}
