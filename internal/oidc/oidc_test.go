package oidc

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-ssh/sluice/internal/oidc/oidctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newProvider(t *testing.T, idp *oidctest.IdP, clientID string, m Mapping) *Provider {
	t.Helper()
	pr, err := New(Params{Issuer: idp.Issuer, ClientID: clientID, ClientSecret: oidctest.ClientSecret, RootCAs: idp.RootCAs, Scopes: []string{"email", "profile", "groups"}, Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.client.CloseIdleConnections)
	return pr
}

var emailGroups = Mapping{UserClaim: "email", GroupsClaim: "groups"}

// signIn starts a device grant, lets account sign in at the browser and
// returns the raw ID token or the error of the token poll.
func signIn(t *testing.T, idp *oidctest.IdP, pr *Provider, account string, abort bool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	g, err := pr.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(g.VerificationURI, idp.Issuer) || g.UserCode == "" {
		t.Fatalf("got grant %+v, want a verification URI at %s and a user code", g, idp.Issuer)
	}
	page := idp.Browser(t, g.VerificationURI, g.UserCode, account, abort)
	if !abort && account != "carol" && !strings.Contains(page, "Sign-in Success") {
		t.Fatalf("browser sign-in of %s did not succeed: %s", account, page)
	}
	approved := time.Now()
	raw, err := pr.idToken(ctx, g)
	t.Logf("the token poll ended %v after the browser", time.Since(approved).Round(time.Millisecond))
	return raw, err
}

// TestDeviceFlowMapsAlice: alice approves in the browser; the ID token
// verifies and names her by email with her identity provider groups.
func TestDeviceFlowMapsAlice(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t)
	pr := newProvider(t, idp, oidctest.ClientID, emailGroups)
	raw, err := signIn(t, idp, pr, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pr.Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice@example.org" || id.Subject != "alice" || id.Issuer != idp.Issuer || !slices.Equal(id.Groups, []string{"db-admins", "ops"}) {
		t.Fatalf("got %+v, want alice@example.org (sub alice, iss %s) in db-admins and ops", id, idp.Issuer)
	}

	// The same token is refused by a verifier for another client (aud),
	// and once expired.
	other := newProvider(t, idp, oidctest.OtherClientID, emailGroups)
	if _, err := other.Verify(t.Context(), raw); !isRefused(err, "audience") {
		t.Fatalf("token for %s verified for %s: got %v, want refused for its audience", oidctest.ClientID, oidctest.OtherClientID, err)
	}
	late := newProvider(t, idp, oidctest.ClientID, emailGroups)
	late.p.Clock = func() time.Time { return time.Now().Add(24 * time.Hour) }
	if _, err := late.Verify(t.Context(), raw); !isRefused(err, "expired") {
		t.Fatalf("expired token: got %v, want refused as expired", err)
	}
	// A token altered after signing is refused.
	parts := strings.Split(raw, ".")
	forged := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]
	if _, err := pr.Verify(t.Context(), forged); !isRefused(err, "") {
		t.Fatalf("altered token: got %v, want refused", err)
	}
}

// TestWrongIssuerRefused: a token signed by another identity provider, for
// the same client id, is refused: its issuer and keys are not ours.
func TestWrongIssuerRefused(t *testing.T) {
	t.Parallel()
	ours, theirs := oidctest.Start(t), oidctest.Start(t)
	raw, err := signIn(t, theirs, newProvider(t, theirs, oidctest.ClientID, emailGroups), "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	pr := newProvider(t, ours, oidctest.ClientID, emailGroups)
	if _, err := pr.Verify(t.Context(), raw); !isRefused(err, "issued by a different provider") {
		t.Fatalf("token of %s verified at %s: got %v, want refused for its issuer", theirs.Issuer, ours.Issuer, err)
	}
}

// TestDeviceFlowRefusals: a disabled user and an aborted grant end the
// poll with the identity provider's access_denied; bob's email is not
// verified, so it names no one.
func TestDeviceFlowRefusals(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t)
	pr := newProvider(t, idp, oidctest.ClientID, emailGroups)
	for _, tc := range []struct {
		name, account string
		abort         bool
		want          string
	}{
		{"disabled", "carol", false, "access_denied: account disabled"},
		{"aborted", "alice", true, "access_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signIn(t, idp, pr, tc.account, tc.abort)
			if !isRefused(err, tc.want) {
				t.Fatalf("got %v, want refused with %q", err, tc.want)
			}
		})
	}
	t.Run("unverified email", func(t *testing.T) {
		raw, err := signIn(t, idp, pr, "bob", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pr.Verify(t.Context(), raw); !isRefused(err, "not verified") {
			t.Fatalf("got %v, want refused as not verified", err)
		}
	})
}

// TestDiscoveryNeedsTrust: without the provider's CA, discovery fails and
// no grant starts; the next attempt retries.
func TestDiscoveryNeedsTrust(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t)
	pr, err := New(Params{Issuer: idp.Issuer, ClientID: oidctest.ClientID, Mapping: emailGroups})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.client.CloseIdleConnections()
	if _, err := pr.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("got %v, want a certificate error", err)
	}
}

func isRefused(err error, reason string) bool {
	r, ok := errors.AsType[*Refused](err)
	return ok && strings.Contains(r.Reason, reason)
}
