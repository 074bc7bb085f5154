package tempfork

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/crypto/nacl/secretbox"
)

// TestWholeModuleImports uses packages the gateway does not, which the
// earlier partial copy could not provide: the replacement must serve all of
// x/crypto. The RFC 5869 test case A.1 pins hkdf's output.
func TestWholeModuleImports(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	salt := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	info := []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9}
	okm := make([]byte, 4)
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, salt, info), okm); err != nil {
		t.Fatal(err)
	}
	if got, want := okm, []byte{0x3c, 0xb2, 0x5f, 0x25}; !bytes.Equal(got, want) {
		t.Errorf("hkdf (RFC 5869 A.1): got %x, want %x", got, want)
	}
	if k := argon2.IDKey([]byte("p"), []byte("saltsalt"), 1, 8, 1, 32); len(k) != 32 {
		t.Errorf("argon2: got %d bytes, want 32", len(k))
	}
	var key [32]byte
	var nonce [24]byte
	box := secretbox.Seal(nil, []byte("x"), &nonce, &key)
	if out, ok := secretbox.Open(nil, box, &nonce, &key); !ok || string(out) != "x" {
		t.Errorf("secretbox: got %q, %v; want \"x\", true", out, ok)
	}
}

// checkStale runs scripts/xcrypto-fork.sh check-stale with the UPSTREAM
// file upstream and returns its output and whether it passed. It skips the
// test when the module proxy cannot be asked, unless SLUICE_INTEROP=require.
func checkStale(t *testing.T, upstream string) (string, bool) {
	t.Helper()
	script, err := filepath.Abs("../../scripts/xcrypto-fork.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, "check-stale")
	cmd.Env = append(os.Environ(), "XCRYPTO_UPSTREAM="+upstream)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "cannot ask the module proxy") {
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatalf("SLUICE_INTEROP=require: %s", out)
		}
		t.Skipf("module proxy unreachable: %s", out)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return string(out), err == nil
}

// TestForkIsNewest fails once the module proxy serves an x/crypto newer
// than the fork's UPSTREAM: time to run scripts/xcrypto-fork.sh update.
func TestForkIsNewest(t *testing.T) {
	up, err := filepath.Abs("xcrypto/UPSTREAM")
	if err != nil {
		t.Fatal(err)
	}
	if out, ok := checkStale(t, up); !ok {
		t.Errorf("the fork is stale:\n%s", out)
	}
}

// TestStaleForkFails points the check at an UPSTREAM of an older release
// (v0.58.0, the fork's previous base), which it must reject.
func TestStaleForkFails(t *testing.T) {
	up := filepath.Join(t.TempDir(), "UPSTREAM")
	if err := os.WriteFile(up, []byte("module: golang.org/x/crypto\nversion: v0.58.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok := checkStale(t, up)
	if ok {
		t.Fatalf("check-stale passed with UPSTREAM at v0.58.0:\n%s", out)
	}
	if !strings.Contains(out, "the fork is at v0.58.0") {
		t.Errorf("got %q, want it to name the stale version v0.58.0", out)
	}
}
