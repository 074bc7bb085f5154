package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// row is one line of the result table: a figure per path.
type row struct {
	metric string
	unit   string
	higher bool // higher is better (throughput) rather than lower (time)
	vals   map[string][]float64
}

// results keeps rows in the order they were first measured.
type results struct {
	rows  []*row
	notes []string
}

func (r *results) add(metric, unit string, higher bool, pathName string, v float64) {
	for _, x := range r.rows {
		if x.metric == metric {
			x.vals[pathName] = append(x.vals[pathName], v)
			return
		}
	}
	r.rows = append(r.rows, &row{metric, unit, higher, map[string][]float64{pathName: {v}}})
}

// rotate returns ps starting at i mod len(ps), so that each round runs the
// paths in a different order.
func rotate(ps []path, i int) []path {
	i %= len(ps)
	return append(slices.Clone(ps[i:]), ps[:i]...)
}

// run sets up the world and runs every part asked for.
func run(o options) error {
	w, err := newWorld(o.user)
	if w != nil {
		defer w.close(o.keep)
		// An interrupt stops what was started (sshd, Sluice) before exiting.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		go func() {
			if _, ok := <-sig; ok {
				w.close(o.keep)
				os.Exit(1)
			}
		}()
	}
	if err != nil {
		return err
	}
	wantIdle := o.want("idle") && o.idle > 0
	idleN := 0
	if wantIdle {
		idleN = o.idle
	}
	if err := w.startSluice(o.sluiceBin, idleN, o.reuse, max(o.parallel, 4)); err != nil {
		return err
	}
	res := &results{}
	start := time.Now()
	load0 := loadavg()
	ps := w.paths()
	step := 0
	if o.want("setup") {
		if err := setupTimes(w, o, ps, res); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	// cols are the paths of the table: ps and those measured for one
	// figure only.
	cols := ps
	if o.want("keys") {
		if err := w.startRelay(); err != nil {
			return fmt.Errorf("TCP relay: %w", err)
		}
		kps := append(slices.Clone(ps), w.relayed())
		cols = kps
		for r := range o.rounds {
			for _, p := range rotate(kps, r) {
				n := o.keystrokes / o.rounds
				if err := keystrokes(p, n, res); err != nil {
					return fmt.Errorf("keystrokes %s: %w", p.name, err)
				}
			}
		}
		res.notes = append(res.notes, keystrokeNote(res))
	}
	if o.want("bulk") {
		for _, c := range o.ciphers {
			for _, dir := range []string{"download", "upload"} {
				for r := range o.rounds {
					step++
					for _, p := range rotate(ps, step+r) {
						if err := bulk(w, p, c, dir, o.bulk, res); err != nil {
							return fmt.Errorf("bulk %s %s %s: %w", dir, c, p.name, err)
						}
					}
				}
			}
		}
	}
	if o.want("sftp") {
		un := w.unproxied()
		cols = append(slices.Clone(cols), un)
		if err := sftp(w, o, append(slices.Clone(ps), un), res); err != nil {
			return fmt.Errorf("sftp: %w", err)
		}
	}
	if o.want("record") {
		cols = append(slices.Clone(cols), w.recordedPath())
		if err := recording(w, o, ps[slices.IndexFunc(ps, func(p path) bool { return p.name == "Sluice" })], res); err != nil {
			return fmt.Errorf("record: %w", err)
		}
	}
	if wantIdle {
		if err := idle(w, o.idle, res); err != nil {
			return fmt.Errorf("idle: %w", err)
		}
	}
	report(os.Stdout, o, res, cols, load0, loadavg(), time.Since(start))
	return nil
}

const defaultCipher = "aes128-gcm@openssh.com"

// timed runs cmd and returns its wall time; a failure includes stderr.
func timed(cmd *exec.Cmd) (time.Duration, error) {
	var errb bytes.Buffer
	if cmd.Stderr == nil {
		cmd.Stderr = &errb
	}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return d, nil
}

// setupTimes measures `ssh true` sequentially (p50) and with o.parallel
// concurrent clients (sessions/s). The time runs from the start of the ssh
// process, which connects at once, to its exit.
func setupTimes(w *world, o options, ps []path, res *results) error {
	samples := map[string][]float64{}
	for i := range o.setupRuns {
		for _, p := range rotate(ps, i) {
			d, err := timed(exec.Command("ssh", append(p.args("ssh", defaultCipher), "true")...))
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			samples[p.name] = append(samples[p.name], float64(d.Microseconds())/1000)
		}
	}
	for _, p := range ps {
		res.add("setup `ssh true` p50", "ms", false, p.name, percentile(samples[p.name], 50))
	}
	for r := range o.rounds {
		for _, p := range rotate(ps, r) {
			var wg sync.WaitGroup
			errs := make(chan error, o.parallel)
			cpu0, busy0 := w.sluiceCPU(), machineCPU()
			t0 := time.Now()
			for range o.parallel {
				wg.Go(func() {
					for range o.perClient {
						if _, err := timed(exec.Command("ssh", append(p.args("ssh", defaultCipher), "true")...)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			d := time.Since(t0)
			cpu1, busy1 := w.sluiceCPU(), machineCPU()
			close(errs)
			if err := <-errs; err != nil {
				return fmt.Errorf("%s parallel: %w", p.name, err)
			}
			n := float64(o.parallel * o.perClient)
			res.add(fmt.Sprintf("sessions/s, %d parallel", o.parallel), "1/s", true, p.name, n/d.Seconds())
			res.add("machine CPU per session, parallel", "ms", false, p.name, (busy1-busy0)/n*1000)
			if p.name == "Sluice" {
				res.add("Sluice CPU per session, parallel", "ms", false, p.name, (cpu1-cpu0)/n*1000)
			}
		}
	}
	return nil
}

// keystrokes measures the round trip of one byte through a pty: the remote
// side runs cat with the terminal in raw mode without echo, so cat itself
// sends each byte back at once, as an editor or readline would.
func keystrokes(p path, n int, res *results) error {
	args := append(p.args("ssh", defaultCipher), "-tt", "stty raw -echo; echo READY; exec cat")
	cmd := exec.Command("ssh", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// Wait for raw mode, then for a marker to come back so that nothing
	// typed before is still in flight.
	if err := readUntil(out, "READY"); err != nil {
		return fmt.Errorf("%w: %s", err, errb.String())
	}
	if _, err := in.Write([]byte("#")); err != nil {
		return err
	}
	if err := readUntil(out, "#"); err != nil {
		return err
	}
	const warmup = 10
	var samples []float64
	b := make([]byte, 1)
	for i := range n + warmup {
		c := byte('a' + i%26)
		t0 := time.Now()
		if _, err := in.Write([]byte{c}); err != nil {
			return err
		}
		if _, err := io.ReadFull(out, b); err != nil {
			return err
		}
		d := time.Since(t0)
		if b[0] != c {
			return fmt.Errorf("echo %q, want %q", b[0], c)
		}
		if i >= warmup {
			samples = append(samples, float64(d.Nanoseconds())/1000)
		}
	}
	res.add("keystroke p50", "µs", false, p.name, percentile(samples, 50))
	res.add("keystroke p99", "µs", false, p.name, percentile(samples, 99))
	return nil
}

// readUntil reads r one byte at a time until it has seen marker.
func readUntil(r io.Reader, marker string) error {
	var seen []byte
	b := make([]byte, 1)
	deadline := time.AfterFunc(30*time.Second, func() {
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
	})
	defer deadline.Stop()
	for !bytes.HasSuffix(seen, []byte(marker)) {
		if _, err := r.Read(b); err != nil {
			return fmt.Errorf("waiting for %q: %w (got %q)", marker, err, seen)
		}
		seen = append(seen, b[0])
	}
	return nil
}

// bulk moves size zero bytes one way and records MiB/s, and for Sluice its
// CPU seconds per GiB.
func bulk(w *world, p path, cipher, dir string, size int64, res *results) error {
	n := strconv.FormatInt(size, 10)
	var cmd *exec.Cmd
	var head *exec.Cmd
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	if dir == "download" {
		cmd = exec.Command("ssh", append(p.args("ssh", cipher), "head -c "+n+" /dev/zero")...)
		cmd.Stdout = devnull
	} else {
		cmd = exec.Command("ssh", append(p.args("ssh", cipher), "cat > /dev/null")...)
		head = exec.Command("head", "-c", n, "/dev/zero")
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		head.Stdout, cmd.Stdin = pw, pr
		if err := head.Start(); err != nil {
			return err
		}
		pw.Close()
		defer pr.Close()
	}
	cpu0 := w.sluiceCPU()
	d, err := timed(cmd)
	cpu1 := w.sluiceCPU()
	if head != nil {
		_ = head.Wait()
	}
	if err != nil {
		return err
	}
	short := map[string]string{"aes128-gcm@openssh.com": "aes128-gcm", "chacha20-poly1305@openssh.com": "chacha20-poly1305"}[cipher]
	if short == "" {
		short = cipher
	}
	mib := float64(size) / (1 << 20)
	res.add(fmt.Sprintf("bulk %s %s", dir, short), "MiB/s", true, p.name, mib/d.Seconds())
	if p.name == "Sluice" {
		res.add(fmt.Sprintf("Sluice CPU %s %s", dir, short), "CPU-s/GiB", false, p.name, (cpu1-cpu0)/(mib/1024))
	}
	return nil
}

// sftp gets and puts a sparse file of o.sftp bytes with `sftp -b`, over ps
// and through Sluice without its SFTP proxy (w.unproxied), and records
// MiB/s and, through Sluice, the gateway's CPU seconds per GiB.
func sftp(w *world, o options, ps []path, res *results) error {
	src := w.file("sftp.dat")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	if err := f.Truncate(o.sftp); err != nil {
		return err
	}
	f.Close()
	dst := w.file("home/sftp.put")
	mib := float64(o.sftp) / (1 << 20)
	for r := range o.rounds {
		for _, op := range []string{"get", "put"} {
			batch := w.file("sftp_" + op)
			line := fmt.Sprintf("get %s /dev/null\n", src)
			if op == "put" {
				line = fmt.Sprintf("put %s %s\n", src, dst)
			}
			if err := os.WriteFile(batch, []byte(line), 0o600); err != nil {
				return err
			}
			for _, p := range rotate(ps, r+len(op)) {
				args := append([]string{"-q", "-b", batch}, p.args("sftp", defaultCipher)...)
				cpu0 := w.sluiceCPU()
				d, err := timed(exec.Command("sftp", args...))
				cpu1 := w.sluiceCPU()
				if err != nil {
					return fmt.Errorf("%s %s: %w", op, p.name, err)
				}
				os.Remove(dst)
				res.add("SFTP "+op, "MiB/s", true, p.name, mib/d.Seconds())
				if strings.HasPrefix(p.name, "Sluice") {
					res.add("Sluice CPU SFTP "+op, "CPU-s/GiB", false, p.name, (cpu1-cpu0)/(mib/1024))
				}
			}
		}
	}
	return nil
}

// idle opens n proxied connections, each with a session channel running
// cat against the built-in target, and records the gateway's RSS per
// session. Goroutines cannot be counted from outside; see docs.
func idle(w *world, n int, res *results) error {
	keyPEM, err := os.ReadFile(w.userKey)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(w.file("state/ssh_host_ed25519_key.pub"))
	if err != nil {
		return err
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(w.idlePort)
	rss0 := w.sluiceRSS()
	st0, ok0 := w.stats()
	var clients []*ssh.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range n {
		target := w.idleTargets[i%len(w.idleTargets)]
		cfg := &ssh.ClientConfig{
			User:            fmt.Sprintf("bench+127.0.0.1:%d", target),
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(hk),
		}
		c, err := ssh.Dial("tcp", addr, cfg)
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		clients = append(clients, c)
		s, err := c.NewSession()
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		if err := liveCat(s); err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
	}
	time.Sleep(2 * time.Second) // let the relays settle
	rss1 := w.sluiceRSS()
	if st1, ok1 := w.stats(); ok0 && ok1 {
		res.add(fmt.Sprintf("goroutines per idle session (%d)", n), "", false, "Sluice", float64(st1.goroutines-st0.goroutines)/float64(n))
		res.add(fmt.Sprintf("goroutine stacks per idle session (%d)", n), "KiB", false, "Sluice", (st1.stack-st0.stack)/1024/float64(n))
		res.add(fmt.Sprintf("Go heap per idle session (%d)", n), "KiB", false, "Sluice", (st1.heap-st0.heap)/1024/float64(n))
	}
	if rss0 < 0 || rss1 < 0 {
		return errors.New("cannot read the gateway's VmRSS")
	}
	res.add(fmt.Sprintf("RSS per idle session (%d)", n), "KiB", false, "Sluice", (rss1-rss0)/float64(n))
	res.notes = append(res.notes, fmt.Sprintf("gateway VmRSS %.0f MiB before, %.0f MiB with %d idle sessions", rss0/1024, rss1/1024, n))
	return nil
}

// liveCat starts cat in s and checks, with one line sent and echoed back,
// that the relay is up: an idle session is measured only once it is live.
func liveCat(s *ssh.Session) error {
	in, err := s.StdinPipe()
	if err != nil {
		return err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	s.Stderr = &stderr
	if err := s.Start("cat"); err != nil {
		return err
	}
	const ping = "ping\n"
	if _, err := io.WriteString(in, ping); err != nil {
		return err
	}
	got := make([]byte, len(ping))
	if _, err := io.ReadFull(out, got); err != nil || string(got) != ping {
		return fmt.Errorf("cat did not echo (%q, %v); stderr: %q", got, err, stderr.String())
	}
	return nil
}

// gwStats is what a gateway in gateway mode reports on SIGUSR1.
type gwStats struct {
	goroutines  int
	stack, heap float64 // bytes in use
}

// stats asks a gateway in gateway mode for its goroutine count and memory
// in use; ok is false for the built binary, which has no such hook.
func (w *world) stats() (st gwStats, ok bool) {
	if !w.inProcess {
		return st, false
	}
	f := w.file("gateway.stats")
	os.Remove(f)
	if err := w.sluice.Process.Signal(syscall.SIGUSR1); err != nil {
		return st, false
	}
	for range 100 {
		if data, err := os.ReadFile(f); err == nil {
			if _, err := fmt.Sscan(string(data), &st.goroutines, &st.stack, &st.heap); err == nil {
				return st, true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st, false
}

// sluiceCPU returns the gateway's utime+stime in seconds, from
// /proc/PID/stat (proc(5): fields 14 and 15, in clock ticks).
func (w *world) sluiceCPU() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.sluice.Process.Pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck
}

// machineCPU returns the CPU seconds all processes have used, from the
// first line of /proc/stat: user, nice, system, irq and softirq (guest
// time is already in user and nice).
func machineCPU() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, _ := strconv.ParseFloat(f[i], 64)
		busy += n
	}
	return busy / clkTck
}

// clkTck is sysconf(_SC_CLK_TCK), 100 on every Linux architecture Go
// supports.
const clkTck = 100

// sluiceRSS returns the gateway's VmRSS in KiB, from /proc/PID/status.
func (w *world) sluiceRSS() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.sluice.Process.Pid))
	if err != nil {
		return -1
	}
	for l := range strings.Lines(string(data)) {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return -1
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
