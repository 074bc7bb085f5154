package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
)

// The modes of a live view (?mode=): watching, or joined read-write.
const (
	modeReadOnly  = "read_only"
	modeReadWrite = "read_write"
)

// maxInput bounds one POST of keystrokes.
const maxInput = 4 << 10

// join is one operator joined read-write to a live pty channel, for as
// long as their live view lasts; its token names it to POST input.
type join struct {
	token    string
	operator string
	session  string // the session id the live view was asked for
	att      Attendance

	mu     sync.Mutex
	chunks int64
	bytes  int64
}

// joins are the read-write joins in progress, by token.
type joins struct {
	mu sync.Mutex
	m  map[string]*join
}

func (j *joins) add(jn *join) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = make(map[string]*join)
	}
	j.m[jn.token] = jn
}

func (j *joins) get(token string) *join {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m[token]
}

func (j *joins) remove(token string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.m, token)
}

// attend announces the operator of a live view on the user's terminal
// (channel want, or the session's first pty channel) and, for a
// read-write view, makes the join. A refused join is audited and
// answered 403; ok is false when the request has been answered. A
// read-only view of a session with no live pty channel goes on
// unannounced (there is no terminal to tell).
func (s *Server) attend(w http.ResponseWriter, r *http.Request, who operator, id, want string, readWrite bool) (att Attendance, jn *join, ok bool) {
	t, can := s.p.Gateway.(Terminals)
	target := want
	if target == "" {
		target = id
	}
	var err error
	if can {
		att, err = t.Attend(target, who.Name, readWrite)
	} else {
		err = admin.ErrNotFound
	}
	if !readWrite {
		return att, nil, true
	}
	detail := map[string]any{"mode": modeReadWrite}
	switch {
	case errors.Is(err, ErrJoinRefused):
		s.auditEvent(r, "console.join", who, id, audit.Reject, err.Error(), detail)
		http.Error(w, "joining this session read-write is not allowed (console.join)", http.StatusForbidden)
		return nil, nil, false
	case err != nil:
		s.auditEvent(r, "console.join", who, id, audit.Reject, "no live terminal", detail)
		http.Error(w, "no live terminal to join in this session", http.StatusNotFound)
		return nil, nil, false
	}
	token := make([]byte, 16)
	rand.Read(token)
	jn = &join{token: hex.EncodeToString(token), operator: who.Name, session: id, att: att}
	s.joins.add(jn)
	detail["channel"] = att.Channel()
	s.auditEvent(r, "console.join", who, id, audit.Accept, "", detail)
	return att, jn, true
}

// leave ends a join and audits what the operator typed: how many chunks
// and bytes, never the keystrokes (the recording has them when it records
// input).
func (s *Server) leave(r *http.Request, who operator, jn *join) {
	s.joins.remove(jn.token)
	jn.mu.Lock()
	detail := map[string]any{"mode": modeReadWrite, "channel": jn.att.Channel(), "input_chunks": jn.chunks, "input_bytes": jn.bytes}
	jn.mu.Unlock()
	s.auditEvent(r, "console.leave", who, jn.session, audit.Accept, "", detail)
}

// apiInput sends the request's body (at most maxInput bytes) to the
// target as the user's keystrokes, for the operator whose read-write
// join ?join= names.
func (s *Server) apiInput(w http.ResponseWriter, r *http.Request, who operator) {
	jn := s.joins.get(r.URL.Query().Get("join"))
	if jn == nil || jn.operator != who.Name || jn.session != r.PathValue("id") {
		http.Error(w, "no such join", http.StatusNotFound)
		return
	}
	p, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInput))
	if err != nil {
		http.Error(w, "input too large", http.StatusRequestEntityTooLarge)
		return
	}
	if len(p) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := jn.att.Input(p); err != nil {
		http.Error(w, "the channel has ended", http.StatusGone)
		return
	}
	jn.mu.Lock()
	jn.chunks++
	jn.bytes += int64(len(p))
	jn.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
