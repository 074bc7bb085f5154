package gateway

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/sluice-ssh/sluice/internal/console"
)

var _ console.Gateway = (*Gateway)(nil)

// consoleShutdownTimeout bounds the wait for console requests in progress;
// live views end with their requests.
const consoleShutdownTimeout = 5 * time.Second

// buildConsole makes the console and opens its listener when
// console.listen is set, so that a taken port fails New.
func (g *Gateway) buildConsole() error {
	c := g.cfg.Console
	if c.Listen == "" {
		return nil
	}
	srv, err := console.New(console.Params{
		Gateway: g, Store: g.store, Audit: g.audit,
		StateDir: g.cfg.Gateway.StateDir, RecordDir: g.cfg.Record.Dir,
		Listen: c.Listen, CertFile: c.Cert, KeyFile: c.Key, SessionTimeout: c.SessionTimeout.Std(),
		GatewayName: g.cfg.Gateway.Name, Logger: g.logger,
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	l, err := srv.Listen()
	if err != nil {
		return fmt.Errorf("gateway: console.listen: %w", err)
	}
	g.console, g.consoleListener = srv, l
	return nil
}

// Console returns the console, or nil when console.listen is not set.
func (g *Gateway) Console() *console.Server { return g.console }

// ConsoleAddr returns the console's address, or nil.
func (g *Gateway) ConsoleAddr() net.Addr {
	if g.consoleListener == nil {
		return nil
	}
	return g.consoleListener.Addr()
}

// serveConsole serves the console until the returned stop is called.
func (g *Gateway) serveConsole() (stop func()) {
	if g.console == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.console.Serve(g.consoleListener); err != nil {
			g.logger.Error("console stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), consoleShutdownTimeout)
		defer cancel()
		if err := g.console.Shutdown(ctx); err != nil {
			g.logger.Error("stopping the console", "err", err)
		}
		<-done
	}
}
