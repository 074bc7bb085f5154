package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/sluice-ssh/sluice/internal/access"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/gateway"
)

// runServe is `sluice serve -c FILE`: run the gateway until SIGINT or
// SIGTERM, then drain; SIGHUP reloads the config file.
func runServe(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("serve", "-c FILE", "Run the gateway until SIGINT or SIGTERM, then drain the live sessions for\ngateway.drain_timeout; SIGHUP reloads the config file.", stdout, stderr)
	path := cl.fs.String("c", "", "config `FILE`")
	cfg, _, code := cl.config(args, path, 0)
	if cfg == nil {
		return code
	}
	logger := newLogger(stderr, cfg.Gateway.Log)
	for _, w := range slices.Concat(cfg.Warnings, access.Lint(cfg)) {
		logger.Warn("config", "warning", w.Error())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		// One plain line, whatever the log format: the operator reads it
		// on a terminal or in the journal.
		fmt.Fprintln(stderr, "sluice serve: cannot start:", err)
		return 1
	}
	logger.Info("sluice started", startAttrs(*path, cfg, g)...)
	stopReload := reloadOnHUP(ctx, *path, g, logger)
	defer stopReload()
	if err := g.Run(ctx); err != nil {
		logger.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}

// startAttrs are the attributes of the start-up line: what an operator
// checks first (which binary, which file, where it listens).
func startAttrs(path string, cfg *config.Config, g *gateway.Gateway) []any {
	listeners := make([]string, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		listeners = append(listeners, s.Name+"="+g.Addr(s.Name).String())
	}
	metricsAddr := "off"
	if a := g.AdminAddr(); a != nil {
		metricsAddr = "http://" + a.String() + "/metrics"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	bi, ok := debug.ReadBuildInfo()
	return []any{
		"version", versionString(bi, ok), "config", abs, "gateway", cfg.Gateway.Name,
		"listeners", strings.Join(listeners, " "), "metrics", metricsAddr, "admin_socket", cfg.Gateway.Admin.Socket,
	}
}

// newLogger picks the log handler and level: only main does.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
