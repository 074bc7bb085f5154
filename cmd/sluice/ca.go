package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/hostcert"
	"github.com/sluice-ssh/sluice/internal/usercert"
)

// runCA implements "sluice ca show -c FILE": it prints the public key of
// every user CA the config's services log in to targets with
// (upstream.user_ca) and of those being rotated out
// (upstream.user_ca_previous), one TrustedUserCAKeys line per key, its
// comment naming the gateway and which service uses it how. With --host
// it prints instead the "@cert-authority" line of the gateway's host CA
// for the clients' known_hosts (internal/hostcert). It never creates a
// key. Usage errors exit 2.
func runCA(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("ca show", "[--host] -c FILE", "Print the public key of every upstream user CA the config's services sign\nlogins with (upstream.user_ca) and of those being rotated out\n(upstream.user_ca_previous), one line per key for the targets'\nTrustedUserCAKeys file. With --host, print the @cert-authority line of the\ngateway's host CA for the clients' known_hosts instead. It never creates a key.", stdout, stderr)
	var file string
	cl.fs.StringVar(&file, "c", "", "the config `FILE`")
	cl.fs.StringVar(&file, "config", "", "the config `FILE` (same as -c)")
	host := cl.fs.Bool("host", false, "print the host CA's @cert-authority line for clients' known_hosts")
	args, code, ok := cl.verb(args)
	if !ok {
		return code
	}
	cfg, _, code := cl.config(args, &file, 0)
	if cfg == nil {
		return code
	}
	var lines []string
	var err error
	if *host {
		lines, err = hostCALines(cfg)
	} else {
		lines, err = caLines(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return 0
}

// caLines returns one TrustedUserCAKeys line per distinct CA key of cfg's
// services, signing CAs first, in service order.
func caLines(cfg *config.Config) ([]string, error) {
	type ca struct {
		key  ssh.PublicKey
		uses []string // "user_ca of SERVICE", "user_ca_previous of SERVICE"
	}
	var cas []*ca
	add := func(svc, role, path string) error {
		k, err := usercert.ReadPublicKey(path)
		if errors.Is(err, fs.ErrNotExist) && role == "user_ca" {
			return fmt.Errorf("services[%s].upstream.user_ca: %s does not exist yet; the gateway creates it at its first start (sluice serve)", svc, path)
		}
		if err != nil {
			return fmt.Errorf("services[%s].upstream.%s: %w", svc, role, err)
		}
		use := role + " of " + svc
		for _, c := range cas {
			if bytes.Equal(c.key.Marshal(), k.Marshal()) {
				c.uses = append(c.uses, use)
				return nil
			}
		}
		cas = append(cas, &ca{key: k, uses: []string{use}})
		return nil
	}
	for _, role := range []string{"user_ca", "user_ca_previous"} {
		for _, s := range cfg.Services {
			path := s.Upstream.UserCA
			if role == "user_ca_previous" {
				path = s.Upstream.UserCAPrevious
			}
			if path == "" {
				continue
			}
			if err := add(s.Name, role, path); err != nil {
				return nil, err
			}
		}
	}
	if len(cas) == 0 {
		return nil, errors.New("no service sets upstream.user_ca")
	}
	lines := make([]string, 0, len(cas))
	for _, c := range cas {
		line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(c.key)), "\n")
		lines = append(lines, line+" sluice "+cfg.Gateway.Name+" "+strings.Join(c.uses, ", "))
	}
	return lines, nil
}

// hostCALines returns the "@cert-authority" line of cfg's host CA, its
// patterns the inventory's names and addresses ("*" without an
// inventory).
func hostCALines(cfg *config.Config) ([]string, error) {
	k, err := hostcert.ReadPublicKey(cfg.Gateway.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("gateway.state_dir: the host CA %s does not exist yet; the gateway creates it at its first start (sluice serve) when a service has router.jump", filepath.Join(cfg.Gateway.StateDir, hostcert.FileName))
	}
	if err != nil {
		return nil, err
	}
	hosts := make(map[string]string, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		hosts[h.Name] = h.Address
	}
	return []string{hostcert.KnownHostsLine(hostcert.Patterns(hosts), k, "sluice "+cfg.Gateway.Name+" host CA")}, nil
}
