package config

import (
	"net/url"
	"slices"

	"go.yaml.in/yaml/v3"
)

// OIDC is the OpenID provider that services with oidc: true sign users in
// at (internal/oidc).
type OIDC struct {
	Issuer           string // https URL; discovery at Issuer/.well-known/openid-configuration
	ClientID         string
	ClientSecretFile string // absolute path, or "" for a public client
	CAFile           string // absolute path of PEM roots for the provider's TLS, or "" for the system's
	UserClaim        string // the claim naming the user; default "email"
	GroupsClaim      string // the claim listing groups; "" = none
	Scopes           []string
	// AutoProvision lets a user the provider names who is not in users
	// log in, with only the provider's groups.
	AutoProvision bool
}

// Defaults of the oidc section; docs/config.md says why.
const defaultUserClaim = "email"

var defaultOIDCScopes = []string{"openid", "email", "profile"}

func (d *decoder) oidc(n *yaml.Node, key string) *OIDC {
	o := &OIDC{UserClaim: defaultUserClaim, Scopes: slices.Clone(defaultOIDCScopes)}
	d.mapping(n, key, []field{
		{"issuer", true, func(n *yaml.Node, k string) {
			var s string
			if !d.str(n, k, &s) {
				return
			}
			u, err := url.Parse(s)
			if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				d.errorf(n, k, "bad issuer %q: want an https URL without query, fragment or user info (OpenID Connect Discovery §2)", s)
				return
			}
			o.Issuer = s
		}},
		{"client_id", true, func(n *yaml.Node, k string) {
			if d.str(n, k, &o.ClientID) && o.ClientID == "" {
				d.errorf(n, k, "must not be empty")
			}
		}},
		{"client_secret_file", false, func(n *yaml.Node, k string) { d.path(n, k, &o.ClientSecretFile) }},
		{"ca_file", false, func(n *yaml.Node, k string) { d.path(n, k, &o.CAFile) }},
		{"user_claim", false, func(n *yaml.Node, k string) {
			if d.str(n, k, &o.UserClaim) && o.UserClaim == "" {
				d.errorf(n, k, "must not be empty")
			}
		}},
		{"groups_claim", false, func(n *yaml.Node, k string) { d.str(n, k, &o.GroupsClaim) }},
		{"scopes", false, func(n *yaml.Node, k string) {
			d.strList(n, k, &o.Scopes, func(n *yaml.Node, k, s string) bool {
				// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
				for _, c := range []byte(s) {
					if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
						d.errorf(n, k, "bad scope %q: RFC 6749 §3.3 allows printable ASCII but space, \" and \\", s)
						return false
					}
				}
				return s != ""
			})
		}},
		{"auto_provision", false, func(n *yaml.Node, k string) { d.boolean(n, k, &o.AutoProvision) }},
	})
	return o
}

// checkOIDC reports services with oidc: true in a file without an oidc
// section, and services that would ask a sign-on for a second factor: the
// identity provider asks its own, and a sign-on and a TOTP prompt cannot
// share the one keyboard-interactive method a connection has.
func (d *decoder) checkOIDC(c *Config) {
	for _, s := range c.Services {
		if s.OIDC && s.MFA.On() {
			d.errorAt(s.MFA.Line, "services["+s.Name+"].mfa", "service %q offers single sign-on (oidc: true) and mfa: a sign-on gets its second factor from the identity provider; put mfa on another service", s.Name)
		}
	}
	for _, r := range d.oidcUses {
		for _, s := range c.Services {
			if s.Name == r.name && s.Router.Transparent {
				d.errorAt(r.line, r.key, "service %q offers single sign-on on transparent routing, where the key alone names the person: use keys there", s.Name)
			}
		}
	}
	if c.OIDC != nil {
		return
	}
	for _, r := range d.oidcUses {
		d.errorAt(r.line, r.key, "service %q offers single sign-on but the file has no oidc section", r.name)
	}
}
