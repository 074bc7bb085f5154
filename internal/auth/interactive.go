package auth

import (
	"errors"

	"golang.org/x/crypto/ssh"
)

// MethodKeyboardInteractive is the Refusal.Method of a refused
// keyboard-interactive step (RFC 4256).
const MethodKeyboardInteractive = "keyboard-interactive"

// A Challenger is one keyboard-interactive method (RFC 4256): a second
// factor such as TOTP (internal/mfa) asked after the user's first method, as
// OpenSSH's "AuthenticationMethods publickey,keyboard-interactive" does.
type Challenger interface {
	// Name names the method in Identity.SecondFactor and the audit, e.g.
	// "totp"; it is never empty.
	Name() string
	// Challenge asks the client through ask, one or more rounds, about
	// id, who passed the first method. It returns nil when the answers
	// pass, or a *Refusal saying which rule refused them and why; any
	// other error is a refusal with rule "keyboard-interactive". Every
	// refusal counts against MaxAuthTries; the client may try again.
	Challenge(conn ssh.ConnMetadata, id Identity, ask ssh.KeyboardInteractiveChallenge) error
}

// A FirstMethod is a first authentication method through
// keyboard-interactive, one that establishes who the client is by itself:
// an OpenID Connect device flow, for example. Callbacks offers it beside
// publickey and password; the SecondFactor is asked after it as after
// them.
type FirstMethod interface {
	// Name is the Identity.Method of the logins it passes, e.g. "oidc";
	// never one of the Method constants of this package.
	Name() string
	// Authenticate asks the client through ask, one or more rounds, and
	// returns who it proved to be. login is the gateway user name the
	// SSH login name maps to ("" when the mapping refuses it). A
	// *Refusal refuses the attempt, audited with its rule (and its
	// Method, "keyboard-interactive" when it names none); any other
	// error is a refusal with rule "keyboard-interactive". Every refusal
	// counts against MaxAuthTries.
	Authenticate(conn ssh.ConnMetadata, login string, ask ssh.KeyboardInteractiveChallenge) (Identity, error)
}

// SecondFactor says what a connection asks of id once its first method
// (publickey, certificate or password) has passed: nil for nothing more,
// a Challenger to ask through keyboard-interactive, or a *Refusal that
// refuses the login outright (e.g. a second factor is required and the
// user has none).
type SecondFactor func(id Identity) (Challenger, error)

// Login is what one connection's authentication callbacks report to and
// ask; every field may be nil. The callbacks of one connection run one at
// a time, on the connection's handshake goroutine.
type Login struct {
	// Refused receives each refused attempt.
	Refused func(Refusal)
	// First, when set, is offered as a first method through
	// keyboard-interactive, beside publickey and password.
	First FirstMethod
	// SecondFactor is asked after each first method that passes.
	SecondFactor SecondFactor
	// Carried, when set, names the second factor the same person passed
	// on the connection that carries this one (the outer login of a jump,
	// whose user Authenticator.As names): a first method that passes takes
	// it as its own (Identity.Carried) and SecondFactor is not asked,
	// unless the key or certificate is marked for automation, which never
	// has a second factor (Restrictions.Automation).
	Carried string
	// Owed is told when a first method has passed and the client now owes
	// the named second factor (SSH_MSG_USERAUTH_FAILURE with partial
	// success, RFC 4252 §5.1): a connection that ends before answering it
	// is a refused login too.
	Owed func(id Identity, factor string)
}

// flow is one connection's authentication state: the second steps it has
// offered, by the partial-success error that offered them, so that the
// AuthLogCallback can tell which one the client actually earned (a public
// key query also returns one, without the client proving anything).
type flow struct {
	Login
	offered map[*ssh.PartialSuccessError]offer
}

type offer struct {
	id     Identity
	factor string
}

// next decides what follows a first method that passed with p: p itself
// when no second factor is asked, or a partial success whose only method
// is keyboard-interactive with the Challenger. The identity travels in the
// closure, never in state shared between keys (CVE-2024-45337): each key
// offered gets its own partial-success error.
func (f *flow) next(p *ssh.Permissions) (*ssh.Permissions, error) {
	if f.SecondFactor == nil && f.Carried == "" {
		return p, nil
	}
	id, err := IdentityOf(p)
	if err != nil {
		return nil, err
	}
	if f.Carried != "" && !id.Restrictions.Automation {
		id.SecondFactor, id.Carried = f.Carried, true
		return &ssh.Permissions{CriticalOptions: p.CriticalOptions, ExtraData: map[any]any{identityKey{}: id}}, nil
	}
	if f.SecondFactor == nil {
		return p, nil
	}
	ch, err := f.SecondFactor(id)
	if err != nil || ch == nil {
		return p, err
	}
	name := ch.Name()
	pse := &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: reporting(f.Refused, func(conn ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			if err := ch.Challenge(conn, id, ask); err != nil {
				if r, ok := errors.AsType[*Refusal](err); ok {
					r.Method = MethodKeyboardInteractive
					return nil, r
				}
				return fail(MethodKeyboardInteractive, id.User, "keyboard-interactive", err.Error())
			}
			done := id
			done.SecondFactor = name
			return &ssh.Permissions{CriticalOptions: p.CriticalOptions, ExtraData: map[any]any{identityKey{}: done}}, nil
		}),
	}}
	if f.offered == nil {
		f.offered = make(map[*ssh.PartialSuccessError]offer)
	}
	f.offered[pse] = offer{id: id, factor: name}
	return nil, pse
}

// first is the KeyboardInteractiveCallback of a FirstMethod: the identity
// it returns, named by the method, in Permissions only this package makes.
func (a *Authenticator) first(m FirstMethod) func(ssh.ConnMetadata, ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	return func(conn ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
		login, _ := a.lookup(conn)
		id, err := m.Authenticate(conn, a.userName(conn.User()), ask)
		if err != nil {
			if r, ok := errors.AsType[*Refusal](err); ok {
				if r.Method == "" {
					r.Method = MethodKeyboardInteractive
				}
				return nil, r
			}
			return fail(MethodKeyboardInteractive, login, "keyboard-interactive", err.Error())
		}
		if id.User == "" {
			return fail(MethodKeyboardInteractive, login, "keyboard-interactive", m.Name()+" established no user")
		}
		id.Method, id.SecondFactor, id.Carried = m.Name(), "", false
		return &ssh.Permissions{ExtraData: map[any]any{identityKey{}: id}}, nil
	}
}

// logged is the AuthLogCallback: it tells Owed about a partial success the
// client earned by a real attempt (queries are never logged).
func (f *flow) logged(_ ssh.ConnMetadata, _ string, err error) {
	pse, ok := err.(*ssh.PartialSuccessError)
	if !ok || f.Owed == nil {
		return
	}
	if o, ok := f.offered[pse]; ok {
		f.Owed(o.id, o.factor)
	}
}
