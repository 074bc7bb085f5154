package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/oidc"
	"github.com/sluice-ssh/sluice/internal/termqr"
)

// MethodOIDC is Identity.Method of a user signed in through single sign-on.
const MethodOIDC = "oidc"

// SignOn is single sign-on at an identity provider (*oidc.Provider): a
// device grant started, then waited for until the user approves or denies
// it in a browser.
type SignOn interface {
	Start(ctx context.Context) (*oidc.Grant, error)
	Wait(ctx context.Context, g *oidc.Grant) (oidc.Identity, error)
}

var _ SignOn = (*oidc.Provider)(nil)

// Rules that refuse a single sign-on, as the audit names them.
const (
	ruleOIDC          = "oidc"
	ruleOIDCUser      = "oidc.user_claim"
	ruleOIDCProvision = "oidc.auto_provision"
)

// SignOn returns single sign-on at Params.SignOn as the FirstMethod of
// one connection (Login.First), so that Callbacks installs it as the
// keyboard-interactive method beside publickey and password, reports its
// refusals and asks the second factor after it as after them. ctx ends a
// wait in progress (the connection's master session ending); deadline,
// the end of the connection's login grace time, ends it too (zero: only
// the grant's own expiry does).
//
// The one question shows the verification URL, the user code and a QR
// code of the URL, and asks to press Enter; the answer is not used: the
// provider's answer decides. The name the provider gives must be the user
// the SSH login name maps to, so a login name cannot pick someone else's
// routes. One grant is started per connection, so a client cannot make the
// gateway flood the provider with device codes.
func (a *Authenticator) SignOn(ctx context.Context, deadline time.Time) FirstMethod {
	return &signOnMethod{a: a, ctx: ctx, deadline: deadline}
}

// signOnMethod is one connection's single sign-on.
type signOnMethod struct {
	a        *Authenticator
	ctx      context.Context
	deadline time.Time
	started  atomic.Bool // a grant was started: one per connection
}

func (m *signOnMethod) Name() string { return MethodOIDC }

func (m *signOnMethod) Authenticate(conn ssh.ConnMetadata, login string, ask ssh.KeyboardInteractiveChallenge) (Identity, error) {
	if login == "" {
		return Identity{}, &Refusal{Method: MethodOIDC, User: conn.User(), Rule: "users", Reason: "login name not accepted"}
	}
	name, u := m.a.lookup(conn)
	if !m.started.CompareAndSwap(false, true) {
		return Identity{}, &Refusal{Method: MethodOIDC, User: name, Rule: ruleOIDC, Reason: "a second sign-in on one connection"}
	}
	p, err := m.a.signOn(m.ctx, ask, m.deadline, name, u)
	if err != nil {
		return Identity{}, err
	}
	return p.ExtraData[identityKey{}].(Identity), nil
}

func (a *Authenticator) signOn(ctx context.Context, client ssh.KeyboardInteractiveChallenge, deadline time.Time, name string, u *userEntry) (*ssh.Permissions, error) {
	if a.signOnVia == nil {
		return fail(MethodOIDC, name, ruleOIDC, "no identity provider configured")
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, err := a.signOnVia.Start(ctx)
	if err != nil {
		return fail(MethodOIDC, name, ruleOIDC, "identity provider unavailable: "+err.Error())
	}
	type result struct {
		id  oidc.Identity
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := a.signOnVia.Wait(ctx, g)
		done <- result{id, err}
	}()
	if _, err := client("", "", []string{prompt(g)}, []bool{true}); err != nil {
		cancel()
		<-done
		return fail(MethodOIDC, name, ruleOIDC, "client left the sign-in prompt: "+err.Error())
	}
	r := <-done
	if r.err != nil {
		tell := "Single sign-on failed: access denied."
		reason := r.err.Error()
		if ref, ok := errors.AsType[*oidc.Refused](r.err); ok {
			reason = ref.Reason
			if strings.HasPrefix(reason, "identity provider answered") {
				tell = "Single sign-on refused by the identity provider."
			}
		}
		if errors.Is(r.err, context.DeadlineExceeded) || errors.Is(r.err, context.Canceled) || strings.Contains(reason, "not approved in time") {
			reason, tell = "not approved in time", "Single sign-on not approved in time."
		}
		// Tell the person, who may be looking at the browser, that it is
		// over; a client that has left makes this fail, which is fine.
		_, _ = client("", tell, nil, nil)
		return fail(MethodOIDC, name, ruleOIDC, reason)
	}
	id := r.id
	if id.User != name {
		_, _ = client("", "Single sign-on failed: access denied.", nil, nil)
		return fail(MethodOIDC, name, ruleOIDCUser, "signed in at the identity provider as "+id.User+", not as "+name)
	}
	var groups []string
	if u != nil {
		groups = slices.Clone(u.Groups)
	} else if !a.autoProvision {
		_, _ = client("", "Single sign-on failed: access denied.", nil, nil)
		return fail(MethodOIDC, name, ruleOIDCProvision, "user not in users and auto_provision is off")
	}
	for _, g := range id.Groups {
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	ident := Identity{User: name, Groups: groups, Method: MethodOIDC, Subject: id.Issuer + " " + id.Subject}
	return &ssh.Permissions{ExtraData: map[any]any{identityKey{}: ident}}, nil
}

// prompt is the one question: where to sign in, a QR code of it, then a
// request to press Enter once approved. It is all in the question, not in
// the instruction, because OpenSSH prints the instruction through its
// logger (hidden at LogLevel ERROR, non-ASCII escaped) and the question
// as it is.
func prompt(g *oidc.Grant) string {
	s := "Single sign-on: open " + g.VerificationURI + "\nand enter the code " + g.UserCode + "\n"
	uri := g.VerificationURI
	if g.VerificationURIComplete != "" {
		uri = g.VerificationURIComplete
		s += "or open " + uri + "\n"
	}
	if qr, err := termqr.Render(uri); err == nil {
		s += "or scan:\n" + qr
	}
	return s + "Press Enter once you have approved the sign-in: "
}
