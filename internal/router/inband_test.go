package router

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestParseInbandValid(t *testing.T) {
	tests := []struct {
		in       string
		wantUser string
		wantHost string
		wantPort uint16
	}{
		{"alice+db1", "alice", "db1", 22},
		{"alice+db1:2222", "alice", "db1", 2222},
		{"a+b", "a", "b", 22},
		{"alice.smith_2-x+Host-1.Example.com:1", "alice.smith_2-x", "Host-1.Example.com", 1},
		{"bob+10.0.0.5", "bob", "10.0.0.5", 22},
		{"bob+10.0.0.5:65535", "bob", "10.0.0.5", 65535},
		{"bob+[::1]", "bob", "::1", 22},
		{"bob+[::1]:22", "bob", "::1", 22},
		{"bob+[2001:db8::5]:2200", "bob", "2001:db8::5", 2200},
		{"bob+[::ffff:127.0.0.1]:22", "bob", "::ffff:127.0.0.1", 22},
		{"bob+0host", "bob", "0host", 22},
		{"bob+123abc.example", "bob", "123abc.example", 22},
		{"bob+10.0.0.5_2222", "bob", "10.0.0.5", 2222},
		{"bob+[::1]_2222", "bob", "::1", 2222},
		{"alice+db1+postgres", "alice", "db1", 22},
		{"alice+db1_2222+app", "alice", "db1", 2222},
		{"bob+" + strings.Repeat("a", 63) + ".com", "bob", strings.Repeat("a", 63) + ".com", 22},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			in, err := ParseInband(tt.in)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			user, host, port := in.User, in.Host, in.Port
			if user != tt.wantUser || host != tt.wantHost || port != tt.wantPort {
				t.Errorf("got (%q, %q, %d), want (%q, %q, %d)", user, host, port, tt.wantUser, tt.wantHost, tt.wantPort)
			}
		})
	}
}

func TestParseInbandInvalid(t *testing.T) {
	long := strings.Repeat("a.", 126) + "ab" // 254 characters
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"plain user", "alice", ErrNotInband},
		{"empty", "", ErrNotInband},
		{"empty user", "+db1", ErrEmptyField},
		{"empty host", "alice+", ErrEmptyField},
		{"empty host with port", "alice+:22", ErrEmptyField},
		{"empty port", "alice+db1:", ErrEmptyField},
		{"empty port bracketed", "alice+[::1]:", ErrEmptyField},
		{"third plus", "alice+db1+db2+x", ErrExtraPlus},
		{"double plus", "alice++db1", ErrEmptyField},
		{"double plus before login", "alice+db1++root", ErrExtraPlus},
		{"percent in user", "ali%ce+db1", ErrBadUser},
		{"percent port", "alice+db1%2222", ErrBadHost},
		{"empty login", "alice+db1+", ErrEmptyField},
		{"plus in port", "alice+db1:+22", ErrEmptyField},
		{"login leading dash", "alice+db1+-oProxyCommand", ErrBadLogin},
		{"login percent", "alice+db1+post%67res", ErrBadLogin},
		{"login colon", "alice+db1+root:x", ErrBadLogin},
		{"login glob", "alice+db1+*", ErrBadLogin},
		{"login too long", "alice+db1+" + strings.Repeat("a", 33), ErrBadLogin},
		{"host glob", "alice+db*", ErrBadHost},
		{"host question", "alice+db?", ErrBadHost},
		{"host selector", "alice+env=prod", ErrBadHost},
		{"two separators", "alice+db1_22:22", ErrBadHost},
		{"two underscores", "alice+db1_2_2", ErrBadHost},
		{"empty underscore port", "alice+db1_", ErrEmptyField},
		{"percent login spelling", "alice+postgres%db1", ErrBadHost},
		{"at sign", "alice@corp+db1", ErrBadChar},
		{"at sign in host", "alice+db1@x", ErrBadChar},
		{"space", "alice+db 1", ErrBadChar},
		{"tab", "alice\t+db1", ErrBadChar},
		{"newline", "alice+db1\n", ErrBadChar},
		{"NUL", "alice+db1\x00", ErrBadChar},
		{"DEL", "alice+db1\x7f", ErrBadChar},
		{"non-ASCII user", "alicé+db1", ErrBadChar},
		{"non-ASCII host", "alice+bücher.example", ErrBadChar},
		{"user leading dash", "-oProxy+db1", ErrBadUser},
		{"user slash", "a/b+db1", ErrBadUser},
		{"user colon", "a:b+db1", ErrBadUser},
		{"port zero", "alice+db1:0", ErrBadPort},
		{"port leading zero", "alice+db1:022", ErrBadPort},
		{"port too big", "alice+db1:65536", ErrBadPort},
		{"port huge", "alice+db1:99999999999999999999", ErrBadPort},
		{"port minus", "alice+db1:-22", ErrBadPort},
		{"port name", "alice+db1:ssh", ErrBadPort},
		{"port hex", "alice+db1:0x16", ErrBadPort},
		{"unbracketed ipv6", "alice+::1", ErrBadHost},
		{"unbracketed ipv6 port", "alice+2001:db8::1:22", ErrBadHost},
		{"unterminated bracket", "alice+[::1", ErrBadHost},
		{"bracketed ipv4", "alice+[127.0.0.1]:22", ErrBadHost},
		{"bracketed name", "alice+[db1]:22", ErrBadHost},
		{"ipv6 zone", "alice+[fe80::1%25eth0]:22", ErrBadHost},
		{"junk after bracket", "alice+[::1]x", ErrBadHost},
		{"empty brackets", "alice+[]:22", ErrBadHost},
		{"label leading dash", "alice+-db1", ErrBadHost},
		{"label trailing dash", "alice+db1-.example", ErrBadHost},
		{"empty label", "alice+db1..example", ErrBadHost},
		{"trailing dot", "alice+db1.", ErrBadHost},
		{"leading dot", "alice+.db1", ErrBadHost},
		{"underscore is a port separator", "alice+db_x", ErrBadPort},
		{"label too long", "alice+" + strings.Repeat("a", 64) + ".com", ErrBadHost},
		{"name too long", "alice+" + long, ErrBadHost},
		{"bad ipv4", "alice+999.1.1.1", ErrBadHost},
		{"ipv4 leading zero", "alice+010.0.0.1", ErrBadHost},
		{"short ipv4", "alice+10.1", ErrBadHost},
		{"numeric tld", "alice+host.123", ErrBadHost},
		{"all digits", "alice+12345", ErrBadHost},
		{"percent", "alice+db%1", ErrBadHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseInband(tt.in)
			user, host, port := in.User, in.Host, in.Port
			if !errors.Is(err, tt.want) {
				t.Fatalf("got (%q, %q, %d, %v), want error %v", user, host, port, err, tt.want)
			}
			var ie *InbandError
			if !errors.As(err, &ie) || ie.Name != tt.in {
				t.Errorf("got error %#v, want *InbandError with Name %q", err, tt.in)
			}
			if !strings.HasPrefix(err.Error(), "router: ") {
				t.Errorf("got message %q, want prefix %q", err, "router: ")
			}
			if user != "" || host != "" || port != 0 {
				t.Errorf("got (%q, %q, %d) with an error, want zero values", user, host, port)
			}
		})
	}
}

func TestGatewayUser(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"alice+db1", "alice"},
		{"alice+db1+x", "alice"},
		{"+db1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := GatewayUser(tt.in); got != tt.want {
			t.Errorf("GatewayUser(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseInband(f *testing.F) {
	for _, s := range []string{
		"alice+db1", "alice+db1:2222", "bob+[::1]:22", "bob+[2001:db8::5]", "bob+10.0.0.5:65535",
		"alice", "+db", "a+b+c", "a@b+c", "a+::1", "a+[::1", "a+db:0", "a+db:65536", "a+db:-1",
		"a+host.123", "a+db+root", "a+10.0.0.5_22+x", "a+db+", "a+\x00", "alicé+db", "a+[fe80::1%eth0]:22", "a+db.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseInband(in)
		user, host, port := got.User, got.Host, got.Port
		if err != nil {
			var ie *InbandError
			if !errors.As(err, &ie) {
				t.Fatalf("got error of type %T, want *InbandError", err)
			}
			return
		}
		if user == "" || host == "" || port == 0 {
			t.Fatalf("got (%q, %q, %d) from %q, want all parts set", user, host, port, in)
		}
		if GatewayUser(in) != user {
			t.Fatalf("got GatewayUser %q, want %q", GatewayUser(in), user)
		}
		for i := 0; i < len(in); i++ {
			if c := in[i]; c <= ' ' || c >= 0x7f || c == '@' {
				t.Fatalf("accepted byte 0x%02x in %q", c, in)
			}
		}
		// The canonical spelling must parse back to the same parts.
		canon := user + "+" + net.JoinHostPort(host, strconv.Itoa(int(port)))
		if got.Login != "" {
			canon += "+" + got.Login
		}
		again, err := ParseInband(canon)
		if err != nil || again.User != user || again.Host != host || again.Port != port || again.Login != got.Login {
			t.Fatalf("reparse of %q: got (%+v, %v), want %+v", canon, again, err, got)
		}
	})
}
