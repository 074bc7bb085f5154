package gateway

import "sync/atomic"

// operatorState is what the gateway keeps for recording and audit failure
// handling (record.go, auditfail.go).
type operatorState struct {
	// recordFailures counts recordings that could not be made or stopped early.
	recordFailures atomic.Uint64
	// auditFailed wakes endOnAuditFailure when an audit store outage
	// begins (buffered: one pending sweep).
	auditFailed chan struct{}
}

// startOperator starts the admin socket and the goroutine that ends live
// sessions when the audit store fails. The returned stop ends both and
// waits for them.
func (g *Gateway) startOperator() (stop func(), err error) {
	stopAdmin, err := g.serveAdmin()
	if err != nil {
		return nil, err
	}
	stopConsole := g.serveConsole()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		g.endOnAuditFailure(quit)
	}()
	return func() {
		close(quit)
		<-done
		stopConsole()
		stopAdmin()
	}, nil
}
