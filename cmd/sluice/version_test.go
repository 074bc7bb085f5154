package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "sluice (unknown version: no build information)"},
		{"devel", &debug.BuildInfo{GoVersion: "go1.26.8"}, true, "sluice (devel) go1.26.8"},
		{"release with vcs", &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc123"},
				{Key: "vcs.time", Value: "2026-11-21T00:00:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, true, "sluice v1.2.3 (abc123, modified, 2026-11-21T00:00:00Z) go1.26.8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionString(tc.bi, tc.ok); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "sluice ") {
		t.Fatalf("sluice version: got %d %q %q, want 0 and a line starting with \"sluice \"", code, out.String(), errb.String())
	}
}
