package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// runVersion is `sluice version`: the module version and the VCS revision
// the binary was built from, as recorded by the Go toolchain.
func runVersion(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("version", "", "Print the module version, the VCS revision and the Go version the binary\nwas built with.", stdout, stderr)
	if _, code, ok := cl.parse(args, 0); !ok {
		return code
	}
	fmt.Fprintln(stdout, versionString(debug.ReadBuildInfo()))
	return 0
}

// versionString formats build information: "sluice VERSION (REVISION[,
// modified], TIME) GO".
func versionString(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "sluice (unknown version: no build information)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	out := "sluice " + version
	if rev != "" {
		out += " (" + rev
		if modified {
			out += ", modified"
		}
		if when != "" {
			out += ", " + when
		}
		out += ")"
	}
	return out + " " + bi.GoVersion
}
