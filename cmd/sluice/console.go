package main

import (
	"bufio"
	"crypto/rand"
	"flag"
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
	const use = "usage: sluice console token -c FILE --name NAME [--ttl D]\n       sluice console user -c FILE --name NAME [--password-stdin]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, use)
		return 2
	}
	switch args[0] {
	case "token":
		return runConsoleToken(args[1:], stdout, stderr)
	case "user":
		return runConsoleUser(args[1:], os.Stdin, stdout, stderr)
	}
	fmt.Fprintln(stderr, use)
	return 2
}

// runConsoleToken is `sluice console token -c FILE --name NAME [--ttl D]`:
// it prints a new API token; only its hash is kept.
func runConsoleToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("console token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config `FILE`")
	name := fs.String("name", "", "the token's `NAME`, written in the audit of what it does")
	ttl := fs.Duration("ttl", defaultTokenTTL, "how long the token is valid (`D`, e.g. 720h)")
	const use = "usage: sluice console token -c FILE --name NAME [--ttl D]"
	cfg, _, code := parseCommand(fs, args, path, 0, use, stderr)
	if cfg == nil {
		return code
	}
	if *name == "" {
		fmt.Fprintln(stderr, use)
		return 2
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
	fs := flag.NewFlagSet("console user", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config `FILE`")
	name := fs.String("name", "", "the operator's `NAME`")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input instead of making one")
	const use = "usage: sluice console user -c FILE --name NAME [--password-stdin]"
	cfg, _, code := parseCommand(fs, args, path, 0, use, stderr)
	if cfg == nil {
		return code
	}
	if *name == "" {
		fmt.Fprintln(stderr, use)
		return 2
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
