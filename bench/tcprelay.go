package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
)

// relayCmd is the hidden first argument that runs this program as a plain
// TCP forwarder from a loopback port to another: the least a Go relay can
// do, so that the keystroke figures show what one more Go process on the
// path costs on this machine, apart from SSH.
const relayCmd = "_tcprelay"

// tcpRelay is the name of the direct path through the forwarder.
const tcpRelay = "direct, TCP relay"

// runRelay accepts on the address args[0] and copies each connection both
// ways to the address args[1], with TCP_NODELAY (Go's default) on both. It
// copies with read and write, as a relay that must see the bytes does,
// rather than with splice(2), which io.Copy between two TCP connections
// would use.
func runRelay(args []string) int {
	if len(args) != 2 {
		return 2
	}
	l, err := net.Listen("tcp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", args[1])
			if err != nil {
				return
			}
			defer u.Close()
			go func() {
				_, _ = io.Copy(struct{ io.Writer }{u}, struct{ io.Reader }{c})
				u.(*net.TCPConn).CloseWrite()
			}()
			_, _ = io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{u})
		}()
	}
}

// startRelay runs the forwarder to the target and adds its port to the
// client's known_hosts with the target's key.
func (w *world) startRelay() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := inNS(w.gwNS, exec.Command(self, relayCmd,
		net.JoinHostPort(w.gwHost, strconv.Itoa(port)), net.JoinHostPort(w.tgtHost, strconv.Itoa(w.targetPort))))
	if err := w.start(cmd); err != nil {
		return err
	}
	if err := waitBanner(w.gwHost, port, cmd); err != nil {
		return err
	}
	w.relayPort = port
	return w.knownHost(w.gwHost, port, w.file("target_host.pub"))
}

// relayed returns the direct path through the forwarder.
func (w *world) relayed() path {
	return path{tcpRelay, func(tool, cipher string) []string {
		return append(w.base(tool, cipher, w.relayPort), w.osUser+"@"+w.gwHost)
	}}
}

// keystrokeNote says how many microseconds each path adds to the direct
// keystroke p50 (medians over rounds).
func keystrokeNote(res *results) string {
	for _, r := range res.rows {
		if r.metric != "keystroke p50" {
			continue
		}
		d := median(r.vals["direct"])
		add := func(name string) string {
			return fmt.Sprintf("%s %+.0f µs", name, median(r.vals[name])-d)
		}
		return fmt.Sprintf("keystroke p50 over direct: %s, %s, %s (a plain TCP forwarder: what one more process on the path costs here)",
			add("Sluice"), add("ProxyJump"), add(tcpRelay))
	}
	return ""
}
