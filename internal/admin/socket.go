package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Socket permissions: the folder is created owner-only and must not be
// writable by others (who could replace the socket); the socket is
// read-write for its owner only, which is what connect(2) checks.
const (
	dirMode    = 0o700
	socketMode = 0o600
	// probeTimeout bounds the connect made to tell a live socket from a stale one.
	probeTimeout = time.Second
)

// ErrInUse is returned by Listen when another process serves the socket.
var ErrInUse = errors.New("admin: socket in use by another gateway")

// Listen creates the Unix socket at path for Serve. It creates the folder
// (0700) if missing and refuses one that group or others may write. A
// socket left behind by a gateway that is gone is removed; a socket that
// answers is not touched (ErrInUse); any other file there is an error.
func Listen(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("admin: socket folder: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("admin: socket folder: %w", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("admin: socket folder %s is writable by group or others (mode %v); make it 0700", dir, fi.Mode().Perm())
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	// The folder keeps others out while the socket still has the umask's mode.
	if err := os.Chmod(path, socketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return l, nil
}

// removeStale removes a socket at path that nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin: %s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin: probing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("admin: removing stale socket: %w", err)
	}
	return nil
}
