package sshtest

import (
	"context"
	"sync"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// AuditSink is an audit.Sink that keeps every event in memory, for tests.
type AuditSink struct {
	mu     sync.Mutex
	events []audit.Event
}

// Write keeps e.
func (s *AuditSink) Write(_ context.Context, e audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

// Events returns the events written so far of type typ, or all of them
// when typ is "".
func (s *AuditSink) Events(typ string) []audit.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.Event
	for _, e := range s.events {
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
