package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/console"
)

// tokenEnv holds the API token when --token is not given, so that it need
// not appear in the process list.
const tokenEnv = "SLUICE_TOKEN"

// remoteFlags are the flags that send sessions, audit, replay and kill to
// a gateway's console API instead of its config's store and admin socket.
type remoteFlags struct {
	server, token, cacert *string
}

func (c *cmdline) remoteFlags() remoteFlags {
	return remoteFlags{
		server: c.fs.String("server", "", "ask the console API at `URL` (https://HOST:PORT) instead of the local store and admin socket"),
		token:  c.fs.String("token", "", "the console API token `T` for --server (sluice console token; default $"+tokenEnv+")"),
		cacert: c.fs.String("cacert", "", "trust the console's certificate in `FILE` (STATE/console/cert.pem) for --server, besides the system's"),
	}
}

// target parses args like config, but with --server the command talks to
// a console and needs no -c: exactly one of cfg and api is set, unless
// the caller returns code.
func (c *cmdline) target(args []string, path *string, rf remoteFlags, npos int) (cfg *config.Config, api *apiClient, pos []string, code int) {
	pos, code, ok := c.parse(args, npos)
	if !ok {
		return nil, nil, nil, code
	}
	switch {
	case *rf.server == "" && (*rf.token != "" || *rf.cacert != ""):
		return nil, nil, nil, c.fail("--token and --cacert go with --server")
	case *rf.server == "":
		cfg, code = c.load(*path)
		return cfg, nil, pos, code
	case *path != "":
		return nil, nil, nil, c.fail("-c FILE or --server URL, not both")
	}
	api, err := newAPIClient(*rf.server, *rf.token, *rf.cacert)
	if err != nil {
		fmt.Fprintln(c.stderr, "sluice:", err)
		return nil, nil, nil, 2
	}
	return nil, api, pos, 0
}

// apiClient calls a gateway's console API (internal/console, docs/console.md).
type apiClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

func newAPIClient(server, token, cacert string) (*apiClient, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("--server %q: want https://HOST:PORT", server)
	}
	if token == "" {
		token = os.Getenv(tokenEnv)
	}
	if token == "" {
		return nil, fmt.Errorf("--server needs --token T or $%s (sluice console token prints one)", tokenEnv)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", cacert)
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	return &apiClient{base: u, token: token, hc: &http.Client{Transport: tr}}, nil
}

// call sends method to the API's path (under /api/v1/, already escaped)
// with query q, and returns the response when its status is want; any
// other is an error quoting the console's message.
func (a *apiClient) call(ctx context.Context, method, path string, q url.Values, want int) (*http.Response, error) {
	u := a.base.JoinPath("/api/v1/")
	u.RawPath = u.Path + path
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("console %s %s: %s: %s", method, path, resp.Status, cell(strings.TrimSpace(string(msg))))
	}
	return resp, nil
}

// getJSON decodes the answer of GET path into v.
func (a *apiClient) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := a.call(ctx, http.MethodGet, path, q, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("console GET %s: %w", path, err)
	}
	return nil
}

func sessionPath(id string) string { return "sessions/" + url.PathEscape(id) }

// rfc3339 formats a time for a query; the zero time is no bound.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// sessions lists the sessions as `sluice sessions` does: every page of
// the console's answer (newest first), oldest first as the store lists them.
func (a *apiClient) sessions(ctx context.Context, live bool, user string, since time.Time) ([]audit.SessionSummary, error) {
	q := url.Values{"limit": {"1000"}}
	if live {
		q.Set("live", "true")
	}
	for k, v := range map[string]string{"user": user, "since": rfc3339(since)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out []audit.SessionSummary
	for {
		var page console.SessionList
		if err := a.getJSON(ctx, "sessions", q, &page); err != nil {
			return nil, err
		}
		for _, s := range page.Sessions {
			out = append(out, s.SessionSummary)
		}
		if page.Next == "" {
			slices.Reverse(out)
			return out, nil
		}
		q.Set("before", page.Next)
	}
}

// auditEvents queries the audit as `sluice audit` does: typ is one type
// exactly (the API's type is a prefix).
func (a *apiClient) auditEvents(ctx context.Context, user, session, typ string, since time.Time) ([]audit.Event, error) {
	q := url.Values{"limit": {strconv.Itoa(maxRemoteEvents)}}
	for k, v := range map[string]string{"user": user, "session": session, "type": typ, "since": rfc3339(since)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	resp, err := a.call(ctx, http.MethodGet, "audit", q, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []audit.Event
	dec := json.NewDecoder(resp.Body)
	for {
		var e audit.Event
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("console GET audit: %w", err)
		}
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
}

// maxRemoteEvents is the most events the console answers at once
// (internal/console's maxAuditLimit).
const maxRemoteEvents = 100_000

// channels returns the recorded channels of session id: itself when it
// is a channel, else those the console lists.
func (a *apiClient) channels(ctx context.Context, id string) ([]string, error) {
	if strings.Count(id, "/") > 1 {
		return []string{id}, nil
	}
	var d console.SessionDetail
	if err := a.getJSON(ctx, sessionPath(id), nil, &d); err != nil {
		return nil, err
	}
	if len(d.Channels) == 0 {
		return nil, fmt.Errorf("no recording of session %q", id)
	}
	return d.Channels, nil
}

// recording returns channel ch's recording as asciicast v2; the caller
// closes it.
func (a *apiClient) recording(ctx context.Context, ch string) (io.ReadCloser, error) {
	resp, err := a.call(ctx, http.MethodGet, sessionPath(ch)+"/recording", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// kill ends live session id.
func (a *apiClient) kill(ctx context.Context, id string) error {
	resp, err := a.call(ctx, http.MethodPost, sessionPath(id)+"/kill", nil, http.StatusNoContent)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
