package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/sluice-ssh/sluice/sshsession"
)

// drainTimeout bounds how long output is still read after a program exited
// and its process group was killed: only a process that left the group
// (setsid) can keep the output open that long.
const drainTimeout = 5 * time.Second

var (
	errStarted      = errors.New("target: a program already started")
	errPtyTwice     = errors.New("target: pty already allocated")
	errNoPty        = errors.New("target: no pty allocated")
	errNotRunning   = errors.New("target: no program running")
	errEnvRefused   = errors.New("target: env variable refused")
	errUnsupported  = errors.New("target: request not supported")
	errUnknownSubsy = errors.New("target: unknown subsystem")
)

// subsystemSFTP is the SFTP subsystem name (draft-ietf-secsh-filexfer §4).
const subsystemSFTP = "sftp"

// channel is the sshsession.Handler of one session channel.
type channel struct {
	t    *Target
	conn *ssh.ServerConn

	// mu guards the fields below. Serve reads proc and sftp once, after
	// HandleRequest set them; signals and window changes use proc under mu.
	mu      sync.Mutex
	pty     *sshsession.PtyRequest
	started bool
	sftp    bool
	proc    *process
}

// process is a started program and the parent's ends of its streams.
type process struct {
	cmd    *exec.Cmd
	pgid   int
	exited bool // reaped: pgid may name someone else's group from now on

	ptmx *os.File // with a pty: the master side, both directions

	stdin          *os.File // without a pty: write end of the program's stdin
	stdout, stderr *os.File // without a pty: read ends of its output
}

var _ sshsession.Handler = (*channel)(nil)

// HandleRequest implements sshsession.Handler.
func (c *channel) HandleRequest(s *sshsession.Session, r sshsession.Request) error {
	switch r := r.(type) {
	case *sshsession.PtyRequest:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.started {
			return errStarted
		}
		if c.pty != nil {
			return errPtyTwice
		}
		c.pty = r
		return nil
	case *sshsession.EnvRequest:
		if c.t.opts.AcceptEnv == nil || !c.t.opts.AcceptEnv(r.Name, r.Value) {
			return errEnvRefused
		}
		return nil
	case *sshsession.ShellRequest:
		return c.start(s, nil)
	case *sshsession.ExecRequest:
		return c.start(s, []string{"-c", r.Command})
	case *sshsession.SubsystemRequest:
		if r.Name != subsystemSFTP {
			return fmt.Errorf("%w %q", errUnknownSubsy, r.Name)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.started {
			return errStarted
		}
		c.started, c.sftp = true, true
		return nil
	case *sshsession.WindowChange:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.pty == nil {
			return errNoPty
		}
		if c.proc == nil {
			// Not started yet: start reads the size from s.Window().
			return nil
		}
		return pty.Setsize(c.proc.ptmx, winsize(*r))
	case *sshsession.SignalRequest:
		sig, ok := signalByName(r.Name)
		if !ok {
			return fmt.Errorf("target: unknown signal %q", r.Name)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.proc == nil || c.proc.exited {
			return errNotRunning
		}
		if err := syscall.Kill(-c.proc.pgid, sig); err != nil {
			return fmt.Errorf("target: signal %s: %w", r.Name, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", errUnsupported, r.Type())
}

// start runs the shell with args (nil for an interactive shell).
func (c *channel) start(s *sshsession.Session, args []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errStarted
	}
	cmd := exec.Command(c.t.shell, args...)
	cmd.Dir = c.t.home
	cmd.Env = c.environ(s)
	var (
		p   *process
		err error
	)
	if c.pty != nil {
		p, err = startPty(cmd, c.pty, s.Window())
	} else {
		p, err = startPipes(cmd)
	}
	if err != nil {
		return err
	}
	c.started, c.proc = true, p
	c.t.log.Debug("target: program started", "user", s.User(), "args", args, "pty", c.pty != nil, "pid", cmd.Process.Pid)
	return nil
}

// environ returns the program's environment: the account's variables,
// TERM and SSH_CONNECTION, then the accepted env requests (which win).
func (c *channel) environ(s *sshsession.Session) []string {
	env := []string{
		"HOME=" + c.t.home,
		"USER=" + c.t.user,
		"LOGNAME=" + c.t.user,
		"PATH=" + c.t.path,
		"SHELL=" + c.t.shell,
	}
	if c.pty != nil && c.pty.Term != "" {
		env = append(env, "TERM="+c.pty.Term)
	}
	if c.conn != nil {
		if v, ok := sshConnection(c.conn.RemoteAddr(), c.conn.LocalAddr()); ok {
			env = append(env, "SSH_CONNECTION="+v)
		}
	}
	for _, e := range s.Environ() {
		env = append(env, e.Name+"="+e.Value)
	}
	return env
}

// sshConnection formats SSH_CONNECTION as OpenSSH does: "CLIENT_IP
// CLIENT_PORT SERVER_IP SERVER_PORT".
func sshConnection(remote, local net.Addr) (string, bool) {
	r, ok1 := remote.(*net.TCPAddr)
	l, ok2 := local.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return "", false
	}
	return fmt.Sprintf("%s %d %s %d", r.IP, r.Port, l.IP, l.Port), true
}

func winsize(w sshsession.WindowChange) *pty.Winsize {
	return &pty.Winsize{
		Rows: uint16(w.Rows),
		Cols: uint16(w.Columns),
		X:    uint16(w.WidthPixels),
		Y:    uint16(w.HeightPixels),
	}
}

// startPty starts cmd as a session leader whose controlling terminal is a
// new pty set up from req and win.
func startPty(cmd *exec.Cmd, req *sshsession.PtyRequest, win sshsession.WindowChange) (*process, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("target: open pty: %w", err)
	}
	defer tty.Close()
	if err := setModes(tty, req.Modes); err != nil {
		ptmx.Close()
		return nil, err
	}
	if err := pty.Setsize(ptmx, winsize(win)); err != nil {
		ptmx.Close()
		return nil, fmt.Errorf("target: set pty size: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// Ctty 0 is the child's stdin, the tty.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		return nil, fmt.Errorf("target: start: %w", err)
	}
	return &process{cmd: cmd, pgid: cmd.Process.Pid, ptmx: ptmx}, nil
}

// setModes applies RFC 4254 §8 terminal modes to tty.
func setModes(tty *os.File, modes []sshsession.Mode) error {
	if len(modes) == 0 {
		return nil
	}
	fd := int(tty.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("target: get terminal modes: %w", err)
	}
	applyModes(tio, modes)
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		return fmt.Errorf("target: set terminal modes: %w", err)
	}
	return nil
}

// startPipes starts cmd in a new process group with a pipe for each of
// stdin, stdout and stderr.
func startPipes(cmd *exec.Cmd) (p *process, err error) {
	var files []*os.File
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("target: pipe: %w", err)
		}
		files = append(files, r, w)
		return r, w, nil
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("target: start: %w", err)
	}
	// The child holds its own copies now.
	inR.Close()
	outW.Close()
	errW.Close()
	return &process{cmd: cmd, pgid: cmd.Process.Pid, stdin: inW, stdout: outR, stderr: errR}, nil
}

// Serve implements sshsession.Handler.
func (c *channel) Serve(s *sshsession.Session) {
	c.mu.Lock()
	p, isSFTP := c.proc, c.sftp
	c.mu.Unlock()
	switch {
	case isSFTP:
		c.serveSFTP(s)
	case p != nil:
		c.serveProcess(s, p)
	}
}

// serveProcess relays p's streams until it exits, kills what is left of
// its process group, and reports how it ended.
func (c *channel) serveProcess(s *sshsession.Session, p *process) {
	// The client closing the channel kills the program.
	stop := context.AfterFunc(s.Context(), func() { c.kill(p, syscall.SIGKILL) })
	var out sync.WaitGroup
	var outputs []*os.File
	if p.ptmx != nil {
		// A pty has no half-close: EOF from the client leaves it open.
		c.t.inputs.Go(func() { io.Copy(p.ptmx, s) })
		out.Go(func() { io.Copy(s, p.ptmx) })
		outputs = []*os.File{p.ptmx}
	} else {
		c.t.inputs.Go(func() {
			io.Copy(p.stdin, s)
			p.stdin.Close() // EOF from the client: the program sees EOF.
		})
		out.Go(func() { io.Copy(s, p.stdout) })
		out.Go(func() { io.Copy(s.Stderr(), p.stderr) })
		outputs = []*os.File{p.stdout, p.stderr}
	}

	werr := p.cmd.Wait()
	stop()
	c.mu.Lock()
	// Background jobs die with the program; their output ends with them.
	syscall.Kill(-p.pgid, syscall.SIGKILL)
	p.exited = true
	c.mu.Unlock()

	drained := make(chan struct{})
	go func() {
		out.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		c.t.log.Warn("target: output still open after the program exited", "pid", p.pgid)
		for _, f := range outputs {
			f.SetReadDeadline(time.Now())
		}
		<-drained
	}
	for _, f := range outputs {
		f.Close()
	}

	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		c.t.log.Warn("target: wait", "err", werr)
		s.Exit(255)
	case ws.Signaled():
		s.ExitWithSignal(sshsession.ExitSignal{Signal: signalName(ws.Signal()), CoreDumped: ws.CoreDump()})
	default:
		s.Exit(uint32(ws.ExitStatus()))
	}
	c.t.log.Debug("target: program exited", "pid", p.pgid, "status", p.cmd.ProcessState.String())
}

// kill sends sig to p's process group unless p was reaped.
func (c *channel) kill(p *process, sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !p.exited {
		syscall.Kill(-p.pgid, sig)
	}
}

// sftpStream is the session's stdin and stdout as the sftp server wants
// them; closing it sends EOF.
type sftpStream struct{ s *sshsession.Session }

func (f sftpStream) Read(p []byte) (int, error)  { return f.s.Read(p) }
func (f sftpStream) Write(p []byte) (int, error) { return f.s.Write(p) }
func (f sftpStream) Close() error                { return f.s.CloseWrite() }

// serveSFTP runs an SFTP server (github.com/pkg/sftp) in the user's home
// folder until the client closes its side.
func (c *channel) serveSFTP(s *sshsession.Session) {
	srv, err := sftp.NewServer(sftpStream{s}, sftp.WithServerWorkingDirectory(c.t.home))
	if err != nil {
		c.t.log.Warn("target: sftp server", "err", err)
		s.Exit(1)
		return
	}
	err = srv.Serve()
	srv.Close()
	if err != nil {
		c.t.log.Debug("target: sftp session ended", "user", s.User(), "err", err)
		s.Exit(1)
		return
	}
	s.Exit(0)
}
