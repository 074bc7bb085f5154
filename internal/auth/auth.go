package auth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

// User is one gateway user as configured.
type User struct {
	Name               string
	AuthorizedKeysFile string // OpenSSH authorized_keys format; "" = no plain keys
	PasswordHash       string // bcrypt; "" = no password login
	Groups             []string
}

// Params configures an Authenticator.
type Params struct {
	Users []User
	// TrustedCAKeys are the OpenSSH user certificate authorities.
	TrustedCAKeys []ssh.PublicKey
	// Clock checks certificate validity; nil means time.Now.
	Clock func() time.Time
	// MaxAuthTries is the number of failed attempts allowed per connection;
	// 0 means OpenSSH's default of 6 (sshd_config(5) MaxAuthTries).
	MaxAuthTries int
	// UserName maps the SSH login name to the gateway user name, for example
	// "alice+db1:22" to "alice". It returns "" for a login name it refuses.
	// nil means the login name is the user name.
	UserName func(sshUser string) string
	// SignOn is the identity provider of single sign-on (SignOn);
	// nil without.
	SignOn SignOn
	// AutoProvision lets a user SignOn names who is not in Users log in,
	// with the provider's groups only.
	AutoProvision bool
}

// Refusal is one refused authentication attempt, with the rule that
// decided, e.g. "users[alice].authorized_keys:3 from=".
type Refusal struct {
	Method string // MethodPublicKey, MethodPassword or MethodCertificate
	User   string // the gateway user the login name maps to
	Rule   string
	Reason string
}

func (r *Refusal) Error() string {
	return "auth: " + r.Method + " of " + r.User + " refused by " + r.Rule + ": " + r.Reason
}

// Restrictions are what a key's options or a certificate's options and
// extensions take away from the session.
type Restrictions struct {
	NoPty             bool   `json:"no_pty,omitempty"`
	NoPortForwarding  bool   `json:"no_port_forwarding,omitempty"`
	NoAgentForwarding bool   `json:"no_agent_forwarding,omitempty"`
	NoX11Forwarding   bool   `json:"no_x11_forwarding,omitempty"`
	ForcedCommand     string `json:"forced_command,omitempty"`
	// ForcedCommandRule names the key line or certificate option that
	// forces ForcedCommand, for the audit.
	ForcedCommandRule string   `json:"forced_command_rule,omitempty"`
	PermitOpen        []string `json:"permit_open,omitempty"` // empty = no per-key limit
	// Automation marks a key (authorized_keys option "automation") or a
	// certificate (extension ExtensionAutomation) used by a program: it
	// is never asked for a second factor, so it may do only what needs
	// none (services[].mfa.required_for).
	Automation bool `json:"automation,omitempty"`
}

// Identity is who authenticated and how, read back from ssh.Permissions.
type Identity struct {
	User           string
	Groups         []string
	Method         string // "publickey", "password", "certificate" or "oidc"
	KeyFingerprint string // SHA256 of the key that signed; "" for password
	Restrictions   Restrictions
	// Subject is the identity provider's issuer and subject ("iss sub")
	// of a single sign-on; "" for other methods.
	Subject string
	// SecondFactor names the keyboard-interactive step that passed after
	// Method (Challenger.Name, e.g. "totp"), or "".
	SecondFactor string
	// Carried says that SecondFactor passed at the outer login of a jump
	// (Login.Carried), not on this connection.
	Carried bool
}

// Authentication methods as reported in Identity.Method.
const (
	MethodPublicKey   = "publickey"
	MethodPassword    = "password"
	MethodCertificate = "certificate"
)

// identityKey is the key of ssh.Permissions.ExtraData that carries the
// Identity: a type of this package, so no other code can set or forge it.
type identityKey struct{}

// defaultMaxAuthTries is sshd's MaxAuthTries default (sshd_config(5)).
const defaultMaxAuthTries = 6

type userEntry struct {
	User
	keys *keyFile // nil without AuthorizedKeysFile
}

// Authenticator authenticates the client leg. It is safe for concurrent use.
type Authenticator struct {
	users     map[string]*userEntry
	cas       [][]byte // marshalled CA keys
	clock     func() time.Time
	maxTries  int
	userName  func(string) string
	dummyHash []byte
	passwords bool
	// signOnVia and autoProvision are Params.SignOn and AutoProvision.
	signOnVia     SignOn
	autoProvision bool
	// byKey identifies the user by her key alone (ByKey).
	byKey bool
}

// New validates p and returns an Authenticator.
func New(p Params) (*Authenticator, error) {
	a := &Authenticator{
		users:    make(map[string]*userEntry, len(p.Users)),
		clock:    p.Clock,
		maxTries: p.MaxAuthTries,
		userName: p.UserName,

		signOnVia:     p.SignOn,
		autoProvision: p.AutoProvision,
	}
	if a.clock == nil {
		a.clock = time.Now
	}
	if a.maxTries == 0 {
		a.maxTries = defaultMaxAuthTries
	}
	if a.userName == nil {
		a.userName = func(s string) string { return s }
	}
	cost := bcrypt.DefaultCost
	for _, u := range p.Users {
		if u.Name == "" {
			return nil, errors.New("auth: user with empty name")
		}
		if _, dup := a.users[u.Name]; dup {
			return nil, fmt.Errorf("auth: user %q defined twice", u.Name)
		}
		e := &userEntry{User: u}
		if u.AuthorizedKeysFile != "" {
			e.keys = &keyFile{path: u.AuthorizedKeysFile}
		}
		if u.PasswordHash != "" {
			c, err := bcrypt.Cost([]byte(u.PasswordHash))
			if err != nil {
				return nil, fmt.Errorf("auth: users[%s].password_hash: %w", u.Name, err)
			}
			cost = max(cost, c)
			a.passwords = true
		}
		a.users[u.Name] = e
	}
	for _, k := range p.TrustedCAKeys {
		if _, isCert := k.(*ssh.Certificate); isCert {
			return nil, errors.New("auth: a certificate cannot be a trusted CA key")
		}
		a.cas = append(a.cas, k.Marshal())
	}
	if a.passwords {
		// Unknown users are checked against this hash so that the time taken
		// does not tell who exists.
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		h, err := bcrypt.GenerateFromPassword(secret[:], cost)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		a.dummyHash = h
	}
	return a, nil
}

// As returns an Authenticator that authenticates every SSH user name as
// the gateway user user: the name is then the upstream login, and the
// person is known by her credential alone (an inner connection of
// ProxyJump, whose outer connection already named her). It shares a's
// users and CAs.
func (a *Authenticator) As(user string) *Authenticator {
	b := *a
	b.userName = func(string) string { return user }
	return &b
}

// ByKey returns an Authenticator that knows the user by her public key
// alone, for a service where the SSH user name is the upstream login
// (transparent routing): the key must be in exactly one user's
// authorized_keys. Passwords and certificates, which do not name a user
// without the SSH user name, are refused. It shares a's users.
func (a *Authenticator) ByKey() *Authenticator {
	b := *a
	b.byKey = true
	b.passwords = false
	return &b
}

// Callbacks installs the authentication callbacks and MaxAuthTries in cfg,
// the ServerConfig of one connection, reporting to and asking l (see
// Login). PasswordCallback is installed only when some user has a password
// hash, KeyboardInteractiveCallback only with l.First. A first method that
// passes is followed by the second factor l.SecondFactor asks for, if any,
// through keyboard-interactive (an ssh.PartialSuccessError).
func (a *Authenticator) Callbacks(cfg *ssh.ServerConfig, l Login) {
	f := &flow{Login: l}
	cfg.PublicKeyCallback = reporting(l.Refused, then(f, a.publicKey))
	if a.passwords {
		cfg.PasswordCallback = reporting(l.Refused, then(f, a.password))
	}
	if l.First != nil {
		cfg.KeyboardInteractiveCallback = reporting(l.Refused, then(f, a.first(l.First)))
	}
	cfg.AuthLogCallback = f.logged
	cfg.MaxAuthTries = a.maxTries
}

// then runs first and, when it passes, f's second step.
func then[T any](f *flow, first func(ssh.ConnMetadata, T) (*ssh.Permissions, error)) func(ssh.ConnMetadata, T) (*ssh.Permissions, error) {
	return func(conn ssh.ConnMetadata, arg T) (*ssh.Permissions, error) {
		p, err := first(conn, arg)
		if err != nil {
			return p, err
		}
		return f.next(p)
	}
}

// reporting wraps an authentication callback: a Refusal it returns goes to
// refused, and the client gets errDenied.
func reporting[T any](refused func(Refusal), f func(ssh.ConnMetadata, T) (*ssh.Permissions, error)) func(ssh.ConnMetadata, T) (*ssh.Permissions, error) {
	return func(conn ssh.ConnMetadata, arg T) (*ssh.Permissions, error) {
		p, err := f(conn, arg)
		if r, ok := errors.AsType[*Refusal](err); ok {
			if refused != nil {
				refused(*r)
			}
			return nil, errDenied
		}
		return p, err
	}
}

// errDenied is the only error the client leg ever sees; causes go to the
// connection's refused callback.
var errDenied = errors.New("auth: access denied")

// fail is a refused attempt, reported by Callbacks.
func fail(method, user, rule, reason string) (*ssh.Permissions, error) {
	return nil, &Refusal{Method: method, User: user, Rule: rule, Reason: reason}
}

// lookup maps the login name and finds the user.
func (a *Authenticator) lookup(conn ssh.ConnMetadata) (string, *userEntry) {
	name := a.userName(conn.User())
	if name == "" {
		return conn.User(), nil
	}
	return name, a.users[name]
}

func (a *Authenticator) password(conn ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	name, u := a.lookup(conn)
	if u == nil || u.PasswordHash == "" {
		_ = bcrypt.CompareHashAndPassword(a.dummyHash, pw)
		if u == nil {
			return fail(MethodPassword, name, "users", "unknown user")
		}
		return fail(MethodPassword, name, "users["+name+"].password_hash", "no password set")
	}
	if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), pw); err != nil {
		return fail(MethodPassword, name, "users["+name+"].password_hash", "wrong password")
	}
	return permissions(u, MethodPassword, "", Restrictions{}, nil)
}

// publicKey is the PublicKeyCallback. It keeps no state between calls: the
// identity travels only in the returned Permissions, which x/crypto/ssh hands
// back for the key that actually signed (CVE-2024-45337).
func (a *Authenticator) publicKey(conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if a.byKey {
		return a.keyOwner(conn, key)
	}
	name, u := a.lookup(conn)
	if cert, ok := key.(*ssh.Certificate); ok {
		if u == nil {
			return fail(MethodCertificate, name, "users", "unknown user")
		}
		return a.certificate(conn, u, cert)
	}
	if u == nil {
		return fail(MethodPublicKey, name, "users", "unknown user")
	}
	return a.userKey(conn, name, u, key)
}

// keyOwner authenticates key as the one user whose authorized_keys list
// it (ByKey).
func (a *Authenticator) keyOwner(conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if _, ok := key.(*ssh.Certificate); ok {
		return fail(MethodCertificate, conn.User(), "trusted_user_ca_keys", "certificates name no user where the SSH user name is the login")
	}
	owners := a.owners(key)
	switch len(owners) {
	case 0:
		return fail(MethodPublicKey, conn.User(), "users", "key "+ssh.FingerprintSHA256(key)+" not listed for any user")
	case 1:
		return a.userKey(conn, owners[0], a.users[owners[0]], key)
	}
	return fail(MethodPublicKey, conn.User(), "users", "key "+ssh.FingerprintSHA256(key)+" listed for more than one user: "+strings.Join(owners, ", "))
}

// owners returns the users whose authorized_keys list key, sorted.
func (a *Authenticator) owners(key ssh.PublicKey) []string {
	blob := key.Marshal()
	var names []string
	for name, u := range a.users {
		if u.keys == nil {
			continue
		}
		lines, _, err := u.keys.current()
		if err != nil {
			continue
		}
		if slices.ContainsFunc(lines, func(kl keyLine) bool { return bytes.Equal(kl.key.Marshal(), blob) }) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// SharedKeys returns, for each public key listed in the authorized_keys
// of more than one of users, a line naming the key and the users: what a
// service that knows users by key (ByKey) cannot tell apart.
func SharedKeys(users []User) ([]string, error) {
	by := map[string][]string{}
	var order []string
	for _, u := range users {
		if u.AuthorizedKeysFile == "" {
			continue
		}
		lines, _, err := (&keyFile{path: u.AuthorizedKeysFile}).current()
		if err != nil {
			return nil, fmt.Errorf("users[%s].authorized_keys: %w", u.Name, err)
		}
		for _, kl := range lines {
			fp := ssh.FingerprintSHA256(kl.key)
			if _, seen := by[fp]; !seen {
				order = append(order, fp)
			}
			if !slices.Contains(by[fp], u.Name) {
				by[fp] = append(by[fp], u.Name)
			}
		}
	}
	var out []string
	for _, fp := range order {
		if len(by[fp]) > 1 {
			out = append(out, "key "+fp+" is listed for users "+strings.Join(by[fp], ", "))
		}
	}
	return out, nil
}

// userKey authenticates key as the user name (u) by her authorized_keys.
func (a *Authenticator) userKey(conn ssh.ConnMetadata, name string, u *userEntry, key ssh.PublicKey) (*ssh.Permissions, error) {
	rule := "users[" + name + "].authorized_keys"
	if u.keys == nil {
		return fail(MethodPublicKey, name, rule, "no authorized_keys file")
	}
	lines, _, err := u.keys.current()
	if err != nil {
		return fail(MethodPublicKey, name, rule, err.Error())
	}
	blob := key.Marshal()
	src, srcOK := remoteIP(conn.RemoteAddr())
	var fromRule, fromReason string
	for _, kl := range lines {
		if !bytes.Equal(kl.key.Marshal(), blob) {
			continue
		}
		if kl.from != nil && (!srcOK || !matchFrom(kl.from, src)) {
			// sshd goes on to later lines holding the same key.
			fromRule = fmt.Sprintf("%s:%d from=", rule, kl.line)
			fromReason = fmt.Sprintf("source address %s not permitted", conn.RemoteAddr())
			continue
		}
		r := kl.restrictions
		if r.ForcedCommand != "" {
			r.ForcedCommandRule = fmt.Sprintf("%s:%d command", rule, kl.line)
		}
		return permissions(u, MethodPublicKey, ssh.FingerprintSHA256(key), r, nil)
	}
	if fromRule != "" {
		return fail(MethodPublicKey, name, fromRule, fromReason)
	}
	return fail(MethodPublicKey, name, rule, "key "+ssh.FingerprintSHA256(key)+" not listed")
}

// Critical options and extensions of OpenSSH user certificates
// (PROTOCOL.certkeys).
const (
	optForceCommand  = "force-command"
	optSourceAddress = "source-address"
)

// ExtensionAutomation marks a user certificate for automation (see
// Restrictions.Automation): an extension, not a critical option, so that
// sshd, which ignores extensions it does not know, still accepts the
// certificate (PROTOCOL.certkeys).
const ExtensionAutomation = "automation@sluice"

func (a *Authenticator) certificate(conn ssh.ConnMetadata, u *userEntry, cert *ssh.Certificate) (*ssh.Permissions, error) {
	const rule = "trusted_user_ca_keys"
	m, remote := MethodCertificate, conn.RemoteAddr()
	if cert.CertType != ssh.UserCert {
		return fail(m, u.Name, rule, "not a user certificate")
	}
	ca := cert.SignatureKey.Marshal()
	if !slices.ContainsFunc(a.cas, func(k []byte) bool { return bytes.Equal(k, ca) }) {
		return fail(m, u.Name, rule, "certificate signed by an untrusted CA "+ssh.FingerprintSHA256(cert.SignatureKey))
	}
	if len(cert.ValidPrincipals) == 0 {
		return fail(m, u.Name, rule+" principals", "certificate has no principals")
	}
	if !slices.Contains(cert.ValidPrincipals, u.Name) {
		return fail(m, u.Name, rule+" principals", fmt.Sprintf("principal %q not in %q", u.Name, cert.ValidPrincipals))
	}
	for opt := range cert.CriticalOptions {
		if opt != optForceCommand && opt != optSourceAddress {
			return fail(m, u.Name, rule+" critical options", fmt.Sprintf("unsupported critical option %q", opt))
		}
	}
	now := a.clock()
	if after := cert.ValidAfter; after > uint64(now.Unix()) || int64(after) < 0 {
		return fail(m, u.Name, rule+" validity", "certificate not yet valid")
	}
	if before := cert.ValidBefore; before != ssh.CertTimeInfinity && (int64(before) < 0 || uint64(now.Unix()) >= before) {
		return fail(m, u.Name, rule+" validity", "certificate expired")
	}
	checker := ssh.CertChecker{
		SupportedCriticalOptions: []string{optForceCommand, optSourceAddress},
		Clock:                    a.clock,
	}
	if err := checker.CheckCert(u.Name, cert); err != nil {
		return fail(m, u.Name, rule, err.Error())
	}
	var crit map[string]string
	if sa, ok := cert.CriticalOptions[optSourceAddress]; ok {
		src, srcOK := remoteIP(remote)
		allowed, err := matchSourceAddress(sa, src)
		if err != nil || !srcOK || !allowed {
			return fail(m, u.Name, rule+" source-address", fmt.Sprintf("source address %s not in %q", remote, sa))
		}
		// x/crypto/ssh enforces it once more on the returned Permissions.
		crit = map[string]string{optSourceAddress: sa}
	}
	_, pty := cert.Extensions["permit-pty"]
	_, pf := cert.Extensions["permit-port-forwarding"]
	_, agent := cert.Extensions["permit-agent-forwarding"]
	_, x11 := cert.Extensions["permit-X11-forwarding"]
	_, automation := cert.Extensions[ExtensionAutomation]
	r := Restrictions{
		NoPty:             !pty,
		NoPortForwarding:  !pf,
		NoAgentForwarding: !agent,
		NoX11Forwarding:   !x11,
		ForcedCommand:     cert.CriticalOptions[optForceCommand],
		Automation:        automation,
	}
	if r.ForcedCommand != "" {
		r.ForcedCommandRule = rule + " " + optForceCommand
	}
	return permissions(u, m, ssh.FingerprintSHA256(cert.Key), r, crit)
}

// matchSourceAddress checks a certificate's source-address list: IP
// addresses and CIDRs separated by commas (PROTOCOL.certkeys).
func matchSourceAddress(list string, ip netip.Addr) (bool, error) {
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		var pfx netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			pfx, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return false, fmt.Errorf("auth: source-address %q: %w", list, err)
		}
		if pfx.Masked().Contains(ip) {
			return true, nil
		}
	}
	return false, nil
}

func remoteIP(addr net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

func permissions(u *userEntry, method, fingerprint string, r Restrictions, crit map[string]string) (*ssh.Permissions, error) {
	id := Identity{
		User:           u.Name,
		Groups:         slices.Clone(u.Groups),
		Method:         method,
		KeyFingerprint: fingerprint,
		Restrictions:   r,
	}
	return &ssh.Permissions{CriticalOptions: crit, ExtraData: map[any]any{identityKey{}: id}}, nil
}

// IdentityOf reads back the identity that the authentication callbacks put
// in p (ssh.ServerConn.Permissions).
func IdentityOf(p *ssh.Permissions) (Identity, error) {
	if p == nil {
		return Identity{}, errors.New("auth: permissions carry no identity")
	}
	id, ok := p.ExtraData[identityKey{}].(Identity)
	if !ok || id.User == "" {
		return Identity{}, errors.New("auth: permissions carry no identity")
	}
	return id, nil
}
