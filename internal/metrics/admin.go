package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin HTTP server timeouts: a scrape is small and local.
const (
	readHeaderTimeout = 5 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// ErrNotLoopback is returned by Listen for an address that is not loopback.
var ErrNotLoopback = errors.New("metrics: admin address is not loopback")

// Listen opens the admin listener on addr, which must be a loopback
// address ("127.0.0.1:9100", "[::1]:9100") or "localhost:PORT"; anything
// else is refused, because the endpoint has no authentication.
func Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: admin address %q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, fmt.Errorf("metrics: admin listen: %w", err)
	}
	return l, nil
}

// Degraded is a health error that leaves the gateway serving: /healthz
// answers 200 with "degraded: " and the reason instead of 503.
type Degraded struct{ Err error }

func (d *Degraded) Error() string { return d.Err.Error() }
func (d *Degraded) Unwrap() error { return d.Err }

// Handler serves /metrics from m's registry; /healthz, which answers 200
// "ok" when healthy returns nil, 200 "degraded: REASON" for a *Degraded
// error, and 503 "unhealthy: REASON" for any other; and /readyz, which
// answers 200 "ready" when ready returns nil and 503 "not ready: REASON"
// otherwise (a load balancer's check: draining is not ready). Neither is
// audited.
func (m *Metrics) Handler(healthy, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		err := healthy()
		if d, ok := errors.AsType[*Degraded](err); ok {
			_, _ = w.Write([]byte("degraded: " + d.Error() + "\n"))
			return
		}
		if err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Serve serves h on l in a goroutine it owns. stop shuts the server down
// (waiting up to 5 s for scrapes in progress) and waits for the goroutine.
func Serve(l net.Listener, h http.Handler, logger *slog.Logger) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin HTTP server stopped", "err", err)
		}
	})
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		wg.Wait()
	}
}
