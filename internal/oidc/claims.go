package oidc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// Mapping says which ID token claims name the Sluice user and its groups.
type Mapping struct {
	// UserClaim is the string claim that names the user: "email",
	// "preferred_username", "sub" or another. With "email" the token must
	// also carry "email_verified": true (OpenID Connect Core §5.1), so an
	// address nobody proved to own names no one.
	UserClaim string
	// GroupsClaim is the claim listing the user's groups (an array of
	// strings, or one string); "" takes no groups from the token.
	GroupsClaim string
}

// Identity is who signed in, from a verified ID token.
type Identity struct {
	User    string   // the UserClaim's value
	Groups  []string // the GroupsClaim's values that are valid group names, sorted, without repeats
	Subject string   // "sub": the identity provider's stable id of the user
	Issuer  string   // "iss"
}

// User and group names as the config allows them (internal/config): a
// claim value outside these alphabets names no Sluice user or group, so
// it cannot smuggle "+" (inband routing's separator) or a path.
var (
	userNameRE  = regexp.MustCompile(`^[a-zA-Z0-9_.@-]+$`)
	groupNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
)

// Bounds on what one token may carry.
const (
	maxNameLen = 256
	maxGroups  = 256
)

// Map reads the claims of a verified ID token, the JSON object payload,
// and returns the Identity they name. What it cannot map is a *Refused;
// it never guesses.
func (m Mapping) Map(payload []byte) (Identity, error) {
	var claims map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&claims); err != nil || claims == nil || dec.More() {
		return Identity{}, &Refused{Reason: "ID token claims are not a JSON object"}
	}
	var id Identity
	if !stringClaim(claims, "sub", &id.Subject) || id.Subject == "" {
		return Identity{}, &Refused{Reason: `ID token has no "sub" string`}
	}
	_ = stringClaim(claims, "iss", &id.Issuer)
	if !stringClaim(claims, m.UserClaim, &id.User) || id.User == "" {
		return Identity{}, &Refused{Reason: fmt.Sprintf("ID token has no %q string naming the user", m.UserClaim)}
	}
	if len(id.User) > maxNameLen || !userNameRE.MatchString(id.User) {
		return Identity{}, &Refused{Reason: fmt.Sprintf("claim %q = %q is not a valid Sluice user name", m.UserClaim, trim(id.User))}
	}
	if m.UserClaim == "email" {
		var verified bool
		if raw, ok := claims["email_verified"]; !ok || json.Unmarshal(raw, &verified) != nil || !verified {
			return Identity{}, &Refused{Reason: fmt.Sprintf("email %q is not verified by the identity provider (email_verified)", id.User)}
		}
	}
	if m.GroupsClaim == "" {
		return id, nil
	}
	raw, ok := claims[m.GroupsClaim]
	if !ok || string(raw) == "null" {
		return id, nil
	}
	var groups []string
	if err := json.Unmarshal(raw, &groups); err != nil {
		var one string
		if json.Unmarshal(raw, &one) != nil {
			return Identity{}, &Refused{Reason: fmt.Sprintf("claim %q is neither a string nor an array of strings", m.GroupsClaim)}
		}
		groups = []string{one}
	}
	if len(groups) > maxGroups {
		return Identity{}, &Refused{Reason: fmt.Sprintf("claim %q lists %d groups, more than %d", m.GroupsClaim, len(groups), maxGroups)}
	}
	// A group outside the alphabet of config group names (Keycloak's
	// "/ops" paths) is left out: no rule can name it.
	for _, g := range groups {
		if len(g) <= maxNameLen && groupNameRE.MatchString(g) {
			id.Groups = append(id.Groups, g)
		}
	}
	slices.Sort(id.Groups)
	id.Groups = slices.Compact(id.Groups)
	return id, nil
}

// stringClaim sets *dst to the string claim name; it reports false when
// the claim is absent or not a string.
func stringClaim(claims map[string]json.RawMessage, name string, dst *string) bool {
	raw, ok := claims[name]
	return ok && json.Unmarshal(raw, dst) == nil
}

// trim bounds a claim value quoted in a reason.
func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
