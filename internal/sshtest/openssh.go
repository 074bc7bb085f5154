package sshtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SshdOptions configures StartSshd.
type SshdOptions struct {
	// AuthorizedKeys are the public keys the sshd accepts for any user.
	AuthorizedKeys []ssh.PublicKey
	// Config holds extra sshd_config lines (e.g. "PasswordAuthentication
	// yes"), appended after the harness's own lines. sshd keeps the first
	// value it reads for most keywords, so these cannot override the
	// harness's settings; use Match blocks or other keywords.
	Config []string
	// NoSFTP leaves the harness's sftp subsystem out: the server refuses
	// a subsystem request for it, as a target without one does.
	NoSFTP bool
}

// Sshd is an OpenSSH sshd started by StartSshd on 127.0.0.1.
type Sshd struct {
	Addr    string        // "127.0.0.1:PORT"
	Port    int           // the listening port
	Dir     string        // the temporary folder holding its config, keys and log
	HostKey ssh.PublicKey // the server's ed25519 host key
	LogPath string        // sshd's log at LogLevel DEBUG
	// ConfigPath is the sshd_config it runs with.
	ConfigPath string
}

// startTimeout bounds how long StartSshd waits for the banner.
const startTimeout = 10 * time.Second

// StartSshd runs /usr/sbin/sshd -D on a free loopback port as the
// current user, with its own host key and an authorized_keys file listing
// opts.AuthorizedKeys. It returns once the server has sent its banner and
// stops the server in t.Cleanup. Tests are skipped (or fail under
// SLUICE_INTEROP=require) when sshd is not installed.
func StartSshd(t testing.TB, opts SshdOptions) *Sshd {
	t.Helper()
	sshdPath := RequireTool(t, "sshd")
	if os.Geteuid() == 0 {
		// Privilege separation chroots into /run/sshd when sshd runs as root.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshtest: create /run/sshd: %v", err)
		}
	}
	dir, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	hostSigner, hostKeyPath := NewKey(t, dir, "ssh_host_ed25519_key")
	authPath := filepath.Join(dir, "authorized_keys")
	var ak strings.Builder
	for _, k := range opts.AuthorizedKeys {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(authPath, []byte(ak.String()), 0o600); err != nil {
		t.Fatalf("sshtest: write authorized_keys: %v", err)
	}
	s := &Sshd{
		Dir:        dir,
		HostKey:    hostSigner.PublicKey(),
		LogPath:    filepath.Join(dir, "sshd.log"),
		ConfigPath: filepath.Join(dir, "sshd_config"),
	}
	// The port is chosen before sshd binds it; retry when another process
	// won the race.
	for attempt := 0; ; attempt++ {
		s.Port = FreePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		lines := []string{
			"ListenAddress " + s.Addr,
			"HostKey " + hostKeyPath,
			"AuthorizedKeysFile " + authPath,
			"StrictModes no",
			"UsePAM no",
			"PidFile none",
			"LogLevel DEBUG",
			"PermitRootLogin prohibit-password",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
		}
		if !opts.NoSFTP {
			lines = append(lines, "Subsystem sftp internal-sftp")
		}
		lines = append(lines, opts.Config...)
		if err := os.WriteFile(s.ConfigPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("sshtest: write sshd_config: %v", err)
		}
		err := s.start(t, sshdPath)
		if err == nil {
			return s
		}
		if attempt >= 2 {
			t.Fatalf("sshtest: %v", err)
		}
	}
}

// start runs sshd once and waits for its banner; on failure the process
// has been stopped.
func (s *Sshd) start(t testing.TB, sshdPath string) error {
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open sshd log: %w", err)
	}
	// -E rather than -e: with -e the session processes log to a stderr that
	// ends up on the client's stderr channel.
	cmd := exec.Command(sshdPath, "-D", "-E", s.LogPath, "-f", s.ConfigPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	if err := waitBanner(s.Addr, exited); err != nil {
		stop()
		log, _ := os.ReadFile(s.LogPath)
		return fmt.Errorf("sshd on %s: %w\n%s", s.Addr, err, log)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			stop()
		}
	})
	return nil
}

// waitBanner polls addr until it answers with an SSH identification string
// (RFC 4253 §4.2), the process exits, or startTimeout passes.
func waitBanner(addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var d net.Dialer
	for {
		select {
		case <-exited:
			return errors.New("sshd exited before accepting connections")
		default:
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.SetDeadline(time.Now().Add(startTimeout))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-") {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no banner within %v (last error: %v)", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KnownHostsLine returns the known_hosts line for this server's host key.
func (s *Sshd) KnownHostsLine() string {
	return KnownHostsLine(s.Addr, s.HostKey)
}

// Log returns the sshd log so far.
func (s *Sshd) Log(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		t.Fatalf("sshtest: read sshd log: %v", err)
	}
	return string(b)
}

// KnownHostsLine returns an OpenSSH known_hosts line for key at addr
// ("host:port"), e.g. "[127.0.0.1]:2222 ssh-ed25519 AAAA...".
func KnownHostsLine(addr string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
}

// ClientArgs returns the command-line options that make the OpenSSH tool
// ("ssh", "sftp" or "scp") connect to 127.0.0.1:port non-interactively
// with only the key at keyPath, accepting only hostKey (written to a
// known_hosts file in a temporary folder). The destination and command
// are the caller's to append, e.g.
//
//	exec.Command("ssh", append(sshtest.ClientArgs(t, "ssh", port, key, hk), "user@127.0.0.1", "echo hi")...)
func ClientArgs(t testing.TB, tool string, port int, keyPath string, hostKey ssh.PublicKey) []string {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := os.WriteFile(kh, []byte(KnownHostsLine(addr, hostKey)+"\n"), 0o600); err != nil {
		t.Fatalf("sshtest: write known_hosts: %v", err)
	}
	portFlag := "-p"
	if tool == "sftp" || tool == "scp" {
		portFlag = "-P"
	}
	return []string{
		"-F", "/dev/null",
		portFlag, strconv.Itoa(port),
		"-i", keyPath,
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + kh,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "LogLevel=ERROR",
	}
}
