package gateway

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
)

// reloadWith rewrites the world's config with replace applied and reloads.
func (w *world) reloadWith(t *testing.T, old, new string) error {
	t.Helper()
	path := filepath.Join(w.dir, "sluice.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("config has no %q", old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return w.gw.Reload(context.Background(), cfg)
}

func TestReloadEndsSessionsNoLongerAllowed(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"end", "finish"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t, worldOptions{service: "    on_reload: " + mode + "\n"})
			client := w.dial(t, w.aliceConfig(t))
			defer client.Close()
			rtt := echoSession(t, client)
			rtt()
			if err := w.reloadWith(t, "client_zones: [office]", "client_zones: [elsewhere]"); err != nil {
				t.Fatalf("reload: %v", err)
			}
			evs := w.events(EventReload, nil)
			if len(evs) != 1 || evs[0].Rule != "services[ssh-in].on_reload" || evs[0].Detail["on_reload"] != mode {
				t.Fatalf("got reload events %+v, want one by services[ssh-in].on_reload with on_reload %s", evs, mode)
			}
			switch ended := endsWithin(client, 2*time.Second); {
			case ended && mode == "finish":
				t.Fatal("finish: the live session was ended, want it kept")
			case !ended && mode == "end":
				t.Fatal("end: the live session still runs 2s after the reload")
			case !ended:
				rtt()
			}
			// New connections get the new client_zones.
			addr := w.gw.Addr("ssh-in").String()
			nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}}).Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, _, _, err := ssh.NewClientConn(nc, addr, w.aliceConfig(t)); err == nil {
				t.Fatal("new connection from office after the reload: got a session, want refused")
			}
			refused := w.events("connection", func(e audit.Event) bool {
				return e.Verdict == audit.Reject && e.Rule == "services[ssh-in].client_zones"
			})
			if len(refused) != 1 {
				t.Fatalf("got %d refusals by client_zones, want 1", len(refused))
			}
		})
	}
}
