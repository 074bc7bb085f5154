package audit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TypeInstances is the event a store writes when it reserves a block of
// session instance numbers (see ReserveInstances): Service names the
// service, Detail "first" and "last" the block.
const TypeInstances = "instances.reserve"

// Bounds of ReserveInstances: a block is at most maxReserve numbers and no
// number exceeds maxInstance, so that int64 columns hold them.
const (
	maxReserve  = 1 << 20
	maxInstance = math.MaxInt64
)

// InstanceReserver hands out the instance numbers of session ids
// GATEWAY/SERVICE:INSTANCE for the gateway a store was opened for.
type InstanceReserver interface {
	// ReserveInstances reserves n (1..2^20) instance numbers of service
	// and returns the first; the block is first..first+n-1. The numbers
	// are never handed out again by the store, even after a restart, and
	// are above every instance of GATEWAY/SERVICE the store's events used
	// before it kept a counter. The reservation is itself an event of
	// type TypeInstances.
	ReserveInstances(ctx context.Context, service string, n uint64) (first uint64, err error)
}

// reservation is the TypeInstances event of a block.
func reservation(gateway, service string, first, n uint64) Event {
	return Event{
		Time:    time.Now(),
		Type:    TypeInstances,
		Service: service,
		Reason:  fmt.Sprintf("session ids %s/%s:%d to :%d reserved", gateway, service, first, first+n-1),
		Detail:  map[string]any{"first": first, "last": first + n - 1},
	}
}

// instanceOf returns the instance of a session id that starts with prefix
// (GATEWAY/SERVICE:), or 0.
func instanceOf(id, prefix string) uint64 {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return 0
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// InstanceBlock is how many instance numbers Instances reserves at a time:
// one store write per InstanceBlock connections; a restart skips at most
// InstanceBlock-1 numbers.
const InstanceBlock = 100

// Instances hands out the instance numbers of one service's session ids
// from blocks reserved in a store, so that ids stay unique for the life of
// the store: across restarts, reloads, and listeners replaced by a reload
// (the gateway keeps one Instances per service name). It is safe for
// concurrent use.
type Instances struct {
	store   InstanceReserver
	service string

	mu        sync.Mutex
	next, end uint64 // the block not yet handed out: next..end-1
}

// NewInstances returns the allocator of service's instance numbers.
func NewInstances(store InstanceReserver, service string) *Instances {
	return &Instances{store: store, service: service}
}

// Next returns the next instance number, reserving a new block in the
// store when the current one is used up. An error (the store could not
// write) hands out nothing: the caller refuses the connection.
func (a *Instances) Next(ctx context.Context) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == a.end {
		first, err := a.store.ReserveInstances(ctx, a.service, InstanceBlock)
		if err != nil {
			return 0, err
		}
		a.next, a.end = first, first+InstanceBlock
	}
	n := a.next
	a.next++
	return n, nil
}
