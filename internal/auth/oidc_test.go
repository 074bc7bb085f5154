package auth

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/oidc"
)

// stubSignOn answers every grant with id or err; with block it waits for
// the context instead. The real identity provider is in the gateway's and
// internal/oidc's tests: this one lets each rule of SignOn be hit.
type stubSignOn struct {
	id     oidc.Identity
	err    error
	block  bool
	starts atomic.Int32
}

func (s *stubSignOn) Start(context.Context) (*oidc.Grant, error) {
	s.starts.Add(1)
	return &oidc.Grant{VerificationURI: "https://idp.test/device", UserCode: "ABCD-EFGH"}, nil
}

func (s *stubSignOn) Wait(ctx context.Context, _ *oidc.Grant) (oidc.Identity, error) {
	if s.block {
		<-ctx.Done()
		return oidc.Identity{}, &oidc.Refused{Reason: "not approved in time"}
	}
	return s.id, s.err
}

// prompts answers every keyboard-interactive challenge with empty answers
// and keeps the instructions it was shown.
type prompts struct {
	mu    sync.Mutex
	shown []string
}

func (p *prompts) answer(_, instruction string, questions []string, _ []bool) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shown = append(p.shown, instruction+"|"+strings.Join(questions, "|"))
	return make([]string, len(questions)), nil
}

func TestSignOn(t *testing.T) {
	alice := oidc.Identity{User: "alice", Subject: "s-1", Issuer: "https://idp.test", Groups: []string{"ops", "dev"}}
	for _, tc := range []struct {
		name   string
		login  string
		so     *stubSignOn
		auto   bool
		past   bool
		want   *Identity
		rule   string
		reason string
		told   string
	}{
		{name: "configured user", login: "alice", so: &stubSignOn{id: alice},
			want: &Identity{User: "alice", Groups: []string{"dev", "ops"}, Method: MethodOIDC, Subject: "https://idp.test s-1"}},
		{name: "another name than the login", login: "bob", so: &stubSignOn{id: alice}, auto: true,
			rule: ruleOIDCUser, reason: "as alice, not as bob", told: "access denied"},
		{name: "unknown user without auto_provision", login: "zed", so: &stubSignOn{id: oidc.Identity{User: "zed", Subject: "z"}},
			rule: ruleOIDCProvision, reason: "auto_provision is off"},
		{name: "unknown user with auto_provision", login: "zed", so: &stubSignOn{id: oidc.Identity{User: "zed", Subject: "z", Issuer: "i", Groups: []string{"ops"}}}, auto: true,
			want: &Identity{User: "zed", Groups: []string{"ops"}, Method: MethodOIDC, Subject: "i z"}},
		{name: "provider refuses", login: "alice", so: &stubSignOn{err: &oidc.Refused{Reason: "identity provider answered access_denied: account disabled"}},
			rule: ruleOIDC, reason: "account disabled", told: "refused by the identity provider"},
		{name: "grace time over", login: "alice", so: &stubSignOn{block: true}, past: true,
			rule: ruleOIDC, reason: "not approved in time", told: "not approved in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f failures
			deadline := time.Now().Add(time.Minute)
			if tc.past {
				deadline = time.Now().Add(time.Second)
			}
			a, err := New(Params{Users: []User{{Name: "alice", Groups: []string{"dev"}}}, SignOn: tc.so, AutoProvision: tc.auto})
			if err != nil {
				t.Fatal(err)
			}
			s := startServerLogin(t, a, Login{Refused: f.record, First: a.SignOn(t.Context(), deadline)})
			var p prompts
			r := s.login(t, tc.login, ssh.KeyboardInteractive(p.answer))
			if len(p.shown) == 0 || !strings.Contains(p.shown[0], "https://idp.test/device") || !strings.Contains(p.shown[0], "ABCD-EFGH") || !strings.Contains(p.shown[0], "█") {
				t.Fatalf("got prompts %q, want the URL, the code and a QR code", p.shown)
			}
			if tc.want != nil {
				if got := r.identity(t); !reflect.DeepEqual(got, *tc.want) {
					t.Fatalf("got %+v, want %+v", got, *tc.want)
				}
				return
			}
			if r.err == nil {
				t.Fatal("got login accepted, want refused")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.list) != 1 || f.list[0].Rule != tc.rule || f.list[0].Method != MethodOIDC || !strings.Contains(f.list[0].Reason, tc.reason) {
				t.Fatalf("got refusals %+v, want one by %s for %q", f.list, tc.rule, tc.reason)
			}
			if tc.told != "" && (len(p.shown) != 2 || !strings.Contains(p.shown[1], tc.told)) {
				t.Fatalf("got prompts %q, want the client told %q", p.shown, tc.told)
			}
		})
	}
}

// TestSignOnOncePerConnection: a client retrying keyboard-interactive on
// one connection starts one device grant, not one per attempt.
func TestSignOnOncePerConnection(t *testing.T) {
	so := &stubSignOn{err: &oidc.Refused{Reason: "identity provider answered access_denied"}}
	a, err := New(Params{Users: []User{{Name: "alice"}}, SignOn: so})
	if err != nil {
		t.Fatal(err)
	}
	var f failures
	s := startServerLogin(t, a, Login{Refused: f.record, First: a.SignOn(t.Context(), time.Time{})})
	var p prompts
	if r := s.login(t, "alice", ssh.RetryableAuthMethod(ssh.KeyboardInteractive(p.answer), 3)); r.err == nil {
		t.Fatal("got login accepted, want refused")
	}
	if n := so.starts.Load(); n != 1 {
		t.Fatalf("got %d grants started, want 1", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) < 2 || !strings.Contains(f.list[1].Reason, "second sign-in") {
		t.Fatalf("got refusals %+v, want the retry refused as a second sign-in", f.list)
	}
}
