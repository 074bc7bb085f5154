package main

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/sluice-ssh/sluice/internal/access"
	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/config"
)

// runCheck implements "sluice check -c FILE": it prints every problem in
// the file to stderr, one per line, and exits 1, or prints its warnings
// (FILE:LINE: key: warning: ...) to stderr and "FILE: ok" to stdout and
// exits 0. With a transparent service, a key listed for two users is an
// error. Usage errors exit 2.
func runCheck(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("check", "-c FILE", "Validate a config file: every error with its FILE:LINE, then its warnings.\nExit status 0 when the file is valid, 1 when it is not.", stdout, stderr)
	var file string
	cl.fs.StringVar(&file, "c", "", "the config `FILE` to validate")
	cl.fs.StringVar(&file, "config", "", "the config `FILE` to validate (same as -c)")
	if _, code, ok := cl.parse(args, 0); !ok {
		return code
	}
	if file == "" {
		return cl.fail("-c FILE is required")
	}
	cfg, err := config.Load(file)
	if err != nil {
		if errs, ok := errors.AsType[*config.Errors](err); ok {
			for _, e := range errs.List {
				fmt.Fprintln(stderr, e)
			}
		} else {
			fmt.Fprintf(stderr, "sluice check: %v\n", err)
		}
		return 1
	}
	if errs := transparentKeys(cfg); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(stderr, "%s: %s\n", file, e)
		}
		return 1
	}
	warnings := slices.Concat(cfg.Warnings, access.Lint(cfg))
	slices.SortStableFunc(warnings, func(a, b *config.Error) int { return a.Line - b.Line })
	for _, w := range warnings {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", file)
	return 0
}

// transparentKeys returns the errors of a config with a transparent
// service (router.transparent), which knows users by their key alone: a
// key listed for more than one user, or an authorized_keys file that
// cannot be read.
func transparentKeys(cfg *config.Config) []string {
	svc := ""
	for _, s := range cfg.Services {
		if s.Router.Transparent {
			svc = s.Name
			break
		}
	}
	if svc == "" {
		return nil
	}
	users := make([]auth.User, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		users = append(users, auth.User{Name: u.Name, AuthorizedKeysFile: u.AuthorizedKeys})
	}
	shared, err := auth.SharedKeys(users)
	if err != nil {
		return []string{err.Error()}
	}
	for i, s := range shared {
		shared[i] = "users: " + s + "; services[" + svc + "].router.transparent knows a user by her key, so a key must belong to one user"
	}
	return shared
}
