package hostkey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestLoadOrGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	types := []string{"ed25519", "ecdsa", "rsa"}
	first, err := LoadOrGenerate(dir, types)
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSA}
	if len(first) != len(wantTypes) {
		t.Fatalf("got %d keys, want %d", len(first), len(wantTypes))
	}
	for i, s := range first {
		if got := s.PublicKey().Type(); got != wantTypes[i] {
			t.Errorf("key %d: got type %s, want %s", i, got, wantTypes[i])
		}
	}
	for _, typ := range types {
		st, err := os.Stat(filepath.Join(dir, "ssh_host_"+typ+"_key"))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %#o, want 0600", typ, got)
		}
	}
	again, err := LoadOrGenerate(dir, types)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if got, want := ssh.FingerprintSHA256(again[i].PublicKey()), ssh.FingerprintSHA256(first[i].PublicKey()); got != want {
			t.Errorf("key %d: got %s on second start, want the same key %s", i, got, want)
		}
	}
	if def, err := LoadOrGenerate(dir, nil); err != nil || len(def) != 1 || def[0].PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("default types: got %v, %v; want one ed25519 key", def, err)
	}
}

func TestLoadOrGenerateRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrGenerate(dir, []string{"dsa"}); err == nil {
		t.Error("got nil error for key type dsa, want one")
	}
	if _, err := LoadOrGenerate(dir, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrGenerate(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "0640") {
		t.Errorf("got %v, want an error naming mode 0640", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrGenerate(dir, nil); err == nil {
		t.Error("got nil error for a corrupt key file, want one")
	}
}
