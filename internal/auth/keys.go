package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
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
