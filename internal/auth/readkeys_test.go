package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPublicKeysRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, content, wantErr string }{
		{"empty", "# nothing\n\n", "no keys"},
		{"garbage", "ssh-ed25519 not-base64!\n", ":1:"},
		// A bad line after a good one is an error, not a shorter list.
		{"bad second line", testKey + "\nssh-ed25519 AAAA-broken\n", ":2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadPublicKeys(p)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadPublicKeys: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
