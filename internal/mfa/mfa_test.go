package mfa

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sluice-ssh/sluice/internal/auth"
)

func enrolled(t *testing.T) (*otp.Key, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "totp", "alice")
	key, err := Enrol(path, "Sluice gw1", "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	return key, path
}

func codeAt(t *testing.T, key *otp.Key, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(key.Secret(), at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrolWritesAPrivateFile(t *testing.T) {
	key, path := enrolled(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("got mode %#o, want 0600", m)
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Errorf("got folder mode %#o, want 0700", st.Mode().Perm())
	}
	read, err := ReadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if read.Secret() != key.Secret() || !strings.HasPrefix(key.URL(), "otpauth://totp/") {
		t.Errorf("got %q back from %q, want the same secret", read.URL(), key.URL())
	}
	if _, err := Enrol(path, "Sluice", "alice", false); err == nil {
		t.Error("got an existing secret replaced without replace, want refused")
	}
	again, err := Enrol(path, "Sluice", "alice", true)
	if err != nil || again.Secret() == key.Secret() {
		t.Errorf("replace: got %v, want a new secret", err)
	}
}

func TestReadSecretRefuses(t *testing.T) {
	_, path := enrolled(t)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecret(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable file: got %v, want a chmod 600 refusal", err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"hotp":     "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=1",
		"nosecret": "otpauth://totp/x?issuer=y",
		"garbage":  "\x00\x01not a uri",
		"long":     "otpauth://totp/x?secret=" + strings.Repeat("A", maxSecretFile),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSecret(p); err == nil {
			t.Errorf("%s: got nil error, want one", name)
		}
	}
}

func TestVerifierAcceptsEachCodeOnce(t *testing.T) {
	key, _ := enrolled(t)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(func() time.Time { return now })
	cur := codeAt(t, key, now)
	prev := codeAt(t, key, now.Add(-period*time.Second))
	old := codeAt(t, key, now.Add(-3*period*time.Second))
	wrong := "000000"
	if wrong == cur || wrong == prev {
		wrong = "999999"
	}
	for _, tc := range []struct {
		name, user, code string
		want             error
	}{
		{"empty", "alice", " ", ErrNoCode},
		{"letters", "alice", "12a456", ErrMalformed},
		{"too long", "alice", cur + "0", ErrMalformed},
		{"wrong", "alice", wrong, ErrWrongCode},
		{"outside the skew", "alice", old, ErrWrongCode},
		{"current, with blanks", "alice", " " + cur + "\n", nil},
		{"current again", "alice", cur, ErrReused},
		{"previous step after the current one", "alice", prev, ErrReused},
		{"another user's state is its own", "bob", cur, nil},
	} {
		if err := v.Check(tc.user, key, tc.code); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	now = now.Add(period * time.Second)
	if err := v.Check("alice", key, codeAt(t, key, now)); err != nil {
		t.Errorf("next step's code: got %v, want accepted", err)
	}
}

// TestVerifierRaceAcceptsOnce sends one code on many connections at once:
// exactly one is accepted.
func TestVerifierRaceAcceptsOnce(t *testing.T) {
	key, _ := enrolled(t)
	v := NewVerifier(nil)
	c := codeAt(t, key, time.Now())
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if v.Check("alice", key, c) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	// At a step boundary the code may already be the previous step's:
	// still accepted once.
	if ok.Load() != 1 {
		t.Errorf("got %d acceptances, want 1", ok.Load())
	}
}

func TestRequirementDecide(t *testing.T) {
	human := auth.Identity{User: "alice"}
	robot := auth.Identity{User: "ci", Restrictions: auth.Restrictions{Automation: true}}
	all := Requirement{Service: "s", All: true}
	step := Requirement{Service: "s", StepUp: []string{"pty", "shell"}}
	for _, tc := range []struct {
		name    string
		q       Requirement
		id      auth.Identity
		hasTOTP bool
		ask     bool
		rule    string // of the refusal, "" for none
	}{
		{"off", Requirement{Service: "s"}, human, false, false, ""},
		{"required, enrolled", all, human, true, true, ""},
		{"required, not enrolled", all, human, false, false, "services[s].mfa.required"},
		{"required, automation", all, robot, true, false, "services[s].mfa.required"},
		{"step-up, enrolled", step, human, true, true, ""},
		{"step-up, not enrolled", step, human, false, false, "services[s].mfa.required_for"},
		{"step-up, automation", step, robot, false, false, ""},
	} {
		ask, err := tc.q.Decide(tc.id, tc.hasTOTP)
		rule := ""
		if r, ok := errors.AsType[*auth.Refusal](err); ok {
			rule = r.Rule
		} else if err != nil {
			t.Errorf("%s: got error %v, want a *auth.Refusal", tc.name, err)
		}
		if ask != tc.ask || rule != tc.rule {
			t.Errorf("%s: got ask %v rule %q, want %v %q", tc.name, ask, rule, tc.ask, tc.rule)
		}
	}
}

// BenchmarkCheck is the cost of checking one code: three HMAC-SHA-1 codes
// (one step of skew either side) and the replay lookup.
func BenchmarkCheck(b *testing.B) {
	key, err := ParseSecret("otpauth://totp/Sluice:alice?secret=JBSWY3DPEHPK3PXP&issuer=Sluice&period=30&digits=6&algorithm=SHA1")
	if err != nil {
		b.Fatal(err)
	}
	v := NewVerifier(func() time.Time { return time.Unix(1_800_000_000, 0) })
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Check("alice", key, "000000"); !errors.Is(err, ErrWrongCode) {
			b.Fatal(err)
		}
	}
}
