package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/pgtest"

	"github.com/jackc/pgx/v5"
)

// tamperCorpus writes 5 events (rows 1..5), the fourth a session.end that
// lists a recording file, and returns that file's path.
func tamperCorpus(t testing.TB, s Store) string {
	t.Helper()
	ctx := context.Background()
	rec := filepath.Join(t.TempDir(), "rec.cast")
	content := []byte("{\"version\":2}\n[0.1,\"o\",\"hello\"]\n")
	if err := os.WriteFile(rec, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	end := ev(3, TypeSessionEnd, "gw1/ssh-in:1", "alice", "")
	end.Detail = map[string]any{DetailRecordings: []map[string]string{{"path": rec, "sha256": hex.EncodeToString(sum[:])}}}
	for _, e := range []Event{
		ev(0, TypeSessionStart, "gw1/ssh-in:1", "alice", Accept),
		ev(1, "exec", "gw1/ssh-in:1/ssh/session:0", "alice", Accept),
		ev(2, "exec", "gw1/ssh-in:1/ssh/session:0", "alice", Reject),
		end,
		ev(4, "auth", "gw1/ssh-in:2", "bob", Reject),
	} {
		if err := s.Write(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return rec
}

// wantBreak verifies s and checks the first break is at where and its
// problem contains problem; where "" wants no break.
func wantBreak(t *testing.T, s Store, where, problem string) {
	t.Helper()
	v, err := Verify(context.Background(), s, nil)
	if err != nil {
		t.Fatalf("Verify: got error %v, want a result", err)
	}
	switch {
	case where == "" && v.Break != nil:
		t.Fatalf("Verify: got break %s, want none", v.Break)
	case where == "":
		if v.Recordings != 1 {
			t.Errorf("Verify: got %d recordings checked, want 1", v.Recordings)
		}
	case v.Break == nil:
		t.Fatalf("Verify: got no break (%+v), want one at %s", v, where)
	case v.Break.Where != where || !strings.Contains(v.Break.Problem, problem):
		t.Fatalf("Verify: got break %s, want one at %s saying %q", v.Break, where, problem)
	}
}

// TestVerifyTamperSQL edits the rows of real SQLite and PostgreSQL stores
// the way an intruder with write access to the database would.
func TestVerifyTamperSQL(t *testing.T) {
	ctx := context.Background()
	kinds := map[string]func(t *testing.T) (Store, func(q string)){
		"sqlite": func(t *testing.T) (Store, func(q string)) {
			dir := t.TempDir()
			s, err := Open(ctx, "sqlite", dir, "gw1")
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return s, func(q string) {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		},
		"postgres": func(t *testing.T) (Store, func(q string)) {
			dsn := pgtest.Schema(t)
			s, err := Open(ctx, dsn, "", "gw1")
			if err != nil {
				t.Fatal(err)
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close(ctx) })
			return s, func(q string) {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		},
	}
	tests := []struct {
		name           string
		tamper         string // SQL; REC stands for the recording's path
		where, problem string
	}{
		{"untouched", "", "", ""},
		{"row JSON edited", `UPDATE events SET data = replace(data::text, '"user":"alice"', '"user":"mallory"')::DATA WHERE id = 3`, "row 3", "was changed"},
		{"row JSON and column edited", `UPDATE events SET user_name = 'mallory', data = replace(data::text, '"user":"alice"', '"user":"mallory"')::DATA WHERE id = 3`, "row 3", "was changed"},
		{"indexed column edited", `UPDATE events SET user_name = 'mallory' WHERE id = 2`, "row 2", "column user_name"},
		{"verdict column edited", `UPDATE events SET verdict = 'accept' WHERE id = 3`, "row 3", "column verdict"},
		{"row deleted", `DELETE FROM events WHERE id = 2`, "row 3", "1 events missing"},
		{"last row deleted", `DELETE FROM events WHERE id = 5`, "chain_heads", "seq 5 but its last event has seq 4"},
		{"link removed", `UPDATE events SET data = regexp_replace(data::text, ',"chain":.*}$', '}')::DATA WHERE id = 4`, "row 4", "without a chain link"},
		{"recording modified", "APPEND", "row 4", "(modified)"},
		{"recording deleted", "REMOVE", "row 4", "no such file"},
	}
	for kind, open := range kinds {
		t.Run(kind, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s, exec := open(t)
					defer s.Close()
					rec := tamperCorpus(t, s)
					wantBreak(t, s, "", "")
					switch q := tt.tamper; {
					case q == "APPEND":
						f, err := os.OpenFile(rec, os.O_WRONLY|os.O_APPEND, 0)
						if err != nil {
							t.Fatal(err)
						}
						f.WriteString("[0.2,\"o\",\"forged\"]\n")
						f.Close()
					case q == "REMOVE":
						if err := os.Remove(rec); err != nil {
							t.Fatal(err)
						}
					case q != "":
						if kind == "sqlite" {
							q = strings.ReplaceAll(strings.ReplaceAll(q, "::text", ""), "::DATA", "")
							q = strings.ReplaceAll(q, "regexp_replace(data, ',\"chain\":.*}$', '}')", "substr(data, 1, instr(data, ',\"chain\":') - 1) || '}'")
						} else {
							q = strings.ReplaceAll(q, "::DATA", "::json")
						}
						exec(q)
					}
					wantBreak(t, s, tt.where, tt.problem)
				})
			}
		})
	}
}

// TestVerifyTamperJSONL edits the lines of a real JSON lines store.
func TestVerifyTamperJSONL(t *testing.T) {
	tests := []struct {
		name           string
		edit           func(lines []string) []string
		where, problem string
	}{
		{"untouched", func(l []string) []string { return l }, "", ""},
		{"line edited", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"user":"alice"`, `"user":"mallory"`, 1)
			return l
		}, "line 3", "was changed"},
		{"line deleted", func(l []string) []string { return append(l[:1], l[2:]...) }, "line 2", "1 events missing"},
		{"lines swapped", func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, "line 2", "seq 3 follows seq 1"},
		{"torn line added", func(l []string) []string { return append(l[:2], append([]string{`{"time":"20`}, l[2:]...)...) }, "", ""},
		{"line duplicated", func(l []string) []string { return append(l[:2], append([]string{l[1]}, l[2:]...)...) }, "line 3", "does not follow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			s, err := OpenJSONL(path, "gw1")
			if err != nil {
				t.Fatal(err)
			}
			tamperCorpus(t, s)
			s.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := tt.edit(strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = OpenJSONL(path, "gw1")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			wantBreak(t, s, tt.where, tt.problem)
		})
	}
}

// FuzzVerifyJSONL verifies arbitrary JSON lines files: Verify reports a
// break or none, and never fails to read a readable file or panics.
func FuzzVerifyJSONL(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.jsonl")
	s, err := OpenJSONL(seed, "gw1")
	if err != nil {
		f.Fatal(err)
	}
	tamperCorpus(f, s)
	s.Close()
	b, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("null\n{}\n{\"chain\":{\"gateway\":\"gw1\",\"seq\":1,\"hash\":\"\"}}\n"))
	f.Add([]byte(`{"chain":{"gateway":"gw1","seq":1,"hash":"` + strings.Repeat("0", 64) + `"}}` + "\n"))
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		path := filepath.Join(dir, "f"+strconv.Itoa(n)+".jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		s, err := OpenJSONL(path, "gw1")
		if err != nil {
			return // e.g. a stored head with a malformed hash
		}
		defer s.Close()
		if _, err := Verify(context.Background(), s, nil); err != nil {
			t.Errorf("Verify: got %v, want a result", err)
		}
	})
}
