package gateway

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/record"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
	"github.com/sluice-ssh/sluice/sshsession"
)

// recorders makes the recordings of one service: one file per master
// session in dir, holding all its recorded channels, under
// record.on_failure.
type recorders struct {
	dir    string
	mode   config.FailureMode // record.on_failure
	params record.Params      // template; OnError is set per file
	logger *slog.Logger
	// failures counts recordings that could not be made or stopped early.
	failures *atomic.Uint64
	// live is where the live recordings and pty channels are listed for
	// the console; joinRW is the service's console_join: read_write.
	live   *liveRecordings
	joinRW bool
}

// recordStart returns the service's sshproxy.RecordStart, or nil when the
// service does not record.
func (g *Gateway) recordStart(cfg *config.Config, sc *config.Service) sshproxy.RecordStart {
	if !sc.Record {
		return nil
	}
	rs := &recorders{
		dir:  cfg.Record.Dir,
		mode: cfg.Record.OnFailure,
		params: record.Params{
			Input:          sc.RecordInput,
			MaxStreamBytes: maxStreamBytes(cfg.Record.MaxBytesPerStream),
			Hold:           cfg.Record.OnFailure == config.FailClosed,
		},
		logger:   g.logger,
		failures: &g.ops.recordFailures,
		live:     &g.live,
		joinRW:   sc.ConsoleJoin == config.JoinReadWrite,
	}
	return func(m *session.Master) sshproxy.Recording {
		mr := &masterRecording{rs: rs, m: m}
		rs.live.addMaster(mr)
		return mr
	}
}

// maxStreamBytes maps record.max_bytes_per_stream (0: no cap) to
// record.Params.MaxStreamBytes (negative: no cap).
func maxStreamBytes(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// RecordingFailures is the number of recordings that could not be created
// or stopped before their session ended.
func (g *Gateway) RecordingFailures() uint64 { return g.ops.recordFailures.Load() }

// masterRecording is the recording of one master session: its file is
// made when the first channel is recorded, and a new one when the last
// has failed.
type masterRecording struct {
	rs *recorders
	m  *session.Master

	mu    sync.Mutex
	files []*record.File // the last one is in use
}

// Channel records a pty channel with its terminal size and TERM, an exec
// with its command. A file that cannot be made is an error; the relay
// then applies FailClosed.
func (mr *masterRecording) Channel(st *session.Stacked, s *sshsession.Session, command string) (sshproxy.Recorder, error) {
	h := record.Header{SessionID: st.ID(), Command: command}
	if pty, ok := s.Pty(); ok {
		h.Pty, h.Width, h.Height, h.Term = true, int(pty.Columns), int(pty.Rows), pty.Term
	}
	f, err := mr.file()
	if err != nil {
		mr.rs.failures.Add(1)
		mr.rs.logger.Error("recording unavailable", "session_id", st.ID(), "on_failure", string(mr.rs.mode), "err", err)
		return nil, fmt.Errorf("gateway: recording %s: %w", st.ID(), err)
	}
	rc := f.Channel(h)
	if !h.Pty {
		return channelRecorder{Channel: rc, f: f}, nil
	}
	t := &terminal{live: mr.rs.live, id: st.ID(), master: mr.m.ID(), rec: rc, readWrite: mr.rs.joinRW}
	return terminalRecorder{channelRecorder{Channel: rc, f: f}, t}, nil
}

// current returns the file in use, or nil before the first.
func (mr *masterRecording) current() *record.File {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if n := len(mr.files); n > 0 {
		return mr.files[n-1]
	}
	return nil
}

// FailClosed reports whether record.on_failure is fail_closed.
func (mr *masterRecording) FailClosed() bool { return mr.rs.mode == config.FailClosed }

// file returns the file in use, making one if there is none or the last
// has failed.
func (mr *masterRecording) file() (*record.File, error) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if n := len(mr.files); n > 0 && mr.files[n-1].Err() == nil {
		return mr.files[n-1], nil
	}
	id := mr.m.ID()
	p := mr.rs.params
	p.OnError = func(err error) {
		mr.rs.failures.Add(1)
		mr.rs.logger.Error("recording stopped", "session_id", id, "on_failure", string(mr.rs.mode), "err", err)
	}
	f, err := record.Create(mr.rs.dir, record.FileHeader{SessionID: id, User: mr.m.User()}, p)
	if err != nil {
		return nil, err
	}
	mr.files = append(mr.files, f)
	return f, nil
}

// Close closes the files and returns each with its digest.
func (mr *masterRecording) Close() []sshproxy.RecordedFile {
	mr.rs.live.removeMaster(mr)
	mr.mu.Lock()
	defer mr.mu.Unlock()
	out := make([]sshproxy.RecordedFile, 0, len(mr.files))
	for _, f := range mr.files {
		if err := f.Close(); err != nil {
			mr.rs.logger.Error("closing a recording", "session_id", mr.m.ID(), "path", f.Path(), "err", err)
		}
		out = append(out, sshproxy.RecordedFile{Path: f.Path(), SHA256: f.SHA256()})
	}
	return out
}

// channelRecorder is a record.Channel as an sshproxy.Recorder.
type channelRecorder struct {
	*record.Channel
	f *record.File
}

func (c channelRecorder) Failed() <-chan struct{} { return c.f.Failed() }
func (c channelRecorder) Err() error              { return c.f.Err() }
func (c channelRecorder) Close() map[string]any   { return c.Channel.Close().Detail() }

// terminalRecorder is the recorder of a pty channel: operators can be
// announced on it and join it (join.go).
type terminalRecorder struct {
	channelRecorder
	*terminal
}

var (
	_ sshproxy.Recorder  = channelRecorder{}
	_ sshproxy.Terminal  = terminalRecorder{}
	_ sshproxy.Recording = (*masterRecording)(nil)
)
