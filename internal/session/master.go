package session

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/zone"
)

// MasterParams configures a Master.
type MasterParams struct {
	Gateway  string
	Service  string
	Instance uint64
	// Zones is the zone tree used for access control. With a nil tree no
	// address is in a zone, so every client and server is refused.
	Zones *zone.Tree
	// ClientZones and ServerZones list the zones (with their descendants)
	// that may connect to the service and that it may connect to. An empty
	// list permits nobody.
	ClientZones []string
	ServerZones []string
	// OnEnd, if set, is called once, from Destroy, with the cause the
	// session ended with.
	OnEnd func(m *Master, cause error)
	// Clock returns the current time for audit events; nil means time.Now.
	Clock func() time.Time
}

// Master is the session of one accepted connection (Zorp's MasterSession).
// It is safe for concurrent use.
type Master struct {
	core

	gateway     string
	service     string
	instance    uint64
	zones       *zone.Tree
	clientZones []string
	serverZones []string
	onEnd       func(*Master, error)
	clock       func() time.Time
	start       time.Time

	// Guarded by core.mu.
	clientAddr  netip.AddrPort
	clientLocal netip.AddrPort
	clientZone  *zone.Zone
	serverAddr  netip.AddrPort
	serverLocal netip.AddrPort
	serverZone  *zone.Zone
	user        string
	groups      []string
	authMethod  string
	target      string
	reported    bool
}

// NewMaster returns the master session "GATEWAY/SERVICE:INSTANCE". Its
// context is derived from ctx, so cancelling ctx ends the session.
func NewMaster(ctx context.Context, p MasterParams) *Master {
	m := newMaster(p)
	m.init(ctx, p.Gateway+"/"+p.Service+":"+strconv.FormatUint(p.Instance, 10), nil)
	return m
}

func newMaster(p MasterParams) *Master {
	m := &Master{
		gateway:     p.Gateway,
		service:     p.Service,
		instance:    p.Instance,
		zones:       p.Zones,
		clientZones: slices.Clone(p.ClientZones),
		serverZones: slices.Clone(p.ServerZones),
		onEnd:       p.OnEnd,
		clock:       p.Clock,
	}
	if m.clock == nil {
		m.clock = time.Now
	}
	m.start = m.clock()
	return m
}

// NewInner returns the master session of a connection carried inside
// owner (an SSH connection in a channel, as for ProxyJump): its id is
// owner's followed by "/" and proxy, its context is derived from owner's,
// so ending owner ends it, and Lookup reads through it to owner's
// attributes. Its own addresses, zones, user and target are its own: the
// inner connection is checked and audited as any other.
func NewInner(owner Session, proxy string, p MasterParams) *Master {
	m := newMaster(p)
	m.init(owner.Context(), owner.ID()+"/"+proxy, owner)
	return m
}

// Owner returns the session an inner master runs in (NewInner), or nil.
func (m *Master) Owner() Session { return m.owner }

// Master returns m.
func (m *Master) Master() *Master { return m }

// Stack creates a session stacked in m.
func (m *Master) Stack(proxy string, n int) *Stacked { return newStacked(m, proxy, n) }

// Destroy ends m (ErrClosed unless it already ended), closes what it holds,
// and reports the end to OnEnd, exactly once however often it is called.
func (m *Master) Destroy() {
	m.destroy()
	m.mu.Lock()
	first := !m.reported
	m.reported = true
	m.mu.Unlock()
	if first && m.onEnd != nil {
		m.onEnd(m, context.Cause(m.ctx))
	}
}

// SetClient records the client's address and the local address it
// connected to, looks up the client's zone and checks that the service
// accepts clients from it. A refusal is a *DeniedError; the address and
// zone are recorded either way, for the audit trail.
func (m *Master) SetClient(addr, local netip.AddrPort) error {
	addr, local = unmap(addr), unmap(local)
	z := m.lookup(addr)
	m.mu.Lock()
	m.clientAddr, m.clientLocal, m.clientZone = addr, local, z
	m.mu.Unlock()
	return m.permit(StageClient, addr, z, m.clientZones, "client_zones")
}

// SetServer records the server's address and the local address the
// gateway connected from, looks up the server's zone and checks that the
// service may connect to it. A refusal is a *DeniedError.
func (m *Master) SetServer(addr, local netip.AddrPort) error {
	addr, local = unmap(addr), unmap(local)
	z := m.lookup(addr)
	m.mu.Lock()
	m.serverAddr, m.serverLocal, m.serverZone = addr, local, z
	m.mu.Unlock()
	return m.permit(StageServer, addr, z, m.serverZones, "server_zones")
}

func (m *Master) lookup(addr netip.AddrPort) *zone.Zone {
	if m.zones == nil {
		return nil
	}
	z, _ := m.zones.Lookup(addr.Addr())
	return z
}

// permit is Zorp's isClientPermitted / isServerPermitted for this
// session's service.
func (m *Master) permit(stage string, addr netip.AddrPort, z *zone.Zone, allowed []string, field string) error {
	return Permit(stage, addr, z, allowed, fmt.Sprintf("services[%s].%s", m.service, field))
}

// Permit is the zone access check of Zorp's isClientPermitted and
// isServerPermitted: z, the zone of addr (nil when addr is in no zone), or
// one of its ancestors must be in allowed. A refusal is a *DeniedError whose
// Rule is rule, or "zones" for an address in no zone. The chainer uses it
// to check a server address before dialling it; SetClient and SetServer use
// it when the address is set.
func Permit(stage string, addr netip.AddrPort, z *zone.Zone, allowed []string, rule string) error {
	if z == nil {
		return &DeniedError{Stage: stage, Addr: addr, Rule: "zones"}
	}
	for _, name := range allowed {
		if z.Within(name) {
			return nil
		}
	}
	return &DeniedError{Stage: stage, Zone: z.Name(), Addr: addr, Rule: rule}
}

func unmap(a netip.AddrPort) netip.AddrPort {
	if !a.IsValid() {
		return a
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Start returns when the session was created (the connection accepted).
func (m *Master) Start() time.Time { return m.start }

// Gateway returns the gateway name.
func (m *Master) Gateway() string { return m.gateway }

// Service returns the service name.
func (m *Master) Service() string { return m.service }

// InstanceID returns the service's sequence number of this session.
func (m *Master) InstanceID() uint64 { return m.instance }

// ClientAddr returns the client's address (IPv4-mapped addresses unmapped).
func (m *Master) ClientAddr() netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clientAddr
}

// ClientLocal returns the gateway address the client connected to.
func (m *Master) ClientLocal() netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clientLocal
}

// ClientZone returns the client's zone, nil when unknown or in no zone.
func (m *Master) ClientZone() *zone.Zone {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clientZone
}

// ServerAddr returns the server's address.
func (m *Master) ServerAddr() netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serverAddr
}

// ServerLocal returns the gateway address the server connection came from.
func (m *Master) ServerLocal() netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serverLocal
}

// ServerZone returns the server's zone, nil when unknown or in no zone.
func (m *Master) ServerZone() *zone.Zone {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serverZone
}

// SetUser records the authenticated user, their groups and the method
// that authenticated them (e.g. "publickey", "password").
func (m *Master) SetUser(user string, groups []string, method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.user, m.authMethod, m.groups = user, method, slices.Clone(groups)
}

// User returns the authenticated user, "" before authentication.
func (m *Master) User() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user
}

// Groups returns a copy of the authenticated user's groups.
func (m *Master) Groups() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.groups)
}

// AuthMethod returns the method that authenticated the user.
func (m *Master) AuthMethod() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.authMethod
}

// SetTarget records where the session is going, as the router named it
// (e.g. "10.0.0.5:22").
func (m *Master) SetTarget(target string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.target = target
}

// Target returns the session's target, "" before routing.
func (m *Master) Target() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.target
}

// AuditEvent returns an event of type typ with the time, session id, user,
// service, target, and client and server addresses and zones filled in.
// The caller adds the verdict, rule, reason and detail.
func (m *Master) AuditEvent(typ string) audit.Event {
	now := m.clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := audit.Event{
		Time:      now,
		Type:      typ,
		SessionID: m.id,
		User:      m.user,
		Service:   m.service,
		Target:    m.target,
	}
	if m.clientAddr.IsValid() {
		e.ClientAddr = m.clientAddr.String()
	}
	if m.clientZone != nil {
		e.ClientZone = m.clientZone.Name()
	}
	if m.serverAddr.IsValid() {
		e.ServerAddr = m.serverAddr.String()
	}
	if m.serverZone != nil {
		e.ServerZone = m.serverZone.Name()
	}
	return e
}
