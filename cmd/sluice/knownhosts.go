package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/hostkey"
)

// scanTimeout bounds each handshake of "known-hosts add".
const scanTimeout = 10 * time.Second

func runKnownHosts(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return knownHosts(ctx, args, os.Stdin, stdout, stderr)
}

// knownHosts runs "known-hosts add HOST[:PORT] --known-hosts FILE [--yes]":
// it shows every host key the server offers and appends them to FILE only
// with --yes or after the user types "yes". A key FILE lists for the host
// that the server now offers another key of the same type for is a changed
// host key: it is shown with OpenSSH's warning and replaced only after the
// user types "yes" (or with --yes --replace).
func knownHosts(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cl := newCmdline("known-hosts add", "HOST[:PORT] --known-hosts FILE [--yes [--replace]]", "Show the host keys an upstream server offers and append them to a\nknown_hosts file after you type \"yes\" (or with --yes). A key that changed\nis shown with OpenSSH's warning and replaced only on confirmation.", stdout, stderr)
	file := cl.fs.String("known-hosts", "", "known_hosts `FILE` to append to")
	yes := cl.fs.Bool("yes", false, "trust the keys shown without asking")
	replace := cl.fs.Bool("replace", false, "with --yes: replace keys that changed")
	args, code, ok := cl.verb(args)
	if !ok {
		return code
	}
	pos, code, ok := cl.parse(args, 1)
	if !ok {
		return code
	}
	host := pos[0]
	if *file == "" {
		return cl.fail("--known-hosts FILE is required")
	}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(strings.Trim(host, "[]"), "22")
	}
	keys, err := hostkey.Scan(ctx, addr, scanTimeout)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s offers these host keys:\n", addr)
	for _, k := range keys {
		fmt.Fprintf(stdout, "  %-22s %s\n", k.Type(), ssh.FingerprintSHA256(k))
	}
	stale, err := hostkey.StaleKnownHosts(*file, addr, keys)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	in := bufio.NewReader(stdin)
	if len(stale) > 0 {
		if code := replaceStale(in, *file, addr, stale, *yes, *replace, stdout, stderr); code != 0 {
			return code
		}
	} else if !*yes {
		fmt.Fprintf(stdout, "Add them to %s? Compare the fingerprints with the server's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub). Type yes to add: ", *file)
		if !confirmed(in) {
			fmt.Fprintln(stderr, "sluice: nothing added")
			return 1
		}
	}
	added, err := hostkey.AppendKnownHosts(*file, addr, keys)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "added %d key(s) for %s to %s (%d already known)\n", len(added), addr, *file, len(keys)-len(added))
	return 0
}

// changedWarning is OpenSSH's warning for a changed host key (ssh(1)).
const changedWarning = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
`

// replaceStale warns about the changed keys and, once confirmed, removes
// their lines from file; the caller then appends the new keys. It returns
// 0 to go on, or the exit code.
func replaceStale(in *bufio.Reader, file, addr string, stale []hostkey.StaleKey, yes, replace bool, stdout, stderr io.Writer) int {
	fmt.Fprint(stderr, changedWarning)
	shared := false
	for _, k := range stale {
		fmt.Fprintf(stderr, "%s:%d lists %s %s for %s, which the server no longer offers.\n", file, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key), addr)
		shared = shared || k.Shared
	}
	switch {
	case shared:
		fmt.Fprintln(stderr, "sluice: a line above names other hosts too; remove this host from it by hand, then run again. Nothing changed.")
		return 1
	case yes && !replace:
		fmt.Fprintln(stderr, "sluice: a host key changed; --yes replaces it only with --replace. Nothing changed.")
		return 1
	case !yes:
		fmt.Fprintf(stdout, "Replace the old key(s) in %s with the keys shown? Check with the server's administrator first. Type yes to replace: ", file)
		if !confirmed(in) {
			fmt.Fprintln(stderr, "sluice: nothing changed")
			return 1
		}
	}
	lines := make([]int, len(stale))
	for i, k := range stale {
		lines[i] = k.Line
	}
	if err := hostkey.RemoveKnownHostsLines(file, lines); err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "removed %d changed key(s) for %s from %s\n", len(stale), addr, file)
	return 0
}

// confirmed reads one line and reports whether it is "yes".
func confirmed(in *bufio.Reader) bool {
	line, _ := in.ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}
