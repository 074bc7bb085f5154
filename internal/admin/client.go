package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxErrorBody bounds how much of an error answer is read into the error.
const maxErrorBody = 4 << 10

// Client calls the API of the gateway listening on a Unix socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a Client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{hc: &http.Client{Transport: tr}}
}

// Sessions returns the gateway's live master sessions.
func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	resp, err := c.do(ctx, http.MethodGet, "/sessions")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list []Session
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("admin: reading the session list: %w", err)
	}
	return list, nil
}

// Kill ends the live master session id; the error wraps ErrNotFound when
// the gateway has no such session.
func (c *Client) Kill(ctx context.Context, id string) error {
	resp, err := c.do(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/kill")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// do sends a request and returns a 2xx response; other statuses are errors,
// a 404 from the kill handler wrapping ErrNotFound.
func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	// The host is not used: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://sluice"+path, nil)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin: is the gateway running? %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := strings.TrimSpace(string(body))
	if resp.Header.Get(notFoundHeader) != "" {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, msg)
	}
	return nil, fmt.Errorf("admin: %s: %s", resp.Status, msg)
}
