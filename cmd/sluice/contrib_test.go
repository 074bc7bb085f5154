package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// unitFile reads the systemd unit's Key=Value settings (a key set twice
// keeps every value, in order).
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not Key=Value: %q", path, line)
		}
		kv[k] = append(kv[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestContribUnit checks contrib/sluice.service against the config it
// documents (contrib/sluice.yaml): the config it starts is that file's
// install path, `check` accepts the file, and every path the gateway
// writes lies under a folder the sandbox leaves writable. Then
// systemd-analyze verifies the unit itself.
func TestContribUnit(t *testing.T) {
	unitPath := filepath.Join("..", "..", "contrib", "sluice.service")
	unit := unitFile(t, unitPath)
	const installed = "/etc/sluice/sluice.yaml"
	for _, key := range []string{"ExecStart", "ExecStartPre"} {
		if got := strings.Join(unit[key], " "); !strings.HasSuffix(got, " -c "+installed) {
			t.Errorf("%s: got %q, want it to read %s", key, got, installed)
		}
	}
	writable := append([]string(nil), unit["ReadWritePaths"]...)
	for _, d := range unit["StateDirectory"] {
		writable = append(writable, "/var/lib/"+d)
	}
	if got := unit["ProtectSystem"]; len(got) != 1 || got[0] != "strict" {
		t.Fatalf("ProtectSystem: got %v, want strict (the test checks the paths for it)", got)
	}

	cfgPath := filepath.Join("..", "..", "contrib", "sluice.yaml")
	var out strings.Builder
	if code := run([]string{"check", "-c", cfgPath}, &out, &out); code != 0 {
		t.Fatalf("sluice check %s: exit %d: %s", cfgPath, code, out.String())
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]string{
		"gateway.state_dir":    cfg.Gateway.StateDir,
		"record.dir":           cfg.Record.Dir,
		"gateway.admin.socket": cfg.Gateway.Admin.Socket,
	}
	for _, s := range cfg.Services {
		written["services["+s.Name+"].upstream.identity"] = s.Upstream.Identity
		written["services["+s.Name+"].upstream.known_hosts"] = s.Upstream.KnownHosts
	}
	for key, p := range written {
		if p == "" {
			continue
		}
		ok := false
		for _, w := range writable {
			ok = ok || p == w || strings.HasPrefix(p, w+"/")
		}
		if !ok {
			t.Errorf("%s: %s is outside the unit's writable paths %v", key, p, writable)
		}
	}

	analyze := sshtest.RequireTool(t, "systemd-analyze")
	// verify wants ExecStart's program to exist: point it at this binary.
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	copyExecutable(t, os.Args[0], bin)
	text, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "sluice.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(text), "/usr/local/bin/sluice", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v: %s", err, out)
	}
}
