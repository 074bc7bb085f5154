package main

import (
	"fmt"
	"io"
	"os"
	"sort"
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
		"known-hosts": {"add an upstream server's host keys to a known_hosts file", runKnownHosts},
		"sessions":    {"list recorded or live sessions", runSessions},
		"audit":       {"query the audit store", runAudit},
		"replay":      {"play a session's recordings", runReplay},
		"kill":        {"end a live session", runKill},
		"console":     {"create console API tokens and operators", runConsole},
		"version":     {"print the version and VCS revision", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		return 2
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sluice: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: sluice COMMAND [flags]")
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
}
