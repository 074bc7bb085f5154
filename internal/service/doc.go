// Package service runs one Sluice service: the accept loop of one listener.
//
// For every accepted connection the service creates a session.Master with
// the next instance id, checks the client's zone (SetClient), enforces the
// service's session limit, writes an audit event for the decision, and hands
// the connection to the Handler in its own goroutine. A refused connection
// is audited with the rule that refused it and closed.
//
// Shutdown and Close follow net/http.Server: Shutdown stops accepting and
// waits for live sessions to finish; Close stops accepting and ends every
// live session at once with session.ErrShutdown. After either, Serve
// returns ErrServerClosed.
package service
