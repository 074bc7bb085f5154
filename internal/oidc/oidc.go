package oidc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Params configures a Provider.
type Params struct {
	// Issuer is the identity provider's issuer URL; its discovery document
	// is at Issuer + "/.well-known/openid-configuration".
	Issuer       string
	ClientID     string
	ClientSecret string // "" for a public client
	// RootCAs, when not nil, are the only roots trusted for the identity
	// provider's TLS certificate; nil means the system's.
	RootCAs *x509.CertPool
	// Scopes are asked for besides "openid", which is always asked for.
	Scopes  []string
	Mapping Mapping
	// Clock checks ID token expiry; nil means time.Now.
	Clock func() time.Time
}

// Provider signs users in at one identity provider. It is safe for
// concurrent use.
type Provider struct {
	p      Params
	client *http.Client

	mu       sync.Mutex
	oauth    *oauth2.Config // nil until discovery succeeded
	verifier *gooidc.IDTokenVerifier
}

// New returns a Provider for p; it makes no request.
func New(p Params) (*Provider, error) {
	if p.Issuer == "" || p.ClientID == "" {
		return nil, errors.New("oidc: issuer and client id are required")
	}
	if p.Mapping.UserClaim == "" {
		return nil, errors.New("oidc: no user claim")
	}
	if p.Clock == nil {
		p.Clock = time.Now
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12}
	// A Provider replaced by a reload is dropped, not closed: its idle
	// connections to the provider close on their own soon after.
	tr.IdleConnTimeout = idleTimeout
	return &Provider{p: p, client: &http.Client{Transport: tr, Timeout: requestTimeout}}, nil
}

// requestTimeout bounds each request to the identity provider;
// idleTimeout is how long a connection to it is kept for the next one.
const (
	requestTimeout = 15 * time.Second
	idleTimeout    = 30 * time.Second
)

// ReadRootCAs reads the PEM certificates of a CA file for Params.RootCAs.
func ReadRootCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("oidc: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// discover returns the OAuth 2.0 configuration and ID token verifier,
// fetching the discovery document the first time.
func (pr *Provider) discover() (*oauth2.Config, *gooidc.IDTokenVerifier, error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.oauth != nil {
		return pr.oauth, pr.verifier, nil
	}
	// The key set keeps the context given here for its later fetches: it
	// must outlive this sign-in, so it carries only the HTTP client.
	d, err := gooidc.NewProvider(gooidc.ClientContext(context.Background(), pr.client), pr.p.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("oidc: discovery at %s: %w", pr.p.Issuer, err)
	}
	ep := d.Endpoint()
	if ep.DeviceAuthURL == "" {
		return nil, nil, fmt.Errorf("oidc: %s offers no device authorization endpoint (RFC 8628)", pr.p.Issuer)
	}
	scopes := []string{gooidc.ScopeOpenID}
	for _, s := range pr.p.Scopes {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if pr.p.ClientSecret != "" {
		// x/oauth2 sends no client credentials to the device authorization
		// endpoint, so Start adds them as form parameters, and the token
		// endpoint gets them the same way (client_secret_post, RFC 6749
		// §2.3.1): one client authentication method for both.
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	pr.oauth = &oauth2.Config{ClientID: pr.p.ClientID, ClientSecret: pr.p.ClientSecret, Endpoint: ep, Scopes: scopes}
	pr.verifier = d.VerifierContext(gooidc.ClientContext(context.Background(), pr.client), &gooidc.Config{ClientID: pr.p.ClientID, Now: pr.p.Clock})
	return pr.oauth, pr.verifier, nil
}

// Grant is a device authorization in progress (RFC 8628 §3.2).
type Grant struct {
	// VerificationURI is where the user signs in and types UserCode;
	// VerificationURIComplete, when the identity provider gives one, holds
	// the code already (for a QR code).
	VerificationURI         string
	VerificationURIComplete string
	UserCode                string
	Expiry                  time.Time // zero when the provider gave none

	resp *oauth2.DeviceAuthResponse
}

// Start asks the identity provider for a device code.
func (pr *Provider) Start(ctx context.Context) (*Grant, error) {
	conf, _, err := pr.discover()
	if err != nil {
		return nil, err
	}
	var opts []oauth2.AuthCodeOption
	if pr.p.ClientSecret != "" {
		opts = append(opts, oauth2.SetAuthURLParam("client_secret", pr.p.ClientSecret))
	}
	da, err := conf.DeviceAuth(pr.context(ctx), opts...)
	if err != nil {
		return nil, fmt.Errorf("oidc: device authorization: %w", err)
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return nil, errors.New("oidc: device authorization response lacks device_code, user_code or verification_uri")
	}
	// What is shown reaches the person's terminal as it is: refuse
	// anything but printable ASCII, so no escape sequence gets there.
	for _, s := range []string{da.UserCode, da.VerificationURI, da.VerificationURIComplete} {
		if !printable(s) || len(s) > maxShown {
			return nil, fmt.Errorf("oidc: device authorization response: %q is not printable ASCII of at most %d bytes", trim(s), maxShown)
		}
	}
	return &Grant{VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete, UserCode: da.UserCode, Expiry: da.Expiry, resp: da}, nil
}

// maxShown bounds the user code and verification URIs shown to the user.
const maxShown = 512

// printable reports whether s is printable ASCII without spaces (RFC 3986
// URIs and RFC 8628 §6.1 user codes are).
func printable(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// context carries the Provider's HTTP client to x/oauth2.
func (pr *Provider) context(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, pr.client)
}

// Refused is a sign-in that the identity provider or the claim mapping
// refused; Reason is fit for the audit.
type Refused struct {
	Reason string
}

func (r *Refused) Error() string { return "oidc: sign-in refused: " + r.Reason }

// Wait polls until the user approves or denies g in the browser, g
// expires or ctx ends, then verifies the ID token and maps its claims.
// A denial, an expiry and a token or claims that do not pass are a
// *Refused.
func (pr *Provider) Wait(ctx context.Context, g *Grant) (Identity, error) {
	raw, err := pr.idToken(ctx, g)
	if err != nil {
		return Identity{}, err
	}
	return pr.Verify(ctx, raw)
}

// idToken polls the token endpoint for g and returns the raw ID token.
func (pr *Provider) idToken(ctx context.Context, g *Grant) (string, error) {
	conf, _, err := pr.discover()
	if err != nil {
		return "", err
	}
	tok, err := conf.DeviceAccessToken(pr.context(ctx), g.resp)
	if err != nil {
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.ErrorCode == "expired_token" {
			return "", &Refused{Reason: "not approved in time (expired_token)"}
		}
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.ErrorCode != "" {
			reason := "identity provider answered " + re.ErrorCode
			if re.ErrorDescription != "" {
				reason += ": " + re.ErrorDescription
			}
			return "", &Refused{Reason: reason}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return "", &Refused{Reason: "not approved in time"}
		}
		return "", fmt.Errorf("oidc: token request: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return "", &Refused{Reason: "token response holds no ID token"}
	}
	return raw, nil
}

// Verify checks an ID token (OpenID Connect Core §3.1.3.7: signature by
// the issuer's keys, iss, aud, exp) and maps its claims.
func (pr *Provider) Verify(ctx context.Context, rawIDToken string) (Identity, error) {
	_, verifier, err := pr.discover()
	if err != nil {
		return Identity{}, err
	}
	idt, err := verifier.Verify(pr.context(ctx), rawIDToken)
	if err != nil {
		return Identity{}, &Refused{Reason: "ID token rejected: " + strings.TrimPrefix(err.Error(), "oidc: ")}
	}
	var payload json.RawMessage
	if err := idt.Claims(&payload); err != nil {
		return Identity{}, &Refused{Reason: "ID token claims: " + err.Error()}
	}
	id, err := pr.p.Mapping.Map(payload)
	if err != nil {
		return Identity{}, err
	}
	id.Issuer = idt.Issuer
	return id, nil
}
