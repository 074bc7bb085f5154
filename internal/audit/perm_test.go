package audit

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFileModes opens each file store under a permissive umask and checks
// that every file it made is 0600 and every directory 0700, the SQLite
// -wal and -shm files included.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	ctx := context.Background()
	for _, sink := range []string{"sqlite", "jsonl:logs/events.jsonl"} {
		t.Run(sink, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			s, err := Open(ctx, sink, state, "gw1")
			if err != nil {
				t.Fatalf("Open: got %v, want nil", err)
			}
			if err := s.Write(ctx, ev(0, TypeSessionStart, "gw1/ssh-in:1", "alice", Accept)); err != nil {
				t.Fatalf("Write: got %v, want nil", err)
			}
			// While open: SQLite's -wal and -shm exist now.
			checkModes(t, state)
			if sink == "sqlite" {
				for _, f := range []string{"audit.db-wal", "audit.db-shm"} {
					if _, err := os.Stat(filepath.Join(state, f)); err != nil {
						t.Errorf("%s: got %v, want the file while the store is open", f, err)
					}
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSQLiteTightensOldModes reopens a database whose files an older
// version left 0644 and checks they are 0600 afterwards.
func TestSQLiteTightensOldModes(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "state")
	s, err := Open(ctx, "sqlite", state, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := filepath.Join(state, "audit.db")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(ctx, "sqlite", state, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkModes(t, state)
}

// checkModes fails t for every file under root not 0600 and every
// directory not 0700.
func checkModes(t *testing.T, root string) {
	t.Helper()
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %#o, want %#o", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
