package main

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-ssh/sluice/internal/console"
)

// defaultTokenTTL is how long a console API token is valid unless --ttl says.
const defaultTokenTTL = 90 * 24 * time.Hour

// runConsole is `sluice console token|user ...`.
func runConsole(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && args[0] == "token":
		return runConsoleToken(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "user":
		return runConsoleUser(args[1:], os.Stdin, stdout, stderr)
	case len(args) > 0 && isHelp(args[0]):
		fmt.Fprint(stdout, "usage: sluice console token|user [flags]\n\nManage the console's credentials: `sluice console token --help` and\n`sluice console user --help` tell more.\n")
		return 0
	}
	fmt.Fprintln(stderr, "sluice console: the verbs are token and user\nusage: sluice console token|user [flags]")
	return 2
}

// runConsoleToken is `sluice console token -c FILE --name NAME [--ttl D]`:
// it prints a new API token; only its hash is kept.
func runConsoleToken(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("console token", "-c FILE --name NAME [--ttl D]", "Print a new bearer token for the console API; only its hash is kept.", stdout, stderr)
	fs := cl.fs
	path := fs.String("c", "", "config `FILE`")
	name := fs.String("name", "", "the token's `NAME`, written in the audit of what it does")
	ttl := fs.Duration("ttl", defaultTokenTTL, "how long the token is valid (`D`, e.g. 720h)")
	cfg, _, code := cl.config(args, path, 0)
	if cfg == nil {
		return code
	}
	if *name == "" {
		return cl.fail("--name NAME is required")
	}
	creds := console.NewCredentials(filepath.Join(cfg.Gateway.StateDir, "console"), nil)
	tok, err := creds.NewToken(*name, *ttl)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// runConsoleUser is `sluice console user -c FILE --name NAME
// [--password-stdin]`: it creates a console operator and prints the TOTP
// key to add to an authenticator app (and the password when it made one).
func runConsoleUser(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cl := newCmdline("console user", "-c FILE --name NAME [--password-stdin]", "Create a console operator: a password (made, or read from stdin) and a\nTOTP key to add to an authenticator app.", stdout, stderr)
	fs := cl.fs
	path := fs.String("c", "", "config `FILE`")
	name := fs.String("name", "", "the operator's `NAME`")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input instead of making one")
	cfg, _, code := cl.config(args, path, 0)
	if cfg == nil {
		return code
	}
	if *name == "" {
		return cl.fail("--name NAME is required")
	}
	password := ""
	if *fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(stderr, "sluice: reading the password:", err)
			return 1
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		password = rand.Text()
	}
	creds := console.NewCredentials(filepath.Join(cfg.Gateway.StateDir, "console"), nil)
	url, secret, err := creds.NewOperator(*name, password, "sluice "+cfg.Gateway.Name)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	fmt.Fprintf(stdout, "operator %s created\n", *name)
	if !*fromStdin {
		fmt.Fprintf(stdout, "password: %s\n", password)
	}
	fmt.Fprintf(stdout, "TOTP secret: %s\nTOTP key (for an authenticator app): %s\n", secret, url)
	return 0
}
