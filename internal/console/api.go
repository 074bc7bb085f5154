package console

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
)

// Page sizes: what a list returns unless asked, and the most it returns.
const (
	defaultSessionLimit = 50
	maxSessionLimit     = 1000
	defaultAuditLimit   = 1000
	maxAuditLimit       = 100_000
	// maxTimeline bounds the events of one session's timeline (the newest
	// are kept); a session running a script can have very many.
	maxTimeline = 10_000
)

// SessionInfo is a master session as the API lists it.
type SessionInfo struct {
	audit.SessionSummary
	Live bool `json:"live"`
}

// SessionList is the answer of GET sessions: newest first; Next, when
// set, is the before= of the next page.
type SessionList struct {
	Sessions []SessionInfo `json:"sessions"`
	Next     string        `json:"next,omitempty"`
}

// SessionDetail is the answer of GET sessions/{id}.
type SessionDetail struct {
	Session SessionInfo `json:"session"`
	// Events is the session's audit timeline, oldest first (at most the
	// newest maxTimeline; Truncated says so).
	Events    []audit.Event `json:"events"`
	Truncated bool          `json:"truncated,omitempty"`
	// Channels are the session's recorded channels.
	Channels []string `json:"channels"`
}

// badRequest answers 400 with msg.
func badRequest(w http.ResponseWriter, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
}

// parseTime reads a time parameter: RFC 3339, a date (UTC midnight), or a
// duration meaning that long before now. Empty is no bound.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("bad time %q: want RFC 3339, YYYY-MM-DD or a duration such as 2h", s)
}

// parseLimit reads limit=, def when absent, at most most.
func parseLimit(s string, def, most int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, fmt.Errorf("bad limit %q: want 1 to %d", s, most)
	}
	return n, nil
}

// parseBool reads a flag parameter: absent, "", "0", "false" are false.
func parseBool(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

// targetHost is the host part of a target "host:port" (or the whole).
func targetHost(t string) string {
	if h, _, err := net.SplitHostPort(t); err == nil {
		return h
	}
	return t
}

// sessionQuery is the filters of GET sessions.
type sessionQuery struct {
	live         bool
	user, host   string
	since, until time.Time // until is the page cursor, exclusive
	limit        int
}

func (s *Server) parseSessionQuery(r *http.Request) (sessionQuery, error) {
	q := r.URL.Query()
	var sq sessionQuery
	var err error
	if sq.live, err = parseBool(q.Get("live")); err != nil {
		return sq, fmt.Errorf("bad live %q: want true or false", q.Get("live"))
	}
	sq.user, sq.host = q.Get("user"), q.Get("host")
	if sq.since, err = parseTime(q.Get("since"), s.p.Now()); err != nil {
		return sq, err
	}
	if b := q.Get("before"); b != "" {
		if sq.until, err = time.Parse(time.RFC3339Nano, b); err != nil {
			return sq, fmt.Errorf("bad before %q: want the next of the previous page", b)
		}
	}
	if sq.limit, err = parseLimit(q.Get("limit"), defaultSessionLimit, maxSessionLimit); err != nil {
		return sq, err
	}
	return sq, nil
}

func (sq sessionQuery) keep(user, target string, start time.Time) bool {
	return (sq.user == "" || user == sq.user) &&
		(sq.host == "" || strings.EqualFold(targetHost(target), sq.host)) &&
		(sq.since.IsZero() || !start.Before(sq.since)) &&
		(sq.until.IsZero() || start.Before(sq.until))
}

// liveSummary is a live session as the store would summarise it.
func liveSummary(ls admin.Session) audit.SessionSummary {
	return audit.SessionSummary{ID: ls.ID, User: ls.User, Client: ls.Client, Target: ls.Target, Start: ls.Start}
}

// listSessions answers GET sessions' query: newest first, one page.
func (s *Server) listSessions(r *http.Request, sq sessionQuery) (SessionList, error) {
	live := map[string]admin.Session{}
	listed := s.p.Gateway.LiveSessions
	if fg, ok := s.p.Gateway.(FleetGateway); ok {
		listed = fg.FleetSessions
	}
	for _, ls := range listed() {
		live[ls.ID] = ls
	}
	var out []SessionInfo
	if sq.live {
		for _, ls := range live {
			if sq.keep(ls.User, ls.Target, ls.Start) {
				out = append(out, SessionInfo{SessionSummary: liveSummary(ls), Live: true})
			}
		}
		slices.SortFunc(out, func(a, b SessionInfo) int { return b.Start.Compare(a.Start) })
	} else {
		// Pages of the store, newest first, until the page is full (the
		// host filter is applied here, not by the store).
		until := sq.until
		for len(out) <= sq.limit {
			batch := sq.limit + 1
			got, err := s.p.Store.Sessions(r.Context(), audit.SessionFilter{User: sq.user, Since: sq.since, Until: until, Limit: batch})
			if err != nil {
				return SessionList{}, err
			}
			for i := len(got) - 1; i >= 0; i-- {
				g := got[i]
				if sq.keep(g.User, g.Target, g.Start) {
					_, isLive := live[g.ID]
					out = append(out, SessionInfo{SessionSummary: g, Live: isLive && g.End.IsZero()})
				}
			}
			if len(got) < batch {
				break
			}
			until = got[0].Start
		}
	}
	list := SessionList{Sessions: out}
	if len(out) > sq.limit {
		list.Sessions = out[:sq.limit]
		list.Next = out[sq.limit-1].Start.UTC().Format(time.RFC3339Nano)
	}
	if list.Sessions == nil {
		list.Sessions = []SessionInfo{}
	}
	return list, nil
}

func (s *Server) apiSessions(w http.ResponseWriter, r *http.Request, _ operator) {
	sq, err := s.parseSessionQuery(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	list, err := s.listSessions(r, sq)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, list)
}

// inSession keeps the events of session id and of the sessions stacked in
// it (the store's prefix would also take gw1/ssh-in:10 for gw1/ssh-in:1).
func inSession(events []audit.Event, id string) []audit.Event {
	out := events[:0]
	for _, e := range events {
		if e.SessionID == id || strings.HasPrefix(e.SessionID, id+"/") {
			out = append(out, e)
		}
	}
	return out
}

// sessionDetail gathers GET sessions/{id}; ok is false when neither the
// store nor the gateway knows the session.
func (s *Server) sessionDetail(r *http.Request, id string) (SessionDetail, bool, error) {
	var d SessionDetail
	sums, err := s.p.Store.Sessions(r.Context(), audit.SessionFilter{SessionPrefix: id})
	if err != nil {
		return d, false, err
	}
	found := false
	for _, sum := range sums {
		if sum.ID == id {
			d.Session.SessionSummary, found = sum, true
		}
	}
	listed := s.p.Gateway.LiveSessions
	if fg, ok := s.p.Gateway.(FleetGateway); ok {
		listed = fg.FleetSessions
	}
	for _, ls := range listed() {
		if ls.ID == id {
			if !found {
				d.Session.SessionSummary = liveSummary(ls)
			}
			found, d.Session.Live = true, true
		}
	}
	if !found {
		return d, false, nil
	}
	events, err := s.p.Store.Query(r.Context(), audit.Filter{SessionPrefix: id, Limit: maxTimeline + 1})
	if err != nil {
		return d, false, err
	}
	d.Truncated = len(events) > maxTimeline
	if d.Truncated {
		events = events[1:]
	}
	d.Events = inSession(events, id)
	d.Channels = []string{}
	for _, e := range d.Events {
		if e.Type == "record" && e.Verdict == audit.Accept && !slices.Contains(d.Channels, e.SessionID) {
			d.Channels = append(d.Channels, e.SessionID)
		}
	}
	if d.Events == nil {
		d.Events = []audit.Event{}
	}
	return d, true, nil
}

func (s *Server) apiSession(w http.ResponseWriter, r *http.Request, _ operator) {
	d, ok, err := s.sessionDetail(r, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if !ok {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	writeJSON(w, d)
}

// errNoRecording is answered 404.
var errNoRecording = errors.New("no recording of this session")

// recordingFile returns the recording file of session id (master or
// channel) as the audit store names it, refusing files outside the
// recording folder.
func (s *Server) recordingFile(r *http.Request, id string) (string, error) {
	master := masterID(id)
	events, err := s.p.Store.Query(r.Context(), audit.Filter{SessionPrefix: master, Type: "record", Verdict: audit.Accept})
	if err != nil {
		return "", err
	}
	for _, e := range inSession(events, master) {
		p, _ := e.Detail[audit.DetailRecording].(string)
		if p == "" {
			continue
		}
		if !s.underRecordDir(p) {
			return "", fmt.Errorf("%w: %s is outside the recording folder", errNoRecording, p)
		}
		return p, nil
	}
	return "", errNoRecording
}

// underRecordDir reports whether p is a file inside RecordDir.
func (s *Server) underRecordDir(p string) bool {
	rel, err := filepath.Rel(s.p.RecordDir, filepath.Clean(p))
	return err == nil && filepath.IsAbs(p) && rel != "." && !strings.HasPrefix(rel, "..")
}

// pickChannel returns the channel to show of session id in the recording
// at path: id itself when it is a channel, else the first pty channel
// (or the first channel).
func pickChannel(path, id, want string) (string, error) {
	if want != "" {
		if want != id && !strings.HasPrefix(want, id+"/") {
			return "", errors.New("channel is not in this session")
		}
		return want, nil
	}
	if strings.Count(id, "/") > 1 {
		return id, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rd, err := record.NewReader(f)
	if err != nil {
		return "", err
	}
	for {
		_, ch, err := rd.Next()
		if err != nil {
			break
		}
		// A header has just been appended: look at it alone.
		if ch && rd.Channels[len(rd.Channels)-1].Pty {
			return rd.Channels[len(rd.Channels)-1].SessionID, nil
		}
	}
	if len(rd.Channels) == 0 {
		return "", errNoRecording
	}
	return rd.Channels[0].SessionID, nil
}

func (s *Server) apiRecording(w http.ResponseWriter, r *http.Request, who operator) {
	id := r.PathValue("id")
	path, err := s.recordingFile(r, id)
	if errors.Is(err, errNoRecording) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	ch, err := pickChannel(path, id, r.URL.Query().Get("channel"))
	if err != nil {
		http.Error(w, "no recording of this channel", http.StatusNotFound)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		s.p.Logger.ErrorContext(r.Context(), "console: reading a recording", "path", path, "err", err)
		http.Error(w, "recording unreadable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	// Streamed from the file: the answer's status and headers go with
	// its first byte, so a recording without this channel is still a 404.
	cw := &castWriter{w: w}
	if strings.HasSuffix(path, record.Ext) {
		err = record.WriteCast(f, cw, ch)
	} else {
		_, err = io.Copy(cw, f)
	}
	switch {
	case !cw.started && err != nil:
		http.Error(w, "no recording of this channel", http.StatusNotFound)
		return
	case err != nil && !errors.Is(err, record.ErrTruncated):
		// Cut short: the player shows what came.
		s.p.Logger.WarnContext(r.Context(), "console: sending a recording", "path", path, "err", err)
	}
	s.auditEvent(r, "console.replay", who, ch, audit.Accept, "", nil)
}

// castWriter sends an asciicast, its Content-Type set with the first
// write.
type castWriter struct {
	w       http.ResponseWriter
	started bool
}

func (c *castWriter) Write(p []byte) (int, error) {
	if !c.started {
		c.started = true
		c.w.Header().Set("Content-Type", "application/x-asciicast")
	}
	return c.w.Write(p)
}

func (s *Server) apiKill(w http.ResponseWriter, r *http.Request, who operator) {
	id := r.PathValue("id")
	err := s.p.Gateway.KillAs(r.Context(), id, who.Name)
	switch {
	case errors.Is(err, admin.ErrNotFound):
		http.Error(w, "no such live session", http.StatusNotFound)
	case err != nil:
		s.p.Logger.ErrorContext(r.Context(), "console: kill", "session_id", id, "err", err)
		http.Error(w, "kill failed", http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// auditQuery reads the filters of GET audit.
func (s *Server) auditQuery(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	f := audit.Filter{User: q.Get("user"), SessionPrefix: q.Get("session"), TypePrefix: q.Get("type")}
	switch v := audit.Verdict(q.Get("verdict")); v {
	case "", audit.Accept, audit.Reject:
		f.Verdict = v
	default:
		return f, fmt.Errorf("bad verdict %q: want accept or reject", v)
	}
	var err error
	now := s.p.Now()
	if f.Since, err = parseTime(q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = parseTime(q.Get("until"), now); err != nil {
		return f, err
	}
	if f.Limit, err = parseLimit(q.Get("limit"), defaultAuditLimit, maxAuditLimit); err != nil {
		return f, err
	}
	return f, nil
}

func (s *Server) queryAudit(r *http.Request, f audit.Filter) ([]audit.Event, error) {
	events, err := s.p.Store.Query(r.Context(), f)
	if err != nil {
		return nil, err
	}
	if f.SessionPrefix != "" && !strings.HasSuffix(f.SessionPrefix, "/") {
		events = inSession(events, f.SessionPrefix)
	}
	return events, nil
}

func (s *Server) apiAudit(w http.ResponseWriter, r *http.Request, _ operator) {
	f, err := s.auditQuery(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "jsonl" && format != "csv" {
		badRequest(w, "bad format %q: want jsonl or csv", format)
		return
	}
	events, err := s.queryAudit(r, f)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="sluice-audit.csv"`)
		writeCSV(w, events)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="sluice-audit.jsonl"`)
	}
	enc := json.NewEncoder(w)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return
		}
	}
}

// csvColumns are the columns of the CSV export.
var csvColumns = []string{"time", "type", "session_id", "user", "client_addr", "client_zone", "verdict", "rule", "service", "target", "reason", "detail"}

// writeCSV writes events as CSV. A cell that a spreadsheet would take for
// a formula (=, +, -, @, tab, CR) is prefixed with ' (OWASP, CSV
// injection): commands and paths are the users' text.
func writeCSV(w http.ResponseWriter, events []audit.Event) {
	cw := csv.NewWriter(w)
	cw.Write(csvColumns)
	for _, e := range events {
		detail := ""
		if len(e.Detail) > 0 {
			b, _ := json.Marshal(e.Detail) // it was decoded from JSON
			detail = string(b)
		}
		rec := []string{e.Time.UTC().Format(time.RFC3339Nano), e.Type, e.SessionID, e.User, e.ClientAddr, e.ClientZone,
			string(e.Verdict), e.Rule, e.Service, e.Target, e.Reason, detail}
		for i, c := range rec {
			rec[i] = csvCell(c)
		}
		if cw.Write(rec) != nil {
			return
		}
	}
	cw.Flush()
}

func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// storeError answers a failed store query; the cause is logged.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	s.p.Logger.ErrorContext(r.Context(), "console: audit store", "err", err)
	http.Error(w, "audit store unavailable", http.StatusServiceUnavailable)
}
