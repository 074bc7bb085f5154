package console

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCredentialsFollowFiles: a running console keeps the parsed files
// while they are unchanged, and sees at once a token made by another
// process (`sluice console token` writes a new file and renames it over
// the old), a file removed, and a file damaged in place.
func TestCredentialsFollowFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "console")
	running := NewCredentials(dir, nil)
	if _, err := running.CheckToken("sluice_nothing"); !errors.Is(err, ErrNoToken) {
		t.Fatalf("no file: got %v, want ErrNoToken", err)
	}
	tok1, err := NewCredentials(dir, nil).NewToken("one", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := running.CheckToken(tok1); err != nil || name != "one" {
		t.Fatalf("token made elsewhere: got %q, %v", name, err)
	}
	path := filepath.Join(dir, "tokens.json")
	before, _ := os.Stat(path)
	tok2, err := NewCredentials(dir, nil).NewToken("two", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Fatal("NewToken rewrote tokens.json in place; the cache keys on its identity")
	}
	for tok, want := range map[string]string{tok1: "one", tok2: "two"} {
		if name, err := running.CheckToken(tok); err != nil || name != want {
			t.Errorf("after a second token: got %q, %v, want %s", name, err, want)
		}
	}
	// Damaged in place, with a new modification time: read again.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now(), after.ModTime().Add(time.Second))
	if _, err := running.CheckToken(tok1); err == nil || errors.Is(err, ErrNoToken) {
		t.Errorf("damaged tokens.json: got %v, want a parse error", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := running.CheckToken(tok1); !errors.Is(err, ErrNoToken) {
		t.Errorf("tokens.json removed: got %v, want ErrNoToken", err)
	}
}

// BenchmarkCheckToken is the cost a token adds to an API request with a
// hundred tokens on file: a stat and a hash, not a parse.
func BenchmarkCheckToken(b *testing.B) {
	c := NewCredentials(b.TempDir(), nil)
	var tok string
	for i := range 100 {
		t, err := c.NewToken("t"+string(rune('a'+i%26))+string(rune('a'+i/26)), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		tok = t
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CheckToken(tok); err != nil {
			b.Fatal(err)
		}
	}
}
