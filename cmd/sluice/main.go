package main

import (
	"fmt"
	"io"
	"os"
)

// command runs one subcommand with its arguments and returns the exit code.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"check":       {"validate a config file", runCheck},
		"serve":       {"run the gateway", runServe},
		"target":      {"run the built-in SSH target server", runTarget},
		"demo":        {"try Sluice: a demo gateway and target on loopback", runDemo},
		"ca":          {"print the upstream user CA keys for the targets' TrustedUserCAKeys, or the host CA line for known_hosts", runCA},
		"known-hosts": {"add an upstream server's host keys to a known_hosts file", runKnownHosts},
		"sessions":    {"list recorded or live sessions", runSessions},
		"audit":       {"query the audit store", runAudit},
		"replay":      {"play a session's recordings", runReplay},
		"kill":        {"end a live session", runKill},
		"explain":     {"explain who may reach which host as which login", runExplain},
		"console":     {"create console API tokens and operators", runConsole},
		"user":        {"enrol a user for TOTP second factors", runUser},
		"version":     {"print the version and VCS revision", runVersion},
		"completion":  {"print the bash or zsh completion script", runCompletion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help":
		usage(stdout, cmds)
		return 0
	case "help":
		if len(args) == 1 {
			usage(stdout, cmds)
			return 0
		}
		if c, ok := cmds[args[1]]; ok {
			return c.run(append(args[2:len(args):len(args)], "--help"), stdout, stderr)
		}
		args = args[1:]
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sluice: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

// usage is the top-level help, in the layout of every command's.
func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprint(w, "usage: sluice COMMAND [flags]\n\nSluice, the SSH gateway firewall. `sluice COMMAND --help` tells more about\neach command.\n\ncommands:\n")
	for _, n := range sortedNames(cmds) {
		fmt.Fprintf(w, "  %-12s  %s\n", n, cmds[n].summary)
	}
}
