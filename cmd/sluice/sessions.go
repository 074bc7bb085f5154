package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/fleet"
	"github.com/sluice-ssh/sluice/internal/record"
)

// opTimeout bounds a store query or an admin socket call.
const opTimeout = 30 * time.Second

// remoteAbout ends the help of the commands that --server sends to a
// console.
const remoteAbout = "\nWith --server URL --token T, a gateway's console API answers instead\n(docs/console.md), and no -c FILE is needed."

// runSessions is `sluice sessions -c FILE|--server URL [--live] [--user U] [--since T] [--json]`.
func runSessions(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("sessions", "-c FILE|--server URL [--live] [--user U] [--since T] [--json]", "List the sessions in the audit store, newest first, or with --live the\nsessions the running gateway (with gateway.fleet, every node) serves now."+remoteAbout, stdout, stderr)
	fs := cl.fs
	path := fs.String("c", "", "config `FILE`")
	rf := cl.remoteFlags()
	live := fs.Bool("live", false, "list the live sessions of the running gateway (admin socket), or of the fleet (gateway.fleet)")
	user := fs.String("user", "", "only sessions of `USER`")
	since := fs.String("since", "", "only sessions started at or after `T` (RFC 3339, YYYY-MM-DD, or a duration ago such as 2h)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	cfg, api, _, code := cl.target(args, path, rf, 0)
	if cfg == nil && api == nil {
		return code
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var list []audit.SessionSummary
	if api != nil {
		if list, err = api.sessions(ctx, *live, *user, from); err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
	} else if *live {
		got, err := liveSessions(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
		for _, s := range got {
			if (*user == "" || s.User == *user) && !s.Start.Before(from) {
				list = append(list, audit.SessionSummary{ID: s.ID, User: s.User, Client: s.Client, Target: s.Target, Start: s.Start})
			}
		}
	} else {
		st, err := openStore(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
		defer st.Close()
		list, err = st.Sessions(ctx, audit.SessionFilter{User: *user, Since: from})
		if err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
	}
	if *asJSON {
		return writeJSONLines(stdout, stderr, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCLIENT\tTARGET\tSTART\tEND\tEXIT\tIN\tOUT")
	for _, s := range list {
		end, exit := "-", "-"
		if !s.End.IsZero() {
			end = s.End.Local().Format(time.DateTime)
		}
		if s.ExitStatus != nil {
			exit = strconv.Itoa(*s.ExitStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", cell(s.ID), orDash(s.User), orDash(s.Client), orDash(s.Target),
			s.Start.Local().Format(time.DateTime), end, exit, s.BytesIn, s.BytesOut)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	return 0
}

// liveSessions asks the running gateway for its live sessions, or with
// gateway.fleet the store for the fleet's.
func liveSessions(ctx context.Context, cfg *config.Config) ([]admin.Session, error) {
	if cfg.Gateway.Fleet.Lease == 0 {
		return admin.NewClient(cfg.Gateway.Admin.Socket).Sessions(ctx)
	}
	got, err := fleet.List(ctx, cfg.Audit.Sink)
	if err != nil {
		return nil, err
	}
	out := make([]admin.Session, 0, len(got))
	for _, s := range got {
		out = append(out, admin.Session{ID: s.ID, User: s.User, Client: s.Client, Target: s.Target, Start: s.Start})
	}
	return out, nil
}

// runAudit is `sluice audit -c FILE [--user U] [--session ID] [--type T] [--since T] [--json]`
// and `sluice audit verify -c FILE [--head GATEWAY:SEQ:HASH]`.
func runAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return runAuditVerify(args[1:], stdout, stderr)
	}
	cl := newCmdline("audit", "-c FILE|--server URL [--user U] [--session ID] [--type T] [--since T] [--json]", "Print the audit events in the store, oldest first.\n`sluice audit verify` checks the store's hash chains (see its --help)."+remoteAbout, stdout, stderr)
	fs := cl.fs
	path := fs.String("c", "", "config `FILE`")
	rf := cl.remoteFlags()
	user := fs.String("user", "", "only events of `USER`")
	sess := fs.String("session", "", "only events of session `ID` and the sessions stacked in it")
	typ := fs.String("type", "", "only events of `TYPE` (e.g. exec, session.end, kill)")
	since := fs.String("since", "", "only events at or after `T` (RFC 3339, YYYY-MM-DD, or a duration ago such as 2h)")
	asJSON := fs.Bool("json", false, "one JSON event per line")
	cfg, api, _, code := cl.target(args, path, rf, 0)
	if cfg == nil && api == nil {
		return code
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var events []audit.Event
	if api != nil {
		events, err = api.auditEvents(ctx, *user, *sess, *typ, from)
	} else {
		events, err = localAudit(ctx, cfg, audit.Filter{User: *user, SessionPrefix: *sess, Type: *typ, Since: from})
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	if *asJSON {
		return writeJSONLines(stdout, stderr, events)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tSESSION\tUSER\tVERDICT\tRULE\tREASON\tDETAIL")
	for _, e := range events {
		detail := ""
		if len(e.Detail) > 0 {
			b, err := json.Marshal(e.Detail)
			if err != nil {
				fmt.Fprintln(stderr, "sluice:", err)
				return 1
			}
			detail = string(graphicJSON(b))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), cell(e.Type), cell(e.SessionID),
			orDash(e.User), orDash(string(e.Verdict)), orDash(e.Rule), orDash(e.Reason), detail)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	return 0
}

// localAudit queries the store of cfg, as runAudit does without --server.
func localAudit(ctx context.Context, cfg *config.Config, f audit.Filter) ([]audit.Event, error) {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	events, err := st.Query(ctx, f)
	if err != nil {
		return nil, err
	}
	return inSession(events, f.SessionPrefix), nil
}

// runAuditVerify is `sluice audit verify -c FILE [--head GATEWAY:SEQ:HASH]`:
// it checks the hash chains of the audit store and the recordings the
// session.end events list (see audit.Verify), prints the first break and
// exits 1, or a summary and each chain's head and exits 0.
func runAuditVerify(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("audit verify", "-c FILE [--head GATEWAY:SEQ:HASH]", "Check the hash chains of the audit store and the recordings its session.end\nevents list. Exit status 0 and each chain's head when intact; 1 and the\nfirst break when not.", stdout, stderr)
	path := cl.fs.String("c", "", "config `FILE`")
	head := cl.fs.String("head", "", "a head printed by an earlier verify, `GATEWAY:SEQ:HASH`, that the chain must still hold")
	cfg, _, code := cl.config(args, path, 0)
	if cfg == nil {
		return code
	}
	var expect *audit.Link
	if *head != "" {
		l, err := parseHead(*head)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		expect = &l
	}
	// Hashing the recordings again can take a while: no timeout, Ctrl-C.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	defer st.Close()
	v, err := audit.Verify(ctx, st, expect)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	if v.Break != nil {
		fmt.Fprintf(stdout, "BROKEN at %s\n", cell(v.Break.String()))
		return 1
	}
	fmt.Fprintf(stdout, "verified: %d events in %d chains, %d recordings; %d events from before linking, %d torn lines skipped\n",
		v.Events, len(v.Heads), v.Recordings, v.Unlinked, v.Torn)
	for _, h := range v.Heads {
		fmt.Fprintf(stdout, "head %s:%d:%s\n", cell(h.Gateway), h.Seq, h.Hash)
	}
	if len(v.Heads) > 0 {
		fmt.Fprintln(stdout, "keep a head elsewhere: `sluice audit verify --head GATEWAY:SEQ:HASH` checks the store still holds it")
	}
	return 0
}

// parseHead reads --head GATEWAY:SEQ:HASH (the gateway name may hold ':').
func parseHead(s string) (audit.Link, error) {
	i := strings.LastIndexByte(s, ':')
	j := -1
	if i > 0 {
		j = strings.LastIndexByte(s[:i], ':')
	}
	if j <= 0 {
		return audit.Link{}, fmt.Errorf("sluice: --head %q: want GATEWAY:SEQ:HASH", s)
	}
	seq, err := strconv.ParseUint(s[j+1:i], 10, 64)
	if b, herr := hex.DecodeString(s[i+1:]); err != nil || herr != nil || seq == 0 || len(b) != sha256.Size {
		return audit.Link{}, fmt.Errorf("sluice: --head %q: want GATEWAY:SEQ:HASH with SEQ a positive number and HASH 64 hex digits", s)
	}
	return audit.Link{Gateway: s[:j], Seq: seq, Hash: strings.ToLower(s[i+1:])}, nil
}

// runReplay is `sluice replay -c FILE ID [--speed N]`: it plays the
// recordings of session ID (a master id plays each of its channels').
func runReplay(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("replay", "-c FILE|--server URL ID [--speed N] [--asciicast]", "Play the recordings of session ID in the terminal (a connection's id plays\neach of its channels), or export one channel as an asciicast v2 file."+remoteAbout, stdout, stderr)
	fs := cl.fs
	path := fs.String("c", "", "config `FILE`")
	rf := cl.remoteFlags()
	speed := fs.Float64("speed", 1, "play `N` times as fast")
	cast := fs.Bool("asciicast", false, "write channel ID's recording to stdout as an asciicast v2 file (for asciinema) instead of playing it")
	cfg, api, pos, code := cl.target(args, path, rf, 1)
	if cfg == nil && api == nil {
		return code
	}
	if !(*speed > 0) {
		fmt.Fprintf(stderr, "sluice: --speed %v: want a positive number\n", *speed)
		return 2
	}
	id := pos[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if api != nil {
		if err := remoteReplay(ctx, api, id, *cast, *speed, stdout); err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
		return 0
	}
	paths, err := recordings(ctx, cfg, id)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	if *cast {
		if err := exportCast(paths, id, stdout); err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
		return 0
	}
	for _, p := range paths {
		err := playFile(ctx, p, stdout, record.PlayOptions{Speed: *speed, Session: id})
		if errors.Is(err, record.ErrTruncated) {
			// A crash or a failed write: what was written has been played.
			fmt.Fprintln(stderr, "sluice:", err)
			continue
		}
		if err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
	}
	return 0
}

// remoteReplay is runReplay through a console: each recorded channel of
// id (or channel id alone) is fetched as asciicast and played, or with
// cast written out as it is.
func remoteReplay(ctx context.Context, api *apiClient, id string, cast bool, speed float64, w io.Writer) error {
	chans := []string{id}
	if !cast {
		var err error
		if chans, err = api.channels(ctx, id); err != nil {
			return err
		}
	}
	for _, ch := range chans {
		rc, err := api.recording(ctx, ch)
		if err != nil {
			return err
		}
		if cast {
			_, err = io.Copy(w, rc)
		} else {
			err = record.Play(ctx, rc, w, record.PlayOptions{Speed: speed, Session: ch})
		}
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// recordings returns the recording files of session id (and the sessions
// stacked in it) in the order they were started, from the audit store.
func recordings(ctx context.Context, cfg *config.Config, id string) ([]string, error) {
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	st, err := openStore(qctx, cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var paths []string
	seen := map[string]bool{}
	for _, typ := range []string{"record", audit.TypeSessionEnd} {
		events, err := st.Query(qctx, audit.Filter{SessionPrefix: id, Type: typ})
		if err != nil {
			return nil, err
		}
		for _, e := range inSession(events, id) {
			if typ == "record" && e.Verdict != audit.Accept {
				continue
			}
			p, _ := e.Detail[audit.DetailRecording].(string)
			for _, p := range append([]string{p}, recordingPaths(e.Detail)...) {
				if p != "" && !seen[p] {
					seen[p] = true
					paths = append(paths, p)
				}
			}
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no recording of session %q in the audit store", id)
	}
	return paths, nil
}

// detailRecordings is the session.end detail key listing the master's
// recording files, each {"path", "sha256"}.
const detailRecordings = "recordings"

// recordingPaths returns the paths of a session.end event's
// "recordings" list.
func recordingPaths(d map[string]any) []string {
	list, _ := d[detailRecordings].([]any)
	var out []string
	for _, it := range list {
		if m, ok := it.(map[string]any); ok {
			if p, ok := m["path"].(string); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// playFile plays the channels of o.Session in the recording at path.
func playFile(ctx context.Context, path string, w io.Writer, o record.PlayOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := record.Play(ctx, f, w, o); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// exportCast writes the recording of channel id, found in one of paths,
// as asciicast v2: a recording file's channel converted, or a .cast file
// of an earlier version as it is.
func exportCast(paths []string, id string, w io.Writer) error {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(p, record.Ext) {
			_, err := w.Write(data)
			return err
		}
		err = record.WriteCast(bytes.NewReader(data), w, id)
		if err == nil || errors.Is(err, record.ErrTruncated) {
			return err
		}
	}
	return fmt.Errorf("no recording of channel %q (--asciicast takes a channel id, such as GW/SERVICE:N/ssh/session:0)", id)
}

// runKill is `sluice kill -c FILE|--server URL ID`: end a live session
// through the running gateway's admin socket or its console.
func runKill(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("kill", "-c FILE|--server URL ID", "End live session ID through the running gateway's admin socket; its client\nis told and the end is audited. With gateway.fleet, through the store: the\nnode holding the session ends it."+remoteAbout, stdout, stderr)
	path := cl.fs.String("c", "", "config `FILE`")
	rf := cl.remoteFlags()
	cfg, api, pos, code := cl.target(args, path, rf, 1)
	if cfg == nil && api == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var kill func(context.Context, string) error
	switch {
	case api != nil:
		kill = api.kill
	case cfg.Gateway.Fleet.Lease > 0:
		// Through the store: the node holding the session ends and
		// audits it, whether or not a node runs here.
		kill = func(ctx context.Context, id string) error { return fleet.Kill(ctx, cfg.Audit.Sink, id, "") }
	default:
		kill = admin.NewClient(cfg.Gateway.Admin.Socket).Kill
	}
	if err := kill(ctx, pos[0]); err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	fmt.Fprintf(stdout, "killed %s\n", pos[0])
	return 0
}

// openStore opens the audit store the gateway writes. An SQLite database
// that does not exist is an error rather than created empty.
func openStore(ctx context.Context, cfg *config.Config) (audit.Store, error) {
	if cfg.Audit.Sink == "sqlite" {
		db := filepath.Join(cfg.Gateway.StateDir, "audit.db")
		if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no audit database at %s (has the gateway run?)", db)
		}
	}
	return audit.Open(ctx, cfg.Audit.Sink, cfg.Gateway.StateDir, cfg.Gateway.Name)
}

// inSession keeps the events of session id and of the sessions stacked in
// it; the store's prefix match alone would also take "gw1/ssh-in:10" for
// "gw1/ssh-in:1".
func inSession(events []audit.Event, id string) []audit.Event {
	if id == "" {
		return events
	}
	out := events[:0]
	for _, e := range events {
		if e.SessionID == id || strings.HasPrefix(e.SessionID, strings.TrimSuffix(id, "/")+"/") {
			out = append(out, e)
		}
	}
	return out
}

// parseSince reads --since: an RFC 3339 time, a date (local midnight), or
// a duration meaning that long before now. Empty means no bound.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("sluice: --since %q: want an RFC 3339 time, YYYY-MM-DD or a duration such as 2h", s)
}

// writeJSONLines writes one JSON value per line, with the characters a
// terminal could act on escaped (see graphicJSON).
func writeJSONLines[T any](stdout, stderr io.Writer, items []T) int {
	for _, it := range items {
		b, err := json.Marshal(it)
		if err == nil {
			_, err = stdout.Write(append(graphicJSON(b), '\n'))
		}
		if err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
	}
	return 0
}

// orDash is s as a table cell (see cell), or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return cell(s)
}
