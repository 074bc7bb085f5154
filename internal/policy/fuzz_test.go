package policy

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzForwardLocalHost feeds direct-tcpip destination hosts, as a client
// sends them, to the forward decision. An unspecified address is never
// accepted, whatever the list; an IP literal is judged as netip reads it.
func FuzzForwardLocalHost(f *testing.F) {
	for _, s := range []string{"0.0.0.0", "::", "[::]", "::ffff:0.0.0.0", "0", "0x0", "00.0.0.0.", "::%lo",
		"0.0.0.1", "0x1", "db.example.com", "127.0.0.1", "[::1]", "0..0", "0.0.0.0.0", ""} {
		f.Add(s)
	}
	p, err := Compile("f", Spec{ForwardLocal: fwds("*:*")})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host string) {
		unspec := unspecifiedHost(host)
		v := p.ForwardLocal(host, 22, Restrictions{})
		if unspec && v.Accept {
			t.Fatalf("%q: unspecified, got accepted", host)
		}
		h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if i := strings.IndexByte(h, '%'); i >= 0 {
			h = h[:i]
		}
		if a, err := netip.ParseAddr(h); err == nil && unspec != a.Unmap().IsUnspecified() {
			t.Fatalf("%q: got unspecified %v, netip says %v", host, unspec, a.Unmap().IsUnspecified())
		}
		if host != "" && !unspec && !v.Accept {
			t.Fatalf("%q: got refused (%s), want accepted by *:*", host, v.Reason)
		}
	})
}

// FuzzEnvGitProtocol: a GIT_PROTOCOL value is accepted only in git's form,
// never with a byte a shell or a terminal would read.
func FuzzEnvGitProtocol(f *testing.F) {
	for _, s := range []string{"version=2", "version=2:object-format=sha256", "", "version=2;id", "$(id)", "a\nb"} {
		f.Add(s)
	}
	p, err := Compile("f", Spec{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value string) {
		v := p.Env("GIT_PROTOCOL", value)
		if v.Accept && (value == "" || len(value) > maxGitProtocol || strings.ContainsFunc(value, func(r rune) bool {
			return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=:._-", r)
		})) {
			t.Fatalf("%q: got accepted", value)
		}
	})
}
