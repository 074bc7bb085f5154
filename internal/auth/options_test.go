package auth

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRGyJ9ROkmxzF60WRYPtGVWbqHoljLgkRxKbkoNrwaX test@sluice"

func TestParseKeyLine(t *testing.T) {
	tests := []struct {
		name    string
		opts    string
		want    Restrictions
		from    bool
		wantErr string
	}{
		{name: "no options"},
		{name: "no-pty", opts: "no-pty", want: Restrictions{NoPty: true}},
		{name: "case insensitive", opts: "No-X11-Forwarding", want: Restrictions{NoX11Forwarding: true}},
		{name: "all no-", opts: "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding",
			want: Restrictions{NoPty: true, NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}},
		{name: "restrict", opts: "restrict",
			want: Restrictions{NoPty: true, NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}},
		{name: "restrict then pty", opts: "restrict,pty,port-forwarding",
			want: Restrictions{NoAgentForwarding: true, NoX11Forwarding: true}},
		{name: "restrict re-enables agent and x11", opts: "restrict,agent-forwarding,X11-forwarding",
			want: Restrictions{NoPty: true, NoPortForwarding: true}},
		{name: "command with quotes", opts: `command="echo \"hi, there\""`, want: Restrictions{ForcedCommand: `echo "hi, there"`}},
		{name: "command twice", opts: `command="a",command="b"`, wantErr: "twice"},
		{name: "permitopen repeated", opts: `permitopen="db:5432",permitopen="[::1]:*"`,
			want: Restrictions{PermitOpen: []string{"db:5432", "[::1]:*"}}},
		{name: "permitopen without port", opts: `permitopen="db"`, wantErr: "host:port"},
		{name: "environment ignored", opts: `environment="LD_PRELOAD=/tmp/x.so"`},
		{name: "no-user-rc accepted", opts: "no-user-rc"},
		{name: "from", opts: `from="10.0.0.0/8,!10.1.*"`, from: true},
		{name: "from bad cidr", opts: `from="10.0.0.0/33"`, wantErr: "from="},
		{name: "from host bits", opts: `from="10.0.0.1/8"`, wantErr: "host bits"},
		{name: "from empty pattern", opts: `from="10.0.0.1,,"`, wantErr: "empty pattern"},
		{name: "unknown option", opts: "tunnel=\"1\"", wantErr: "unsupported option"},
		{name: "cert-authority not supported", opts: "cert-authority", wantErr: "unsupported option"},
		{name: "flag with value", opts: `no-pty="x"`, wantErr: "takes no value"},
		{name: "command without value", opts: "command", wantErr: "needs a value"},
		{name: "unquoted value", opts: "command=ls", wantErr: "quoted"},
		{name: "missing end quote", opts: `command="ls`, wantErr: "end quote"},
		{name: "empty option", opts: "no-pty,,pty", wantErr: "empty option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := testKey
			if tt.opts != "" {
				line = tt.opts + " " + testKey
			}
			kl, err := parseKeyLine([]byte(line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if !reflect.DeepEqual(kl.restrictions, tt.want) {
				t.Errorf("got %+v, want %+v", kl.restrictions, tt.want)
			}
			if got := kl.from != nil; got != tt.from {
				t.Errorf("got from set %v, want %v", got, tt.from)
			}
			if want, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(testKey)); string(kl.key.Marshal()) != string(want.Marshal()) {
				t.Errorf("got key %s, want %s", ssh.FingerprintSHA256(kl.key), ssh.FingerprintSHA256(want))
			}
		})
	}
}

func TestParseKeyLineRejectsGarbage(t *testing.T) {
	for _, line := range []string{
		"",
		"# comment",
		"no-pty",
		"ssh-ed25519 AAAA",
		"no-pty ssh-ed25519 AAAA",
		"restrict ssh-rsa " + strings.Fields(testKey)[1], // declared type does not match the blob
		"no-pty " + testKey + "\nno-pty " + testKey,
	} {
		if _, err := parseKeyLine([]byte(line)); err == nil {
			t.Errorf("parseKeyLine(%q): got nil error, want one", line)
		}
	}
}

func TestMatchFrom(t *testing.T) {
	tests := []struct {
		from string
		addr string
		want bool
	}{
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"127.0.0.0/8", "127.9.9.9", true},
		{"10.0.0.0/8", "127.0.0.1", false},
		{"127.0.0.?", "127.0.0.5", true},
		{"127.0.0.?", "127.0.0.50", false},
		{"127.*", "127.0.0.50", true},
		{"*,!127.0.0.1", "127.0.0.1", false},
		{"!127.0.0.1,*", "127.0.0.1", false},
		{"!127.0.0.1,*", "127.0.0.2", true},
		{"!10.0.0.0/8", "127.0.0.1", false}, // negation alone permits nothing
		{"::1", "::1", true},
		{"2001:db8::/32", "2001:db8::5", true},
		{"127.0.0.1", "::ffff:127.0.0.1", true}, // IPv4-mapped IPv6 is unmapped
	}
	for _, tt := range tests {
		pats, err := parseFrom(tt.from)
		if err != nil {
			t.Fatalf("parseFrom(%q): %v", tt.from, err)
		}
		if got := matchFrom(pats, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("from=%q addr %s: got %v, want %v", tt.from, tt.addr, got, tt.want)
		}
	}
}

func FuzzParseKeyLine(f *testing.F) {
	for _, s := range []string{
		testKey,
		"no-pty " + testKey,
		`restrict,pty,command="echo \"x\"",permitopen="h:1",from="10.0.0.0/8,!*.evil" ` + testKey,
		`environment="A=B",no-user-rc ` + testKey,
		`command="unterminated ` + testKey,
		`from="::1/129" ` + testKey,
		"x=\"\\\"\" " + testKey,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		kl, err := parseKeyLine(line)
		if err != nil {
			return
		}
		if kl.key == nil {
			t.Fatal("accepted line without a key")
		}
		for _, p := range kl.restrictions.PermitOpen {
			if err := checkPermitOpen(p); err != nil {
				t.Fatalf("accepted bad permitopen: %v", err)
			}
		}
		if kl.from != nil {
			matchFrom(kl.from, netip.MustParseAddr("127.0.0.1"))
		}
	})
}
