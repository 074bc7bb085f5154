package gateway

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// scpO runs legacy scp (scp -O: "scp -t"/"scp -f" by exec) through the
// gateway with the extra arguments.
func (w *world) scpO(args ...string) result {
	w.t.Helper()
	a := append(w.args("scp"), "-O", "-o", "User="+w.target())
	return w.run(nil, "scp", append(a, args...)...)
}

// scpAudited reports whether one accepted scp event of type typ has path p
// and sha256 sum, in a session stacked as ".../session:N/scp".
func (w *world) scpAudited(typ, p string, sum [32]byte) bool {
	w.t.Helper()
	want := hex.EncodeToString(sum[:])
	return len(w.events(typ, func(e audit.Event) bool {
		return e.Verdict == audit.Accept && e.Detail["path"] == p && e.Detail["sha256"] == want &&
			e.Detail["result"] == "ok" && strings.Contains(e.SessionID, "/ssh/session:") && strings.HasSuffix(e.SessionID, "/scp")
	})) == 1
}

// TestSCPLegacyStacked moves files and a tree both ways with scp -O under
// a restrictive sftp policy: each file arrives intact and is audited once
// with the sha256 of its content.
func TestSCPLegacyStacked(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{deny_paths: ["%s/secret"], max_upload_size: 100000}`)
	src := filepath.Join(w.dir, "up.bin")
	want := writeRandom(t, src, 50000)
	pub := filepath.Join(dir, "pub")

	// Into a directory named with a trailing slash, and under a new name.
	if r := w.scpO(src, "127.0.0.1:"+pub+"/"); r.code != 0 {
		t.Fatalf("scp -O upload: exit %d: %s", r.code, r.stderr)
	}
	named := filepath.Join(pub, "named.bin")
	if r := w.scpO("-p", src, "127.0.0.1:"+named); r.code != 0 {
		t.Fatalf("scp -O -p upload: exit %d: %s", r.code, r.stderr)
	}
	for _, p := range []string{filepath.Join(pub, "up.bin"), named} {
		if got := fileSum(t, p); got != want {
			t.Fatalf("%s: got sha256 %x, want %x", p, got, want)
		}
		if !w.scpAudited("scp.upload", p, want) {
			t.Fatalf("got no scp.upload of %s with sha256 %x", p, want)
		}
	}
	a := filepath.Join(pub, "a.txt")
	got := filepath.Join(w.dir, "a.txt")
	if r := w.scpO("127.0.0.1:"+a, got); r.code != 0 || fileSum(t, got) != fileSum(t, a) {
		t.Fatalf("scp -O download: exit %d: %s", r.code, r.stderr)
	}
	if !w.scpAudited("scp.download", a, fileSum(t, a)) {
		t.Fatalf("got no scp.download of %s with its sha256", a)
	}

	// A tree up (-r -p) and back down (-r).
	tree := filepath.Join(w.dir, "tree")
	files := map[string][32]byte{}
	for _, f := range []string{"x.bin", "sub/y.bin", "sub/deeper/z.bin"} {
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		files[f] = writeRandom(t, filepath.Join(tree, f), 20000+len(f))
	}
	if r := w.scpO("-r", "-p", tree, "127.0.0.1:"+pub); r.code != 0 {
		t.Fatalf("scp -O -r upload: exit %d: %s", r.code, r.stderr)
	}
	back := filepath.Join(w.dir, "back")
	if r := w.scpO("-r", "127.0.0.1:"+filepath.Join(pub, "tree"), back); r.code != 0 {
		t.Fatalf("scp -O -r download: exit %d: %s", r.code, r.stderr)
	}
	for f, sum := range files {
		up := filepath.Join(pub, "tree", f)
		if fileSum(t, up) != sum || fileSum(t, filepath.Join(back, f)) != sum {
			t.Fatalf("%s: content differs after the round trip", f)
		}
		if !w.scpAudited("scp.download", up, sum) {
			t.Fatalf("got no scp.download of %s with its sha256", up)
		}
		// The target exists: the proxy cannot know whether the tree
		// lands in it or replaces it, and audits both paths.
		if len(w.events("scp.upload", func(e audit.Event) bool {
			return e.Detail["alt_path"] == up && e.Detail["sha256"] == hex.EncodeToString(sum[:])
		})) != 1 {
			t.Fatalf("got no scp.upload with alt_path %s and its sha256", up)
		}
	}
	if evs := w.events("scp.mkdir", func(e audit.Event) bool { return e.Verdict == audit.Accept }); len(evs) != 3 {
		t.Fatalf("got %d accepted scp.mkdir, want 3 (tree, sub, deeper): %+v", len(evs), evs)
	}
}

// TestSCPLegacyRefusals checks that scp -O cannot reach what the sftp
// policy denies: the client is told which file, and the server never sees
// it.
func TestSCPLegacyRefusals(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{deny_paths: ["%s/secret", "%s/pub/tree/hidden"], max_upload_size: 100000}`)
	pub, secret := filepath.Join(dir, "pub"), filepath.Join(dir, "secret")
	src := filepath.Join(w.dir, "up.bin")
	writeRandom(t, src, 5000)
	big := filepath.Join(w.dir, "big.bin")
	writeRandom(t, big, 300000)

	refused := func(r result, name string) {
		t.Helper()
		if r.code == 0 || !strings.Contains(r.stderr, name+": denied by policy") {
			t.Fatalf("got exit %d, stderr %q; want %s denied by policy", r.code, r.stderr, name)
		}
	}
	refused(w.scpO(src, "127.0.0.1:"+secret+"/"), "up.bin")
	refused(w.scpO(src, "127.0.0.1:"+filepath.Join(pub, "..", "secret", "x")), "up.bin")
	refused(w.scpO(big, "127.0.0.1:"+pub+"/"), "big.bin")
	stolen := filepath.Join(w.dir, "stolen")
	refused(w.scpO("127.0.0.1:"+filepath.Join(secret, "key"), stolen), "key")

	// A tree with a denied folder: the rest arrives, the folder does not.
	tree := filepath.Join(w.dir, "tree")
	for _, f := range []string{"ok.bin", "hidden/no.bin"} {
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeRandom(t, filepath.Join(tree, f), 1000)
	}
	refused(w.scpO("-r", tree, "127.0.0.1:"+pub+"/"), "hidden")

	for _, p := range []string{filepath.Join(secret, "up.bin"), filepath.Join(secret, "x"), filepath.Join(pub, "big.bin"), stolen, filepath.Join(pub, "tree", "hidden")} {
		if exists(p) {
			t.Fatalf("%s exists: a denied transfer went through", p)
		}
	}
	if !exists(filepath.Join(pub, "tree", "ok.bin")) {
		t.Fatal("tree/ok.bin did not arrive beside the denied folder")
	}
	rule := func(key string) string { return "services[ssh-in].policy.subsystems.sftp." + key }
	for typ, want := range map[string][]string{
		"scp.upload":   {rule("deny_paths[0]"), rule("deny_paths[0]"), rule("max_upload_size")},
		"scp.download": {rule("deny_paths[0]")},
		"scp.mkdir":    {rule("deny_paths[1]")},
	} {
		evs := w.events(typ, func(e audit.Event) bool { return e.Verdict == audit.Reject })
		var got []string
		for _, e := range evs {
			got = append(got, e.Rule)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s rejections: got rules %v, want %v", typ, got, want)
		}
	}

	// A relative path cannot be checked against deny_paths: refused
	// before scp runs.
	if r := w.scpO(src, "127.0.0.1:rel.bin"); r.code == 0 {
		t.Fatalf("scp -O to a relative path: got exit 0, want a refusal (stderr %q)", r.stderr)
	}
	evs := w.events("exec", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(evs) != 1 || evs[0].Rule != "services[ssh-in].policy.subsystems.sftp" {
		t.Fatalf("got %+v, want one exec refused for its relative path", evs)
	}
}
