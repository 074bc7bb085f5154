package main

import (
	"bufio"
	"context"
	"flag"
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
// with --yes or after the user types "yes".
func knownHosts(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const usage = "usage: sluice known-hosts add HOST[:PORT] --known-hosts FILE [--yes]"
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("known-hosts add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("known-hosts", "", "known_hosts `FILE` to append to")
	yes := fs.Bool("yes", false, "trust the keys shown without asking")
	// Accept the host before or after the flags.
	var host string
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		host, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if host == "" && fs.NArg() == 1 {
		host = fs.Arg(0)
	} else if fs.NArg() != 0 {
		host = ""
	}
	if host == "" || *file == "" {
		fmt.Fprintln(stderr, usage)
		return 2
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
	if !*yes {
		fmt.Fprintf(stdout, "Add them to %s? Compare the fingerprints with the server's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub). Type yes to add: ", *file)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
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
