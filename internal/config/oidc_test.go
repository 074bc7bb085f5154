package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestOIDC(t *testing.T) {
	c := mustParse(t, minimal+`    oidc: true
  - name: keys-only
    listen: 127.0.0.1:2223
    client_zones: [z]
    server_zones: [z]
    router: {inband: true}
    upstream: {known_hosts: kh}
oidc:
  issuer: https://127.0.0.1:8443
  client_id: sluice
  client_secret_file: secret
  ca_file: ca.pem
  groups_claim: groups
  scopes: [openid, email, groups]
`)
	want := OIDC{Issuer: "https://127.0.0.1:8443", ClientID: "sluice", ClientSecretFile: "/etc/sluice/secret", CAFile: "/etc/sluice/ca.pem", UserClaim: "email", GroupsClaim: "groups", Scopes: []string{"openid", "email", "groups"}}
	if c.OIDC == nil || !reflect.DeepEqual(*c.OIDC, want) {
		t.Fatalf("got %+v, want %+v", c.OIDC, want)
	}
	if !c.Services[0].OIDC || c.Services[1].OIDC {
		t.Fatalf("got services oidc %v, %v, want true, false", c.Services[0].OIDC, c.Services[1].OIDC)
	}
	d := mustParse(t, minimal+"oidc: {issuer: \"https://idp.test/realms/x\", client_id: c}\n")
	if d.OIDC.UserClaim != "email" || !slices.Equal(d.OIDC.Scopes, []string{"openid", "email", "profile"}) || d.OIDC.AutoProvision {
		t.Fatalf("got %+v, want the defaults", d.OIDC)
	}
	// A user with no credential of its own logs in through the provider.
	mustParse(t, strings.Replace(minimal, "authorized_keys: a.pub", "groups: [ops]", 1)+"oidc: {issuer: \"https://idp.test\", client_id: c}\n")
}

func TestOIDCErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{minimal + "    oidc: true\n", `t.yaml:13: services[s].oidc: service "s" offers single sign-on but the file has no oidc section`},
		{strings.Replace(minimal, "router: {inband: true}", "router: {transparent: true}", 1) + "    oidc: true\noidc: {issuer: \"https://idp.test\", client_id: c}\n", `t.yaml:13: services[s].oidc: service "s" offers single sign-on on transparent routing`},
		{minimal + "    oidc: true\n    mfa: {required: true}\noidc: {issuer: \"https://idp.test\", client_id: c}\n", `t.yaml:14: services[s].mfa: service "s" offers single sign-on (oidc: true) and mfa`},
		{minimal + "oidc: {issuer: \"http://127.0.0.1:8080\", client_id: c}\n", `bad issuer "http://127.0.0.1:8080": want an https URL`},
		{minimal + "oidc: {issuer: \"https://idp.test/?a=b\", client_id: c}\n", "without query"},
		{minimal + "oidc: {issuer: \"https://u@idp.test\", client_id: c}\n", "user info"},
		{minimal + "oidc: {issuer: \"https://idp.test\"}\n", "client_id"},
		{minimal + "oidc: {issuer: \"https://idp.test\", client_id: \"\"}\n", "must not be empty"},
		{minimal + "oidc: {issuer: \"https://idp.test\", client_id: c, scopes: [\"a b\"]}\n", `bad scope "a b"`},
		{minimal + "oidc: {issuer: \"https://idp.test\", client_id: c, user_claim: \"\"}\n", "must not be empty"},
		{minimal + "oidc: {issuer: \"https://idp.test\", client_id: c, nonce: x}\n", "nonce"},
	} {
		got := strings.Join(errorLines(t, tc.text), "\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("got %q, want it to hold %q", got, tc.want)
		}
	}
}
