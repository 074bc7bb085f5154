package console

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestVendoredAssets checks the vendored player against the SHA256SUMS
// that scripts/console-assets.sh wrote with it: a file edited by hand, or
// one the script was not run for, fails here (the script's --check
// fetches from npm again and compares byte for byte).
func TestVendoredAssets(t *testing.T) {
	sums, err := webFS.ReadFile("web/static/vendor/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(sums)) {
		want, name, ok := strings.Cut(strings.TrimSpace(line), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		b, err := webFS.ReadFile("web/static/vendor/" + name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := sha256.Sum256(b)
		if got := hex.EncodeToString(s[:]); got != want {
			t.Errorf("%s: sha256 %s, want %s (run scripts/console-assets.sh)", name, got, want)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("SHA256SUMS lists %d files, want the player's js and css", n)
	}
}
