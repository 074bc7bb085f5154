package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The WAN mode (--rtt) puts the client, the gateway host and the target in
// three network namespaces joined by two links, client—gateway and
// gateway—target, each delaying every packet by a quarter of the round
// trip in each direction:
//
//	cli 10.77.1.1 ── rtt/4 each way ── 10.77.1.2 gw 10.77.2.1 ── rtt/4 each way ── 10.77.2.2 tgt
//
// The gateway namespace holds Sluice and the ProxyJump host and routes the
// direct path, so direct, ProxyJump and Sluice cross the same two links and
// the gateway splits the round trip in halves, as a bastion between two
// networks does. This kernel has no netem qdisc (CONFIG_NET_SCH_NETEM), so
// the links are TUN devices and the delay line is this program: it reads
// each IP packet from one end and writes it to the other when it is due,
// optionally at a limited rate and with random loss. TCP runs unchanged in
// the kernels of the namespaces, end to end on the direct path.
const (
	wanNet    = "10.77.0.0/16"
	cliAddr   = "10.77.1.1"
	gwCliSide = "10.77.1.2"
	gwTgtSide = "10.77.2.1"
	tgtAddr   = "10.77.2.2"
	// wanEnv carries the child's settings: "gwNS,tgtNS".
	wanEnv = "SLUICE_BENCH_WAN"
)

// wanOptions are the path's properties.
type wanOptions struct {
	rtt  time.Duration
	rate float64 // bits per second on each link and direction; 0 is unlimited
	loss float64 // probability of dropping a packet on each link and direction
	mtu  int
}

// wanNames are the namespaces of one run, unique to this process.
type wanNames struct{ cli, gw, tgt string }

func newWanNames() wanNames {
	p := strconv.Itoa(os.Getpid())
	return wanNames{"sb" + p + "-cli", "sb" + p + "-gw", "sb" + p + "-tgt"}
}

// runWAN builds the namespaces and links, runs this program again inside
// the client namespace with the same arguments (the child measures, with
// wanEnv set), and tears everything down.
func runWAN(o wanOptions) error {
	if os.Geteuid() != 0 {
		return errors.New("--rtt needs root (network namespaces and TUN devices)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("--rtt needs ip from iproute2 (scripts/install-test-deps.sh)")
	}
	ns := newWanNames()
	defer ns.teardown()
	lines, err := ns.setup(o)
	if err != nil {
		return err
	}
	defer lines.close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.cli, self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), wanEnv+"="+ns.gw+","+ns.tgt)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	// An interrupt reaches the child through the terminal; wait for it, so
	// that the teardown runs after its processes are gone.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		for s := range sig {
			_ = cmd.Process.Signal(s)
		}
	}()
	return cmd.Wait()
}

// ip runs ip(8) with args.
func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// setup makes the three namespaces and the two delayed links.
func (ns wanNames) setup(o wanOptions) (*delayLines, error) {
	for _, n := range []string{ns.cli, ns.gw, ns.tgt} {
		if err := ip("netns", "add", n); err != nil {
			return nil, err
		}
		if err := ip("-n", n, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", ns.gw, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip_forward in %s: %v: %s", ns.gw, err, out)
	}
	d := &delayLines{}
	p := strconv.Itoa(os.Getpid())
	ends := []struct{ dev, ns, addr string }{
		{"sb" + p + "c", ns.cli, cliAddr},
		{"sb" + p + "gc", ns.gw, gwCliSide},
		{"sb" + p + "gt", ns.gw, gwTgtSide},
		{"sb" + p + "t", ns.tgt, tgtAddr},
	}
	var tuns []*os.File
	for _, e := range ends {
		f, err := openTun(e.dev)
		if err != nil {
			d.close()
			return nil, err
		}
		tuns = append(tuns, f)
		d.files = append(d.files, f)
		if err := ns.configure(e.dev, e.ns, e.addr, o.mtu); err != nil {
			d.close()
			return nil, err
		}
	}
	// Routes to the far network through the one link of cli and tgt.
	if err := ip("-n", ns.cli, "route", "add", wanNet, "dev", ends[0].dev); err != nil {
		d.close()
		return nil, err
	}
	if err := ip("-n", ns.tgt, "route", "add", wanNet, "dev", ends[3].dev); err != nil {
		d.close()
		return nil, err
	}
	oneWay := o.rtt / 4
	d.start(tuns[0], tuns[1], oneWay, o)
	d.start(tuns[1], tuns[0], oneWay, o)
	d.start(tuns[2], tuns[3], oneWay, o)
	d.start(tuns[3], tuns[2], oneWay, o)
	return d, nil
}

// configure moves the TUN device dev into namespace n with address addr/24.
func (ns wanNames) configure(dev, n, addr string, mtu int) error {
	if err := ip("link", "set", dev, "netns", n); err != nil {
		return err
	}
	if err := ip("-n", n, "addr", "add", addr+"/24", "dev", dev); err != nil {
		return err
	}
	return ip("-n", n, "link", "set", dev, "mtu", strconv.Itoa(mtu), "txqueuelen", "10000", "up")
}

// teardown deletes the namespaces; the TUN devices went with their files.
func (ns wanNames) teardown() {
	for _, n := range []string{ns.cli, ns.gw, ns.tgt} {
		_ = exec.Command("ip", "netns", "del", n).Run()
	}
}

// openTun creates the TUN device name (IP packets, no packet information
// header) and returns its file; the device lives while the file is open.
func openTun(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("/dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// delayLines forwards packets between TUN devices.
type delayLines struct {
	files []*os.File
	wg    sync.WaitGroup
}

// packet is one IP packet in flight and when it leaves the line.
type packet struct {
	b   []byte
	due time.Time
}

// start forwards packets from src to dst, each delay after it arrived
// (after its serialization at o.rate, when set), dropping o.loss of them
// and those that find 100,000 packets queued, as a router's full queue does.
func (d *delayLines) start(src, dst *os.File, delay time.Duration, o wanOptions) {
	q := make(chan packet, 100000)
	d.wg.Add(2)
	go func() { // reader: exits when src is closed
		defer d.wg.Done()
		defer close(q)
		var free time.Time // when the link has sent what is queued
		buf := make([]byte, o.mtu+64)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if o.loss > 0 && rand.Float64() < o.loss {
				continue
			}
			now := time.Now()
			leave := now
			if o.rate > 0 {
				if free.After(now) {
					leave = free
				}
				leave = leave.Add(time.Duration(float64(n*8) / o.rate * float64(time.Second)))
				free = leave
			}
			select {
			case q <- packet{slices.Clone(buf[:n]), leave.Add(delay)}:
			default:
			}
		}
	}()
	go func() { // writer: exits when the reader has
		defer d.wg.Done()
		for p := range q {
			if w := time.Until(p.due); w > 0 {
				time.Sleep(w)
			}
			_, _ = dst.Write(p.b) // a failed write is a lost packet
		}
	}()
}

// close stops the lines and removes the devices.
func (d *delayLines) close() {
	for _, f := range d.files {
		f.Close()
	}
	d.wg.Wait()
}

// wanChild reports whether this process is the measuring child of runWAN,
// and sets up w's hosts and namespaces if so.
func (w *world) wanChild() bool {
	v := os.Getenv(wanEnv)
	if v == "" {
		return false
	}
	gw, tgt, _ := strings.Cut(v, ",")
	w.gwNS, w.tgtNS = gw, tgt
	w.gwHost, w.tgtHost = gwCliSide, tgtAddr
	return true
}

// inNS returns cmd run in namespace n ("" is this process's).
func inNS(n string, cmd *exec.Cmd) *exec.Cmd {
	if n == "" {
		return cmd
	}
	c := exec.Command("ip", append([]string{"netns", "exec", n}, cmd.Args...)...)
	c.Env, c.Dir, c.Stdin, c.Stdout, c.Stderr = cmd.Env, cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr
	return c
}
