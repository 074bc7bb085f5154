package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// symlinks makes each link (relative to dir) point at its target, as a
// shell or another service on the target would: the rcp protocol cannot
// make one, and SFTP links are off.
func symlinks(t *testing.T, dir string, links map[string]string) {
	t.Helper()
	for link, to := range links {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
}

// refusedFor reports whether r failed and told the client that name was
// denied by policy.
func refusedFor(t *testing.T, r result, name string) {
	t.Helper()
	if r.code == 0 || !strings.Contains(r.stderr, name+": denied by policy") {
		t.Fatalf("got exit %d, stderr %q; want %s denied by policy", r.code, r.stderr, name)
	}
}

// TestSCPLegacyThroughServerLinks: under deny_paths, with SFTP links off,
// links already on the server (made behind the gateway's back) do not
// take scp -O where the policy denies: a folder link to the denied
// folder, for a download of a file in it and for an upload into it, a
// file link to a denied file, and links inside a tree downloaded with
// -r. Each refusal is audited by the deny rule with the path the server
// would have used. A harmless link and plain transfers still work, and
// the gateway's own channel to the target's sftp subsystem shows as no
// client channel or session.
func TestSCPLegacyThroughServerLinks(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{deny_paths: ["%s/secret"], max_upload_size: 100000}`)
	pub, secret := filepath.Join(dir, "pub"), filepath.Join(dir, "secret")
	key := filepath.Join(secret, "key")
	for _, d := range []string{"inbox", "tree"} {
		if err := os.Mkdir(filepath.Join(pub, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(secret, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	okSum := writeRandom(t, filepath.Join(pub, "tree", "ok.bin"), 3000)
	symlinks(t, dir, map[string]string{
		"pub/deep":         "../secret/inner",
		"pub/tosecret":     "../secret",
		"pub/keylink":      key,
		"pub/alias":        "inbox",
		"pub/tree/leak":    key,
		"pub/tree/leakdir": secret,
	})
	src := filepath.Join(w.dir, "up.bin")
	want := writeRandom(t, src, 5000)
	deny := "services[ssh-in].policy.subsystems.sftp.deny_paths[0]"
	rejected := func(typ, path, resolved string) {
		t.Helper()
		evs := w.events(typ, func(e audit.Event) bool { return e.Verdict == audit.Reject && e.Detail["path"] == path })
		if len(evs) != 1 || evs[0].Rule != deny || evs[0].Detail["path_resolved"] != resolved {
			t.Fatalf("got %+v; want one %s refused by %s with path %s resolved to %s", evs, typ, deny, path, resolved)
		}
	}

	// (a) A file in the denied folder, named through a link to it.
	stolen := filepath.Join(w.dir, "stolen")
	refusedFor(t, w.scpO("127.0.0.1:"+filepath.Join(pub, "tosecret", "key"), stolen), "key")
	rejected("scp.download", filepath.Join(pub, "tosecret", "key"), key)

	// (a') ".." after a link is resolved from the link's target, as the
	// kernel does: pub/deep/../key is secret/key, not pub/key.
	refusedFor(t, w.scpO("127.0.0.1:"+pub+"/deep/../key", stolen), "key")
	rejected("scp.download", filepath.Join(pub, "key"), key)
	refusedFor(t, w.scpO(src, "127.0.0.1:"+pub+"/deep/../"), "up.bin")
	rejected("scp.upload", filepath.Join(pub, "up.bin"), filepath.Join(secret, "up.bin"))

	// (b) Into the denied folder through the link, as a folder (trailing
	// slash) and as a target that may be a folder or a new name.
	refusedFor(t, w.scpO(src, "127.0.0.1:"+filepath.Join(pub, "tosecret")+"/"), "up.bin")
	rejected("scp.upload", filepath.Join(pub, "tosecret", "up.bin"), filepath.Join(secret, "up.bin"))
	refusedFor(t, w.scpO(src, "127.0.0.1:"+filepath.Join(pub, "tosecret")), "up.bin")
	evs := w.events("scp.upload", func(e audit.Event) bool { return e.Detail["path"] == filepath.Join(pub, "tosecret") })
	if len(evs) != 1 || evs[0].Verdict != audit.Reject || evs[0].Rule != deny || evs[0].Detail["path_resolved"] != secret ||
		evs[0].Detail["alt_path_resolved"] != filepath.Join(secret, "up.bin") {
		t.Fatalf("got %+v; want the upload to the link refused with both paths resolved into %s", evs, secret)
	}
	// Over a file link to the denied file: scp opens it with O_CREAT,
	// which follows the link.
	refusedFor(t, w.scpO(src, "127.0.0.1:"+filepath.Join(pub, "keylink")), "up.bin")
	rejected("scp.upload", filepath.Join(pub, "keylink"), key)
	if ents, err := os.ReadDir(secret); err != nil || len(ents) != 2 || ents[0].Name() != "inner" || ents[1].Name() != "key" {
		t.Fatalf("secret: got %v, %v; want inner and key alone", ents, err)
	}
	if got, err := os.ReadFile(key); err != nil || string(got) != "content of secret/key\n" {
		t.Fatalf("secret/key: got %q, %v; want it unchanged", got, err)
	}

	// (c) A file link to a denied file, by its own name.
	refusedFor(t, w.scpO("127.0.0.1:"+filepath.Join(pub, "keylink"), stolen), "keylink")
	rejected("scp.download", filepath.Join(pub, "keylink"), key)

	// (d) A tree holding a link to the denied file and one to the denied
	// folder: the rest arrives, the links' targets do not.
	back := filepath.Join(w.dir, "back")
	r := w.scpO("-r", "127.0.0.1:"+filepath.Join(pub, "tree"), back)
	refusedFor(t, r, "leak")
	refusedFor(t, r, "leakdir")
	rejected("scp.download", filepath.Join(pub, "tree", "leak"), key)
	rejected("scp.opendir", filepath.Join(pub, "tree", "leakdir"), secret)
	if fileSum(t, filepath.Join(back, "ok.bin")) != okSum {
		t.Fatal("tree/ok.bin did not arrive beside the refused links")
	}
	for _, p := range []string{stolen, filepath.Join(back, "leak"), filepath.Join(back, "leakdir")} {
		if exists(p) {
			t.Fatalf("%s exists: a transfer through a link went through", p)
		}
	}

	// (e) Plain transfers, and one through a harmless link, still work
	// and are audited with their sha256; the resolved path is audited
	// where it differs.
	if r := w.scpO(src, "127.0.0.1:"+pub+"/"); r.code != 0 || fileSum(t, filepath.Join(pub, "up.bin")) != want {
		t.Fatalf("scp -O upload: exit %d: %s", r.code, r.stderr)
	}
	if !w.scpAudited("scp.upload", filepath.Join(pub, "up.bin"), want) {
		t.Fatal("got no scp.upload of pub/up.bin with its sha256")
	}
	a, got := filepath.Join(pub, "a.txt"), filepath.Join(w.dir, "a.txt")
	if r := w.scpO("127.0.0.1:"+a, got); r.code != 0 || fileSum(t, got) != fileSum(t, a) {
		t.Fatalf("scp -O download: exit %d: %s", r.code, r.stderr)
	}
	if !w.scpAudited("scp.download", a, fileSum(t, a)) {
		t.Fatal("got no scp.download of pub/a.txt with its sha256")
	}
	if r := w.scpO(src, "127.0.0.1:"+filepath.Join(pub, "alias")+"/"); r.code != 0 || fileSum(t, filepath.Join(pub, "inbox", "up.bin")) != want {
		t.Fatalf("scp -O upload through a harmless link: exit %d: %s", r.code, r.stderr)
	}
	evs = w.events("scp.upload", func(e audit.Event) bool {
		return e.Verdict == audit.Accept && e.Detail["path"] == filepath.Join(pub, "alias", "up.bin")
	})
	if len(evs) != 1 || evs[0].Detail["path_resolved"] != filepath.Join(pub, "inbox", "up.bin") {
		t.Fatalf("got %+v; want one upload through alias, resolved to inbox/up.bin", evs)
	}
	for _, e := range w.events("scp.download", nil) {
		if _, ok := e.Detail["path_resolved"]; ok && e.Verdict == audit.Accept {
			t.Fatalf("got %+v; want no path_resolved where the path leads to itself", e)
		}
	}

	// The side channels: no client channel or session of their own.
	starts := w.events("session.start", nil)
	chans := w.events("channel", nil)
	if len(chans) != len(starts) {
		t.Fatalf("got %d channel events for %d connections; want one each (the side channel is not a client's)", len(chans), len(starts))
	}
	all, err := w.gw.Store().Query(t.Context(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if strings.HasSuffix(e.SessionID, "/sftp") {
			t.Fatalf("got %+v; want no sftp session of the gateway's own channel", e)
		}
	}
}

// TestSCPLegacyNeedsTargetSFTP: a target without an sftp subsystem cannot
// say where paths lead, so scp -O under path rules is refused before it
// starts, with the reason and the rule that needs it; without path rules
// it runs, and no channel is opened beside it.
func TestSCPLegacyNeedsTargetSFTP(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorldWith(t, `{deny_paths: ["%s/secret"]}`, worldOptions{noSFTP: true})
	src := filepath.Join(w.dir, "up.bin")
	want := writeRandom(t, src, 5000)
	dst := filepath.Join(dir, "pub", "up.bin")
	if r := w.scpO(src, "127.0.0.1:"+dst); r.code == 0 || exists(dst) || !strings.Contains(r.stderr, "sluice: denied by policy") {
		t.Fatalf("scp -O under path rules to a target without sftp: got exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
	a := filepath.Join(dir, "pub", "a.txt")
	if r := w.scpO("127.0.0.1:"+a, filepath.Join(w.dir, "a.txt")); r.code == 0 {
		t.Fatalf("scp -O download under path rules to a target without sftp: got exit 0, want a refusal (stderr %q)", r.stderr)
	}
	evs := w.events("exec", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(evs) != 2 {
		t.Fatalf("got %+v, want two exec refusals", evs)
	}
	for _, e := range evs {
		if e.Rule != "services[ssh-in].policy.subsystems.sftp.deny_paths" || !strings.Contains(e.Reason, "scp under path rules needs the target's sftp subsystem to resolve links") {
			t.Fatalf("got %s %q, want the deny_paths rule and the reason", e.Rule, e.Reason)
		}
	}
	if evs := w.events("scp.upload", nil); len(evs) != 0 {
		t.Fatalf("got %+v, want no scp event: the target's scp never ran", evs)
	}
	if log := w.sshd.Log(t); !strings.Contains(log, "subsystem request for sftp") {
		t.Fatal("the target's log has no subsystem request for sftp: what refused scp?")
	}

	w, dir = sftpWorldWith(t, `{max_upload_size: 100000}`, worldOptions{noSFTP: true})
	dst = filepath.Join(dir, "pub", "up.bin")
	if r := w.scpO(src, "127.0.0.1:"+dst); r.code != 0 || fileSum(t, dst) != want {
		t.Fatalf("scp -O without path rules to a target without sftp: exit %d: %s", r.code, r.stderr)
	}
	if !w.scpAudited("scp.upload", dst, want) {
		t.Fatal("got no scp.upload with its sha256")
	}
	if log := w.sshd.Log(t); strings.Contains(log, "subsystem request for sftp") {
		t.Fatal("the target was asked for its sftp subsystem without path rules")
	}
}

// TestSCPLegacyResolveCost measures, when SLUICE_BENCH=1, what resolving
// paths through the target costs scp -O: a tree of 200 small files up
// (-r) and down again, under deny_paths (each record resolved through
// the gateway's sftp channel) and without path rules (decided on names
// alone), rounds alternating between the two; docs/benchmarks.md has the
// figures. newWorld wants a *testing.T, hence a test.
func TestSCPLegacyResolveCost(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") != "1" {
		t.Skip("set SLUICE_BENCH=1 to measure")
	}
	const files, rounds = 200, 7
	type run struct {
		name     string
		w        *world
		dir      string
		up, down []time.Duration
	}
	runs := []*run{{name: "deny_paths (resolved)"}, {name: "no path rules"}}
	runs[0].w, runs[0].dir = sftpWorld(t, `{deny_paths: ["%s/secret"]}`)
	runs[1].w, runs[1].dir = sftpWorld(t, `{}`)
	for _, r := range runs {
		tree := filepath.Join(r.w.dir, "tree")
		if err := os.Mkdir(tree, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range files {
			writeRandom(t, filepath.Join(tree, fmt.Sprintf("f%03d", i)), 1024)
		}
	}
	timed := func(w *world, args ...string) time.Duration {
		t.Helper()
		t0 := time.Now()
		if res := w.scpO(args...); res.code != 0 {
			t.Fatalf("scp -O %q: exit %d: %s", args, res.code, res.stderr)
		}
		return time.Since(t0)
	}
	for i := range rounds {
		for _, r := range runs {
			dst := filepath.Join(r.dir, "pub", fmt.Sprint(i))
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			r.up = append(r.up, timed(r.w, "-r", filepath.Join(r.w.dir, "tree"), "127.0.0.1:"+dst+"/"))
			r.down = append(r.down, timed(r.w, "-r", "127.0.0.1:"+filepath.Join(dst, "tree"), filepath.Join(r.w.dir, fmt.Sprint("back", i))))
		}
	}
	// median and spread round to unit.
	median := func(ds []time.Duration, unit time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2].Round(unit)
	}
	spread := func(ds []time.Duration, unit time.Duration) string {
		return fmt.Sprintf("%v–%v", slices.Min(ds).Round(unit), slices.Max(ds).Round(unit))
	}
	ms := time.Millisecond
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("scp -O -r of %d files of 1 KiB, %d rounds; load average %s", files, rounds, strings.TrimSpace(string(load)))
	for _, r := range runs {
		t.Logf("  %-22s upload median %v (%s), download median %v (%s)", r.name, median(r.up, ms), spread(r.up, ms), median(r.down, ms), spread(r.down, ms))
	}

	// What the gateway adds, alone: the side channel's setup per scp
	// session, and one REALPATH per path, on a connection to the same
	// sshd as the gateway's upstream one.
	w := runs[0].w
	key, err := os.ReadFile(filepath.Join(w.dir, "upstream_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ssh.Dial("tcp", w.sshd.Addr, sshtest.ClientConfig(w.osUser, signer, w.sshd.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var setups, calls []time.Duration
	for range 20 {
		t0 := time.Now()
		c, err := sftp.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		setups = append(setups, time.Since(t0))
		for i := range 100 {
			t0 := time.Now()
			if _, err := c.RealPath(filepath.Join(runs[0].dir, "pub", "0", "tree", fmt.Sprintf("f%03d", i))); err != nil {
				t.Fatal(err)
			}
			calls = append(calls, time.Since(t0))
		}
		c.Close()
	}
	t.Logf("  sftp channel, subsystem and INIT: median %v (%s); one REALPATH: median %v (%s)", median(setups, ms), spread(setups, ms),
		median(calls, time.Microsecond), spread(calls, time.Microsecond))
}

// TestSCPResolverReleasedOnRefusal: under path rules an scp -O exec gets
// the target's sftp subsystem on a channel of the gateway's own before
// the step-up decides; when the step-up then refuses the exec, that
// channel is closed. OpenSSH's sshd serves at most MaxSessions (10)
// sessions per connection: had the channels of refused requests stayed
// open, the client's 11th session would find no room on the target
// (which is how this test fails without the release), or its request
// would be refused for want of the sftp subsystem instead of by the
// step-up.
func TestSCPResolverReleasedOnRefusal(t *testing.T) {
	t.Parallel()
	w, _, ci := mfaWorldOn(t, "{required_for: [subsystem:sftp]}", `      exec: {allow: ["echo .*", "scp( .*)?"]}
      subsystems:
        sftp: {deny_paths: ["/etc/**"]}
`, false)
	client := w.dial(t, w.keyConfig(t, ci, w.login("ci")))
	defer client.Close()
	const n = 14
	target := filepath.Join(w.dir, "uploaded")
	for i := range n {
		s, err := client.NewSession()
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if err := s.Start("scp -t " + target); err == nil {
			t.Fatalf("scp -t %d: started, want refused by the step-up", i)
		}
		s.Close()
	}
	if out := runOn(t, client, "echo still"); out != "still\n" {
		t.Fatalf("echo after the refusals: got %q", out)
	}
	// Refusals of one rule on a connection are audited the 1st, 2nd, 4th
	// and 8th time; a refusal by any other rule would be audited as the
	// first of its own.
	evs := w.events("exec", func(e audit.Event) bool { return e.User == "ci" && e.Verdict == audit.Reject })
	if len(evs) != 4 {
		t.Fatalf("got %d refused exec events, want 4 (14 refusals of one rule, thinned): %+v", len(evs), evs)
	}
	for _, e := range evs {
		if e.Rule != "services[ssh-in].mfa.required_for" {
			t.Fatalf("refusal %+v: want rule services[ssh-in].mfa.required_for (a refusal for want of the sftp subsystem means earlier side channels stayed open)", e)
		}
	}
}
