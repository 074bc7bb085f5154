package gateway

import (
	"bytes"
	"fmt"
	"os"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/oidc"
)

// signOn returns the identity provider of the config's oidc section, or
// nil without one. It makes no request: discovery waits for the first
// sign-in, so the gateway starts while the provider is down.
func signOn(c *config.OIDC) (*oidc.Provider, error) {
	if c == nil {
		return nil, nil
	}
	p := oidc.Params{
		Issuer:   c.Issuer,
		ClientID: c.ClientID,
		Scopes:   c.Scopes,
		Mapping:  oidc.Mapping{UserClaim: c.UserClaim, GroupsClaim: c.GroupsClaim},
	}
	if c.ClientSecretFile != "" {
		secret, err := os.ReadFile(c.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("gateway: oidc.client_secret_file: %w", err)
		}
		if p.ClientSecret = string(bytes.TrimSpace(secret)); p.ClientSecret == "" {
			return nil, fmt.Errorf("gateway: oidc.client_secret_file: %s is empty", c.ClientSecretFile)
		}
	}
	if c.CAFile != "" {
		pool, err := oidc.ReadRootCAs(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("gateway: oidc.ca_file: %w", err)
		}
		p.RootCAs = pool
	}
	pr, err := oidc.New(p)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return pr, nil
}
