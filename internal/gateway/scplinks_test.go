package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
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
	okSum := writeRandom(t, filepath.Join(pub, "tree", "ok.bin"), 3000)
	symlinks(t, dir, map[string]string{
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
	if ents, err := os.ReadDir(secret); err != nil || len(ents) != 1 {
		t.Fatalf("secret: got %v, %v; want key alone", ents, err)
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
	if r := w.scpO(src, "127.0.0.1:"+dst); r.code == 0 || exists(dst) {
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
