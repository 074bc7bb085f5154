package sftpproxy

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// TestRelayThinsRefusalFlood: a client that loops on a denied request
// (100,000 OPENs of a denied path, pipelined) gets every one refused, but
// the channel's audit holds the first refusalsAudited, then one per power
// of two with the running count, and at the end the total; a refusal of
// another operation is counted apart and audited in full.
func TestRelayThinsRefusalFlood(t *testing.T) {
	const n = 100000
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pol := permissive()
	pol.DenyPaths = []string{filepath.Join(dir, "secret")}
	s := &sink{}
	c, done := rawSessionAudited(t, pol, Peers{}, dir, s, nil)
	denied := filepath.Join(dir, "secret", "key")
	start := time.Now()
	writeErr := make(chan error, 1)
	go func() {
		open := packet(fxpOpen, 0, str(denied), appendU32(nil, fxfRead), appendU32(nil, 0))
		for id := uint32(1); id <= n; id++ {
			copy(open[5:9], appendU32(nil, id))
			if _, err := c.Write(open); err != nil {
				writeErr <- err
				return
			}
		}
		_, err := c.Write(packet(fxpStat, n+1, str(denied)))
		writeErr <- err
	}()
	var buf []byte
	for i := 0; i <= n; i++ {
		var pkt []byte
		if pkt, buf, err = readPacket(c, buf); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		resp, err := parseResponse(pkt[4:])
		if err != nil || resp.typ != fxpStatus || resp.status != fxPermissionDenied {
			t.Fatalf("response %d: got %+v, %v; want STATUS permission denied", i, resp, err)
		}
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d refusals answered in %v", n+1, time.Since(start).Round(time.Millisecond))
	c.Close()
	<-done

	rule := "services[svc].policy.subsystems.sftp.deny_paths[0]"
	opens := s.Events("sftp.open")
	// 1..16 one by one, then 32, 64, ..., 65536 (12 of them), then the
	// total at the end.
	if want := refusalsAudited + 12 + 1; len(opens) != want {
		t.Fatalf("got %d sftp.open events for %d refusals, want %d", len(opens), n, want)
	}
	for i, e := range opens {
		if e.Verdict != audit.Reject || e.Rule != rule || e.Detail["path"] != denied {
			t.Fatalf("event %d: got %+v, want a refusal of %s by %s", i, e, denied, rule)
		}
		want, has := any(nil), false
		switch {
		case i >= refusalsAudited && i < len(opens)-1:
			want, has = int64(1)<<(i-refusalsAudited+5), true
		case i == len(opens)-1:
			want, has = int64(n), true
		}
		if got, ok := e.Detail["refused"]; ok != has || got != want {
			t.Errorf("event %d: got refused %v, want %v", i, got, want)
		}
	}
	if stats := s.Events("sftp.stat"); len(stats) != 1 || stats[0].Verdict != audit.Reject || stats[0].Detail["refused"] != nil {
		t.Errorf("got sftp.stat events %+v, want the one refusal in full", stats)
	}
}
