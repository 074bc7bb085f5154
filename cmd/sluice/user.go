package main

import (
	"fmt"
	"io"

	"github.com/sluice-ssh/sluice/internal/mfa"
	"github.com/sluice-ssh/sluice/internal/termqr"
)

// runUser is "user totp -c FILE USER [--force]": it enrols USER for TOTP
// second factors, writing a new secret to the user's totp_file (0600) and
// printing its otpauth:// URI and a QR code of it for an authenticator app.
func runUser(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("user totp", "-c FILE USER [--force]", "Enrol USER for TOTP second factors (services[].mfa): write a new secret\nto the user's totp_file (mode 0600) and print its otpauth:// URI and a QR\ncode to scan with an authenticator app. The gateway reads the file at\neach login: no reload is needed.", stdout, stderr)
	path := cl.fs.String("c", "", "config `FILE`")
	force := cl.fs.Bool("force", false, "replace an existing secret (the old codes stop working)")
	args, code, ok := cl.verb(args)
	if !ok {
		return code
	}
	cfg, pos, code := cl.config(args, path, 1)
	if cfg == nil {
		return code
	}
	name := pos[0]
	u := cfg.User(name)
	switch {
	case u == nil:
		fmt.Fprintf(stderr, "sluice: %s: no user %q\n", cfg.Path, name)
		return 1
	case u.TOTPFile == "":
		fmt.Fprintf(stderr, "sluice: %s: users[%s] has no totp_file: add one, e.g. totp_file: ./totp/%s\n", cfg.Path, name, name)
		return 1
	}
	key, err := mfa.Enrol(u.TOTPFile, "Sluice "+cfg.Gateway.Name, name, *force)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	qr, err := termqr.Render(key.URL())
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\n\nScan this with an authenticator app, or enter the URI by hand:\n\n%s\n%s\n", u.TOTPFile, qr, key.URL())
	return 0
}
