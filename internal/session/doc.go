// Package session implements Zorp's session model for Sluice.
//
// A Master is created for every accepted connection. It holds what is known
// about the connection: the client and server addresses and zones, the
// service and gateway, the instance id, the authenticated user and the
// target, and it performs zone-based access control when the client (in
// SetClient) and the server (in SetServer) become known.
//
// A proxy running inside another proxy's session (an SSH channel inside the
// SSH connection, SFTP inside a session channel) gets a Stacked session. A
// Stacked session holds only what it adds: its proxy name, its channel number
// and its own attributes. Everything else it reads from its owner chain, the
// way Zorp's StackedSession inherits through __getattr__: Lookup walks the
// chain explicitly, and the master's well-known attributes are read through
// accessors on Stacked.
//
// Session ids are GATEWAY/SERVICE:INSTANCE for a master; each stacked
// session appends /PROXY, and :N when it is the Nth channel of its kind, e.g.
// gw1/ssh-in:42/ssh/session:0/sftp.
//
// Every session has a context made with context.WithCancelCause. End(cause)
// cancels it, and the cause (ErrDenied, ErrClosed, ErrRevoked, ErrIdle,
// ErrShutdown, ErrUpstreamClosed, possibly wrapped with detail) says why the
// session ended. Ending a session ends every session stacked on it.
package session
