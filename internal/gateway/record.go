package gateway

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/record"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
	"github.com/sluice-ssh/sluice/sshsession"
)

// recorders starts the recordings of one service's session channels as
// asciicast v2 files in dir, applying record.on_failure.
type recorders struct {
	dir    string
	input  bool               // services[].record_input
	mode   config.FailureMode // record.on_failure
	params record.Params      // template; Input and OnError are set per recording
	logger *slog.Logger
	// failures counts recordings that could not be made or stopped early.
	failures *atomic.Uint64
}

// recordStart returns the service's sshproxy.RecordStart, or nil when the
// service does not record.
func (g *Gateway) recordStart(cfg *config.Config, sc *config.Service) sshproxy.RecordStart {
	if !sc.Record {
		return nil
	}
	rs := &recorders{
		dir:      cfg.Record.Dir,
		input:    sc.RecordInput,
		mode:     cfg.Record.OnFailure,
		logger:   g.logger,
		failures: &g.ops.recordFailures,
	}
	return rs.start
}

// RecordingFailures is the number of recordings that could not be created
// or stopped before their session ended.
func (g *Gateway) RecordingFailures() uint64 { return g.ops.recordFailures.Load() }

// start is the sshproxy.RecordStart: a pty session is recorded with its
// terminal size and TERM, an exec session with its command.
func (rs *recorders) start(st *session.Stacked, s *sshsession.Session, command string) (sshproxy.Recorder, <-chan struct{}, error) {
	h := record.Header{SessionID: st.ID(), User: st.User(), Command: command}
	if pty, ok := s.Pty(); ok {
		h.Width, h.Height, h.Term = int(pty.Columns), int(pty.Rows), pty.Term
	}
	return rs.create(h)
}

// create makes one recording. Under fail_closed a failure to create it is
// returned (the channel is refused) and a later failure closes the failed
// channel (the relay ends the channel); under best_effort both are logged
// and counted and the session goes on unrecorded.
func (rs *recorders) create(h record.Header) (sshproxy.Recorder, <-chan struct{}, error) {
	failed := make(chan struct{})
	p := rs.params
	p.Input = rs.input
	p.OnError = func(err error) {
		rs.failures.Add(1)
		rs.logger.Error("recording stopped", "session_id", h.SessionID, "on_failure", string(rs.mode), "err", err)
		if rs.mode == config.FailClosed {
			close(failed) // OnError is called once per recording
		}
	}
	rec, err := record.Create(rs.dir, h, p)
	if err != nil {
		rs.failures.Add(1)
		if rs.mode == config.FailClosed {
			return nil, nil, fmt.Errorf("gateway: recording %s: %w", h.SessionID, err)
		}
		rs.logger.Error("session goes on unrecorded", "session_id", h.SessionID, "on_failure", string(rs.mode), "err", err)
		return nil, nil, nil
	}
	if rs.mode != config.FailClosed {
		return rec, nil, nil
	}
	return rec, failed, nil
}
