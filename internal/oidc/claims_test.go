package oidc

import (
	"slices"
	"strings"
	"testing"
)

func TestMap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m       Mapping
		payload string
		user    string
		groups  []string
		refused string
	}{
		{"email", emailGroups, `{"sub":"a","email":"alice@example.org","email_verified":true,"groups":["ops","db","ops"]}`, "alice@example.org", []string{"db", "ops"}, ""},
		{"unverified email", emailGroups, `{"sub":"a","email":"alice@example.org","email_verified":false}`, "", nil, "not verified"},
		{"email_verified as a string", emailGroups, `{"sub":"a","email":"alice@example.org","email_verified":"true"}`, "", nil, "not verified"},
		{"no email_verified", emailGroups, `{"sub":"a","email":"alice@example.org"}`, "", nil, "not verified"},
		{"preferred_username", Mapping{UserClaim: "preferred_username"}, `{"sub":"a","preferred_username":"alice","groups":["ops"]}`, "alice", nil, ""},
		{"sub", Mapping{UserClaim: "sub", GroupsClaim: "roles"}, `{"sub":"u-42","roles":"ops"}`, "u-42", []string{"ops"}, ""},
		{"plus would be inband routing", Mapping{UserClaim: "sub"}, `{"sub":"alice+db1"}`, "", nil, "not a valid Sluice user name"},
		{"path in the name", Mapping{UserClaim: "preferred_username"}, `{"sub":"a","preferred_username":"../root"}`, "", nil, "not a valid Sluice user name"},
		{"no sub", Mapping{UserClaim: "preferred_username"}, `{"preferred_username":"alice"}`, "", nil, `no "sub"`},
		{"user claim not a string", Mapping{UserClaim: "preferred_username"}, `{"sub":"a","preferred_username":["alice"]}`, "", nil, "naming the user"},
		{"user claim null", Mapping{UserClaim: "preferred_username"}, `{"sub":"a","preferred_username":null}`, "", nil, "naming the user"},
		{"groups not strings", Mapping{UserClaim: "sub", GroupsClaim: "groups"}, `{"sub":"a","groups":[1,2]}`, "", nil, "neither a string nor an array"},
		{"groups outside the alphabet left out", Mapping{UserClaim: "sub", GroupsClaim: "groups"}, `{"sub":"a","groups":["/ops","ops","a b"]}`, "a", []string{"ops"}, ""},
		{"groups null", Mapping{UserClaim: "sub", GroupsClaim: "groups"}, `{"sub":"a","groups":null}`, "a", nil, ""},
		{"not an object", emailGroups, `["sub"]`, "", nil, "not a JSON object"},
		{"trailing data", Mapping{UserClaim: "sub"}, `{"sub":"a"} {"sub":"b"}`, "", nil, "not a JSON object"},
		{"null", Mapping{UserClaim: "sub"}, `null`, "", nil, "not a JSON object"},
		{"too many groups", Mapping{UserClaim: "sub", GroupsClaim: "g"}, `{"sub":"a","g":[` + strings.Repeat(`"x",`, maxGroups) + `"x"]}`, "", nil, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.m.Map([]byte(tc.payload))
			if tc.refused != "" {
				if !isRefused(err, tc.refused) {
					t.Fatalf("got %+v, %v, want refused with %q", id, err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.User != tc.user || !slices.Equal(id.Groups, tc.groups) {
				t.Fatalf("got %+v, want user %q groups %q", id, tc.user, tc.groups)
			}
		})
	}
}

// FuzzMap: any claims either map to a valid user and groups or are
// refused; nothing panics.
func FuzzMap(f *testing.F) {
	for _, s := range []string{
		`{"sub":"a","email":"alice@example.org","email_verified":true,"groups":["ops"]}`,
		`{"sub":"a","groups":"ops"}`, `{"sub":1}`, `null`, `[]`, `{"sub":"a","groups":[null]}`,
	} {
		f.Add([]byte(s), "email", "groups")
	}
	f.Fuzz(func(t *testing.T, payload []byte, userClaim, groupsClaim string) {
		m := Mapping{UserClaim: userClaim, GroupsClaim: groupsClaim}
		id, err := m.Map(payload)
		if err != nil {
			if _, ok := err.(*Refused); !ok {
				t.Fatalf("error %v is not a *Refused", err)
			}
			return
		}
		if !userNameRE.MatchString(id.User) || len(id.User) > maxNameLen || id.Subject == "" {
			t.Fatalf("mapped to bad identity %+v", id)
		}
		for _, g := range id.Groups {
			if !groupNameRE.MatchString(g) {
				t.Fatalf("mapped to bad group %q", g)
			}
		}
	})
}

// TestPrintable: a user code or URI with a control character, a space or
// non-ASCII bytes (an escape sequence for the terminal) is not shown.
func TestPrintable(t *testing.T) {
	for s, want := range map[string]bool{
		"https://127.0.0.1:8443/device?user_code=ABCD-EFGH": true,
		"WDJB-MJHT":            true,
		"ABCD\x1b]0;owned\x07": false,
		"ABCD EFGH":            false,
		"ABCD\r\nPassword:":    false,
		"ÄBCD":                 false,
	} {
		if got := printable(s); got != want {
			t.Errorf("printable(%q): got %v, want %v", s, got, want)
		}
	}
}
