package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// TestUpstreamReuse drives upstream.reuse with OpenSSH on both legs: the
// second connection of the same user runs on the upstream connection the
// first one left (sshd sees the same source port), audited as reused; a
// connection that used remote forwarding is not kept.
func TestUpstreamReuse(t *testing.T) {
	w := newWorld(t, worldOptions{
		upstream: "      reuse: 30s\n",
		policy:   defaultPolicy + "      forward_remote: true\n",
	})
	ended := 0
	// upstreamPort runs one session and returns the gateway's source port
	// on the target, from sshd's SSH_CONNECTION. It waits for the
	// session's end in the audit: the connection is kept just before.
	upstreamPort := func(opts ...string) string {
		t.Helper()
		r := w.ssh(opts, "echo $SSH_CONNECTION")
		f := strings.Fields(r.stdout)
		if r.code != 0 || len(f) != 4 {
			t.Fatalf("got exit %d stdout %q stderr %q, want SSH_CONNECTION", r.code, r.stdout, r.stderr)
		}
		ended++
		deadline := time.Now().Add(5 * time.Second)
		for len(w.events("session.end", nil)) < ended && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		return f[1]
	}

	first := upstreamPort()
	second := upstreamPort()
	if first != second {
		t.Fatalf("second session came from port %s, first from %s: want the upstream connection reused", second, first)
	}
	reused := func(e audit.Event) bool { return e.Detail["reused"] == true }
	ups := w.events("upstream", reused)
	if len(ups) != 1 || ups[0].Detail["uses"] != float64(2) || ups[0].User != "alice" {
		t.Fatalf("got reused upstream events %+v, want one for alice with uses 2", ups)
	}
	if cs := w.events("connect", reused); len(cs) != 1 || cs[0].Verdict != audit.Accept {
		t.Fatalf("got reused connect events %+v, want one accepted", cs)
	}

	// This one takes the kept connection too, but asks for a remote
	// forward: the target keeps state for it, so it is closed after.
	third := upstreamPort("-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9")
	if third != first {
		t.Fatalf("third session came from port %s, want the kept connection %s", third, first)
	}
	if fourth := upstreamPort(); fourth == third {
		t.Fatalf("fourth session reused the connection that carried a remote forward (port %s)", fourth)
	}
}
