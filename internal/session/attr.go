package session

import (
	"net/netip"

	"github.com/sluice-ssh/sluice/internal/zone"
)

type keyID struct{ name string }

// Key names a typed session attribute. Keys are compared by identity: two
// NewKey calls give two different keys even with the same name, so packages
// cannot collide. Make keys once, with NewKey, and share them.
type Key[T any] struct{ id *keyID }

// NewKey returns a new attribute key; name is for diagnostics.
func NewKey[T any](name string) Key[T] { return Key[T]{id: &keyID{name: name}} }

// String returns the key's name.
func (k Key[T]) String() string {
	if k.id == nil {
		return "<zero key>"
	}
	return k.id.name
}

// Lookup returns the value of k in s or, if s does not hold it, in the
// nearest owner that does.
func Lookup[T any](s Session, k Key[T]) (T, bool) {
	if k.id != nil {
		for cur := s; cur != nil; cur = cur.Owner() {
			if v, ok := cur.base().get(k.id); ok {
				return v.(T), true
			}
		}
	}
	var zero T
	return zero, false
}

// Set stores v under k in s itself; it shadows any value of k in s's owners
// and is seen by sessions stacked on s. It panics on a zero Key.
func Set[T any](s Session, k Key[T], v T) {
	if k.id == nil {
		panic("session: Set with a zero Key (make keys with NewKey)")
	}
	s.base().set(k.id, v)
}

// The master's well-known attributes, read through a stacked session.

// ClientAddr returns the master's client address.
func (s *Stacked) ClientAddr() netip.AddrPort { return s.master.ClientAddr() }

// ClientZone returns the master's client zone, nil when unknown.
func (s *Stacked) ClientZone() *zone.Zone { return s.master.ClientZone() }

// Service returns the master's service name.
func (s *Stacked) Service() string { return s.master.Service() }

// InstanceID returns the master's instance id.
func (s *Stacked) InstanceID() uint64 { return s.master.InstanceID() }

// User returns the master's authenticated user.
func (s *Stacked) User() string { return s.master.User() }

// Groups returns the master's user's groups.
func (s *Stacked) Groups() []string { return s.master.Groups() }

// Target returns the master's target.
func (s *Stacked) Target() string { return s.master.Target() }
