package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/zone"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testZones(t *testing.T) *zone.Tree {
	t.Helper()
	p := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	tr, err := zone.New([]zone.Spec{
		{Name: "internet", Networks: p("0.0.0.0/0")},
		{Name: "office", Parent: "internet", Networks: p("10.0.0.0/8")},
		{Name: "lab", Parent: "office", Networks: p("10.1.0.0/16")},
		{Name: "servers", Networks: p("192.168.0.0/16")},
		{Name: "db", Parent: "servers", Networks: p("192.168.5.0/24")},
		{Name: "v6", Networks: p("2001:db8::/32")},
	})
	if err != nil {
		t.Fatalf("zone.New: %v", err)
	}
	return tr
}

func newTestMaster(t *testing.T, p MasterParams) *Master {
	t.Helper()
	if p.Gateway == "" {
		p.Gateway, p.Service, p.Instance = "gw1", "ssh-in", 42
	}
	m := NewMaster(context.Background(), p)
	t.Cleanup(m.Destroy)
	return m
}

type stackStep struct {
	proxy string
	n     int
}

func TestIDs(t *testing.T) {
	tests := []struct {
		steps []stackStep
		want  string
	}{
		{nil, "gw1/ssh-in:42"},
		{[]stackStep{{"ssh", -1}}, "gw1/ssh-in:42/ssh"},
		{[]stackStep{{"ssh", -1}, {"session", 0}}, "gw1/ssh-in:42/ssh/session:0"},
		{[]stackStep{{"ssh", -1}, {"session", 0}, {"sftp", -1}}, "gw1/ssh-in:42/ssh/session:0/sftp"},
		{[]stackStep{{"ssh", -1}, {"direct-tcpip", 1}, {"plug", -1}}, "gw1/ssh-in:42/ssh/direct-tcpip:1/plug"},
		{[]stackStep{{"ssh", -7}, {"session", 12}}, "gw1/ssh-in:42/ssh/session:12"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			m := newTestMaster(t, MasterParams{})
			var s Session = m
			for _, st := range tt.steps {
				child := s.Stack(st.proxy, st.n)
				if child.Owner() != s {
					t.Errorf("%s owner: got %v, want %s", child.ID(), child.Owner(), s.ID())
				}
				if child.Master() != m {
					t.Errorf("%s master: got %v, want %s", child.ID(), child.Master(), m.ID())
				}
				if want := max(st.n, -1); child.Channel() != want || child.Proxy() != st.proxy {
					t.Errorf("%s: got proxy %q channel %d, want %q %d", child.ID(), child.Proxy(), child.Channel(), st.proxy, want)
				}
				s = child
			}
			if got := s.ID(); got != tt.want {
				t.Errorf("ID: got %q, want %q", got, tt.want)
			}
		})
	}
	m := newTestMaster(t, MasterParams{Gateway: "gw2", Service: "svc", Instance: 7})
	if m.Owner() != nil {
		t.Errorf("master Owner: got %v, want nil", m.Owner())
	}
	if m.ID() != "gw2/svc:7" || m.Gateway() != "gw2" || m.Service() != "svc" || m.InstanceID() != 7 {
		t.Errorf("master: got %q %q %q %d, want gw2/svc:7 gw2 svc 7", m.ID(), m.Gateway(), m.Service(), m.InstanceID())
	}
}

func TestAccessControl(t *testing.T) {
	zones := testZones(t)
	tests := []struct {
		name     string
		stage    string
		addr     string
		clients  []string
		servers  []string
		wantZone string
		wantRule string // "" = permitted
	}{
		{name: "exact zone", stage: StageClient, addr: "10.2.0.1:5000", clients: []string{"office"}, wantZone: "office"},
		{name: "child of permitted", stage: StageClient, addr: "10.1.0.1:5000", clients: []string{"office"}, wantZone: "lab"},
		{name: "grandchild of permitted", stage: StageClient, addr: "10.1.0.1:5000", clients: []string{"internet"}, wantZone: "lab"},
		{name: "parent not permitted by child", stage: StageClient, addr: "10.2.0.1:5000", clients: []string{"lab"}, wantZone: "office", wantRule: "services[ssh-in].client_zones"},
		{name: "unrelated zone", stage: StageClient, addr: "8.8.8.8:5000", clients: []string{"office", "servers"}, wantZone: "internet", wantRule: "services[ssh-in].client_zones"},
		{name: "second listed zone", stage: StageClient, addr: "192.168.5.5:1", clients: []string{"office", "servers"}, wantZone: "db"},
		{name: "empty list", stage: StageClient, addr: "10.2.0.1:5000", wantZone: "office", wantRule: "services[ssh-in].client_zones"},
		{name: "in no zone", stage: StageClient, addr: "[2001:db9::1]:22", clients: []string{"internet", "v6"}, wantRule: "zones"},
		{name: "mapped address", stage: StageClient, addr: "[::ffff:10.1.2.3]:22", clients: []string{"lab"}, wantZone: "lab"},
		{name: "invalid address", stage: StageClient, addr: "", clients: []string{"internet"}, wantRule: "zones"},
		{name: "server permitted", stage: StageServer, addr: "192.168.5.1:22", servers: []string{"servers"}, wantZone: "db"},
		{name: "server denied", stage: StageServer, addr: "10.0.0.1:22", clients: []string{"office"}, servers: []string{"servers"}, wantZone: "office", wantRule: "services[ssh-in].server_zones"},
		{name: "server ipv6", stage: StageServer, addr: "[2001:db8::1]:22", servers: []string{"v6"}, wantZone: "v6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMaster(t, MasterParams{Zones: zones, ClientZones: tt.clients, ServerZones: tt.servers})
			var addr netip.AddrPort
			if tt.addr != "" {
				addr = netip.MustParseAddrPort(tt.addr)
			}
			local := netip.MustParseAddrPort("[::ffff:127.0.0.1]:2222")
			var err error
			var gotZone *zone.Zone
			var gotAddr, gotLocal netip.AddrPort
			if tt.stage == StageClient {
				err = m.SetClient(addr, local)
				gotZone, gotAddr, gotLocal = m.ClientZone(), m.ClientAddr(), m.ClientLocal()
			} else {
				err = m.SetServer(addr, local)
				gotZone, gotAddr, gotLocal = m.ServerZone(), m.ServerAddr(), m.ServerLocal()
			}
			if addr.IsValid() && gotAddr.Addr() != addr.Addr().Unmap() {
				t.Errorf("recorded addr: got %s, want %s unmapped", gotAddr, addr)
			}
			if want := netip.MustParseAddrPort("127.0.0.1:2222"); gotLocal != want {
				t.Errorf("recorded local: got %s, want %s", gotLocal, want)
			}
			name := ""
			if gotZone != nil {
				name = gotZone.Name()
			}
			if name != tt.wantZone {
				t.Errorf("recorded zone: got %q, want %q", name, tt.wantZone)
			}
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("got %v, want permitted", err)
				}
				return
			}
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want *DeniedError", err)
			}
			if !errors.Is(err, ErrDenied) {
				t.Errorf("errors.Is(%v, ErrDenied): got false, want true", err)
			}
			if de.Stage != tt.stage || de.Rule != tt.wantRule || de.Zone != tt.wantZone || de.Addr != gotAddr {
				t.Errorf("got %+v, want stage %s rule %s zone %q addr %s", *de, tt.stage, tt.wantRule, tt.wantZone, gotAddr)
			}
		})
	}
}

func TestNilZonesRefuses(t *testing.T) {
	m := newTestMaster(t, MasterParams{ClientZones: []string{"internet"}})
	err := m.SetClient(netip.MustParseAddrPort("10.0.0.1:1"), netip.AddrPort{})
	var de *DeniedError
	if !errors.As(err, &de) || de.Rule != "zones" {
		t.Errorf("got %v, want a DeniedError with rule zones", err)
	}
}

func TestAttributeInheritance(t *testing.T) {
	url := NewKey[string]("url")
	mime := NewKey[string]("mime")
	count := NewKey[int]("count")
	otherURL := NewKey[string]("url")

	m := newTestMaster(t, MasterParams{})
	ssh := m.Stack("ssh", -1)
	ch0 := ssh.Stack("session", 0)
	ch1 := ssh.Stack("session", 1)
	sftp := ch0.Stack("sftp", -1)

	Set(m, url, "master-url")
	Set(ssh, count, 3)
	Set(ch0, url, "ch0-url")
	Set(sftp, mime, "text/plain")

	str := func(s Session, k Key[string]) any {
		v, ok := Lookup(s, k)
		if !ok {
			return nil
		}
		return v
	}
	num := func(s Session, k Key[int]) any {
		v, ok := Lookup(s, k)
		if !ok {
			return nil
		}
		return v
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"master url", str(m, url), "master-url"},
		{"ssh inherits master url", str(ssh, url), "master-url"},
		{"ch0 shadows url", str(ch0, url), "ch0-url"},
		{"sftp inherits nearest url", str(sftp, url), "ch0-url"},
		{"sibling unaffected", str(ch1, url), "master-url"},
		{"sftp inherits count", num(sftp, count), 3},
		{"master lacks count", num(m, count), nil},
		{"owner does not see child attr", str(ch0, mime), nil},
		{"own attr", str(sftp, mime), "text/plain"},
		{"same name other key", str(sftp, otherURL), nil},
		{"zero key", str(sftp, Key[string]{}), nil},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if url.String() != "url" || (Key[int]{}).String() != "<zero key>" {
		t.Errorf("key names: got %q %q, want url <zero key>", url, Key[int]{})
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Set with zero key: got no panic, want one")
		}
	}()
	Set(m, Key[int]{}, 1)
}

func TestStackedReadsMaster(t *testing.T) {
	zones := testZones(t)
	m := newTestMaster(t, MasterParams{Zones: zones, ClientZones: []string{"office"}, ServerZones: []string{"servers"}})
	if err := m.SetClient(netip.MustParseAddrPort("10.1.0.9:40000"), netip.MustParseAddrPort("127.0.0.1:2222")); err != nil {
		t.Fatalf("SetClient: %v", err)
	}
	m.SetUser("alice", []string{"ops", "dev"}, "publickey")
	s := m.Stack("ssh", -1).Stack("session", 0)
	if err := m.SetServer(netip.MustParseAddrPort("192.168.5.1:22"), netip.MustParseAddrPort("192.168.0.1:50000")); err != nil {
		t.Fatalf("SetServer: %v", err)
	}
	m.SetTarget("192.168.5.1:22")

	tests := []struct {
		name      string
		got, want any
	}{
		{"ClientAddr", s.ClientAddr(), m.ClientAddr()},
		{"ClientLocal", m.ClientLocal(), netip.MustParseAddrPort("127.0.0.1:2222")},
		{"ClientZone", s.ClientZone().Name(), "lab"},
		{"ServerAddr", m.ServerAddr().String(), "192.168.5.1:22"},
		{"ServerLocal", m.ServerLocal().String(), "192.168.0.1:50000"},
		{"ServerZone", m.ServerZone().Name(), "db"},
		{"Service", s.Service(), "ssh-in"},
		{"Gateway", m.Gateway(), "gw1"},
		{"InstanceID", s.InstanceID(), uint64(42)},
		{"User", s.User(), "alice"},
		{"Groups", fmt.Sprint(s.Groups()), "[ops dev]"},
		{"AuthMethod", m.AuthMethod(), "publickey"},
		{"Target", s.Target(), "192.168.5.1:22"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	g := m.Groups()
	g[0] = "root"
	if m.Groups()[0] != "ops" {
		t.Errorf("Groups after caller mutation: got %v, want [ops dev]", m.Groups())
	}
}

type closeCounter struct {
	mu sync.Mutex
	n  int
}

func (c *closeCounter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return nil
}

func (c *closeCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestEndCauses(t *testing.T) {
	idle := fmt.Errorf("%w: no data for 10m0s", ErrIdle)
	tests := []struct {
		name       string
		end        func(m *Master, s *Stacked)
		wantMaster error // nil = still live
		wantStack  error
	}{
		{"master ends stacked", func(m *Master, s *Stacked) { m.End(ErrRevoked) }, ErrRevoked, ErrRevoked},
		{"wrapped cause", func(m *Master, s *Stacked) { m.End(idle) }, ErrIdle, ErrIdle},
		{"nil cause is closed", func(m *Master, s *Stacked) { m.End(nil) }, ErrClosed, ErrClosed},
		{"first cause wins", func(m *Master, s *Stacked) { m.End(ErrShutdown); m.End(ErrRevoked) }, ErrShutdown, ErrShutdown},
		{"stacked alone", func(m *Master, s *Stacked) { s.End(ErrUpstreamClosed) }, nil, ErrUpstreamClosed},
		{"stacked then master", func(m *Master, s *Stacked) { s.End(ErrDenied); m.End(ErrShutdown) }, ErrShutdown, ErrDenied},
		{"destroy", func(m *Master, s *Stacked) { m.Destroy() }, ErrClosed, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMaster(t, MasterParams{})
			mid := m.Stack("ssh", -1)
			s := mid.Stack("session", 0)
			tt.end(m, s)
			check := func(name string, sess Session, want error) {
				t.Helper()
				cause := context.Cause(sess.Context())
				if want == nil {
					if cause != nil {
						t.Errorf("%s cause: got %v, want live", name, cause)
					}
					return
				}
				if !errors.Is(cause, want) {
					t.Errorf("%s cause: got %v, want %v", name, cause, want)
				}
			}
			check("master", m, tt.wantMaster)
			check("stacked", s, tt.wantStack)
		})
	}
}

func TestParentContextEndsMaster(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	var got error
	m := NewMaster(ctx, MasterParams{Gateway: "gw", Service: "s", Instance: 1, OnEnd: func(_ *Master, err error) { got = err }})
	c := &closeCounter{}
	m.Hold(c)
	cancel(ErrShutdown)
	m.Destroy()
	if c.count() != 1 {
		t.Errorf("closes after parent cancel: got %d, want 1", c.count())
	}
	if !errors.Is(got, ErrShutdown) {
		t.Errorf("OnEnd cause: got %v, want %v", got, ErrShutdown)
	}
}

func TestHoldAndDestroy(t *testing.T) {
	var calls []error
	var mu sync.Mutex
	m := NewMaster(context.Background(), MasterParams{Gateway: "gw", Service: "s", Instance: 1, OnEnd: func(got *Master, err error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, err)
	}})
	mc, sc := &closeCounter{}, &closeCounter{}
	m.Hold(mc)
	s := m.Stack("ssh", -1)
	s.Hold(sc)
	m.End(ErrRevoked)
	if mc.count() != 1 {
		t.Errorf("master closer after End: got %d closes, want 1", mc.count())
	}
	s.Destroy() // waits for the stacked session's own teardown
	if sc.count() != 1 {
		t.Errorf("stacked closer after master End: got %d closes, want 1", sc.count())
	}
	late := &closeCounter{}
	m.Hold(late)
	if late.count() != 1 {
		t.Errorf("Hold after End: got %d closes, want 1", late.count())
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(m.Destroy)
	}
	wg.Wait()
	m.Destroy()
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || !errors.Is(calls[0], ErrRevoked) {
		t.Errorf("OnEnd calls: got %v, want exactly [%v]", calls, ErrRevoked)
	}
	if mc.count() != 1 {
		t.Errorf("master closer after Destroy: got %d closes, want 1", mc.count())
	}
}

func TestDestroyWithoutStart(t *testing.T) {
	var got error
	reported := 0
	m := NewMaster(context.Background(), MasterParams{Gateway: "gw", Service: "s", Instance: 3, OnEnd: func(_ *Master, err error) { got = err; reported++ }})
	c := &closeCounter{}
	m.Hold(c)
	m.Destroy()
	if c.count() != 1 || reported != 1 || !errors.Is(got, ErrClosed) {
		t.Errorf("Destroy: got %d closes, %d reports, cause %v; want 1, 1, %v", c.count(), reported, got, ErrClosed)
	}
}

func TestAuditEvent(t *testing.T) {
	zones := testZones(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m := newTestMaster(t, MasterParams{Zones: zones, ClientZones: []string{"office"}, ServerZones: []string{"servers"}, Clock: func() time.Time { return now }})
	if got := m.AuditEvent("connection"); got.ClientAddr != "" || got.ClientZone != "" || got.ServerAddr != "" {
		t.Errorf("event before SetClient: got %+v, want empty addresses", got)
	}
	_ = m.SetClient(netip.MustParseAddrPort("10.1.0.9:40000"), netip.MustParseAddrPort("127.0.0.1:2222"))
	_ = m.SetServer(netip.MustParseAddrPort("192.168.5.1:22"), netip.AddrPort{})
	m.SetUser("alice", nil, "password")
	m.SetTarget("db1")
	want := audit.Event{
		Time: now, Type: "exec", SessionID: "gw1/ssh-in:42", User: "alice",
		ClientAddr: "10.1.0.9:40000", ClientZone: "lab", Service: "ssh-in",
		ServerAddr: "192.168.5.1:22", ServerZone: "db", Target: "db1",
	}
	if got := m.AuditEvent("exec"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("master event: got %+v, want %+v", got, want)
	}
	want.SessionID = "gw1/ssh-in:42/ssh/session:0"
	if got := m.Stack("ssh", -1).Stack("session", 0).AuditEvent("exec"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stacked event: got %+v, want %+v", got, want)
	}
}

// TestConcurrentUse is for the race detector.
func TestConcurrentUse(t *testing.T) {
	zones := testZones(t)
	m := newTestMaster(t, MasterParams{Zones: zones, ClientZones: []string{"internet"}})
	k := NewKey[int]("k")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := m.Stack("ssh", i)
			for j := range 100 {
				Set(s, k, j)
				_, _ = Lookup(s, k)
				_ = m.SetClient(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(j)}), 1), netip.AddrPort{})
				m.SetUser("u", []string{"g"}, "publickey")
				_ = s.AuditEvent("x")
				_ = s.ClientZone()
			}
			s.Destroy()
		})
	}
	wg.Wait()
}

func TestInner(t *testing.T) {
	outer := newTestMaster(t, MasterParams{Gateway: "gw1", Service: "ssh-in", Instance: 42})
	key := NewKey[string]("k")
	Set(outer, key, "outer")
	ch := outer.Stack("ssh", -1).Stack("direct-tcpip", 0)
	in := NewInner(ch, "ssh", MasterParams{Gateway: "gw1", Service: "ssh-in", Instance: 42, Zones: testZones(t), ServerZones: []string{"servers"}})
	defer in.Destroy()
	if got, want := in.ID(), "gw1/ssh-in:42/ssh/direct-tcpip:0/ssh"; got != want {
		t.Errorf("id: got %q, want %q", got, want)
	}
	if got, want := in.Stack("session", 0).ID(), "gw1/ssh-in:42/ssh/direct-tcpip:0/ssh/session:0"; got != want {
		t.Errorf("stacked id: got %q, want %q", got, want)
	}
	if v, _ := Lookup(in, key); v != "outer" {
		t.Errorf("inherited attribute: got %q, want %q", v, "outer")
	}
	Set(in, key, "inner")
	if v, _ := Lookup(outer, key); v != "outer" {
		t.Errorf("outer attribute after the inner set its own: got %q, want %q", v, "outer")
	}
	in.SetUser("alice", nil, "publickey")
	if outer.User() != "" {
		t.Errorf("outer user: got %q, want none", outer.User())
	}
	outer.End(ErrRevoked)
	<-in.Context().Done()
	if !errors.Is(context.Cause(in.Context()), ErrRevoked) {
		t.Errorf("inner cause: got %v, want ErrRevoked", context.Cause(in.Context()))
	}
}
